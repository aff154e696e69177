"""DCNv2 (Wang et al., DCN V2: Improved Deep & Cross Network and Practical Lessons, WWW 2021)."""

from __future__ import annotations

from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.interactions import CrossNetV2
from recnas.nn.layers import MLP, logit_head
from recnas.nn.models.base import CTRModel, register


@register("dcnv2")
class DCNv2(CTRModel):
    """Full-rank cross layers and an MLP, `parallel` (default) or `stacked` (MLP on the cross output)."""

    needs_equal_dims = False
    paper = (
        "Wang et al., DCN V2: Improved Deep & Cross Network and Practical Lessons for"
        " Web-scale Learning to Rank, WWW 2021"
    )

    def __init__(self, schema: Schema, cross_layers: int = 3, structure: str = "parallel", **kw: Any) -> None:
        super().__init__(schema, **kw)
        if structure not in ("parallel", "stacked"):
            raise ValueError(f"structure must be parallel or stacked, got {structure!r}")
        k = self.embedding.flat_dim
        self.structure = structure
        self.cross = CrossNetV2(k, cross_layers)
        self.mlp = MLP(k, self.mlp_sizes, self.dropout, self.batch_norm)
        head_in = self.mlp.out_dim + (k if structure == "parallel" else 0)
        self.head = logit_head(head_in)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        x0 = self.embedding.flat(batch)
        crossed = self.cross(x0)
        if self.structure == "stacked":
            return self.head(self.mlp(crossed)).squeeze(1)
        return self.head(torch.cat([crossed, self.mlp(x0)], dim=1)).squeeze(1)
