"""DCN: deep & cross network (Wang et al., Deep & Cross Network for Ad Click Predictions, ADKDD 2017)."""

from __future__ import annotations

from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.interactions import CrossNet
from recnas.nn.layers import MLP, logit_head
from recnas.nn.models.base import CTRModel, register


@register("dcn")
class DCN(CTRModel):
    """logit = w^T [CrossNet(x0), MLP(x0)] with x0 the concatenated embeddings."""

    needs_equal_dims = False
    paper = "Wang et al., Deep & Cross Network for Ad Click Predictions, ADKDD 2017"

    def __init__(self, schema: Schema, cross_layers: int = 3, **kw: Any) -> None:
        super().__init__(schema, **kw)
        k = self.embedding.flat_dim
        self.cross = CrossNet(k, cross_layers)
        self.mlp = MLP(k, self.mlp_sizes, self.dropout, self.batch_norm)
        self.head = logit_head(k + self.mlp.out_dim)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        x0 = self.embedding.flat(batch)
        return self.head(torch.cat([self.cross(x0), self.mlp(x0)], dim=1)).squeeze(1)
