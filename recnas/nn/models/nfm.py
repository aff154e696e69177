"""NFM: neural FM (He & Chua, Neural Factorization Machines for Sparse Predictive Analytics, SIGIR 2017)."""

from __future__ import annotations

from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.interactions import BiInteraction
from recnas.nn.layers import MLP
from recnas.nn.models.base import CTRModel, register


@register("nfm")
class NFM(CTRModel):
    """logit = b + sum w + MLP(bi-interaction pooling of the embeddings)."""

    paper = "He & Chua, Neural Factorization Machines for Sparse Predictive Analytics, SIGIR 2017"

    def __init__(self, schema: Schema, **kw: Any) -> None:
        super().__init__(schema, **kw)
        self.first_order = self.make_first_order()
        self.bi = BiInteraction()
        self.mlp = MLP(self.embedding.dim, self.mlp_sizes, self.dropout, self.batch_norm, out_dim=1)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        return (self.first_order(batch) + self.mlp(self.bi(self.embedding(batch)))).squeeze(1)
