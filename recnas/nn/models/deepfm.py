"""DeepFM (Guo et al., DeepFM: A Factorization-Machine based Neural Network for CTR Prediction, IJCAI 2017)."""

from __future__ import annotations

from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.interactions import FMInteraction, PairwiseLayer
from recnas.nn.layers import MLP
from recnas.nn.models.base import CTRModel, register


@register("deepfm")
class DeepFM(CTRModel):
    """logit = b + sum w + FM(e) + MLP(concatenated e); FM and MLP share the embeddings.

    `pairwise` replaces the FM term (e.g. AutoFIS's gated pairs).
    """

    paper = "Guo et al., DeepFM: A Factorization-Machine based Neural Network for CTR Prediction, IJCAI 2017"
    pairwise_slot = "logit"

    def __init__(self, schema: Schema, pairwise: PairwiseLayer | None = None, **kw: Any) -> None:
        super().__init__(schema, **kw)
        self.first_order = self.make_first_order()
        self.fm = self._pairwise(pairwise, FMInteraction())
        self.mlp = MLP(self.embedding.flat_dim, self.mlp_sizes, self.dropout, self.batch_norm, out_dim=1)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        e = self.embedding(batch)
        return (self.first_order(batch) + self.fm(e) + self.mlp(e.flatten(1))).squeeze(1)
