"""Wide & Deep (Cheng et al., Wide & Deep Learning for Recommender Systems, DLRS 2016)."""

from __future__ import annotations

from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.layers import MLP
from recnas.nn.models.base import CTRModel, register


@register("widedeep", "wide_deep", "wdl")
class WideDeep(CTRModel):
    """logit = wide (first order) + MLP(concatenated embeddings); accepts mixed dimensions."""

    needs_equal_dims = False
    paper = "Cheng et al., Wide & Deep Learning for Recommender Systems, DLRS 2016"

    def __init__(self, schema: Schema, **kw: Any) -> None:
        super().__init__(schema, **kw)
        self.first_order = self.make_first_order()
        self.mlp = MLP(self.embedding.flat_dim, self.mlp_sizes, self.dropout, self.batch_norm, out_dim=1)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        return (self.first_order(batch) + self.mlp(self.embedding.flat(batch))).squeeze(1)
