"""xDeepFM (Lian et al., xDeepFM: Combining Explicit and Implicit Feature Interactions, KDD 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.interactions import CIN
from recnas.nn.layers import MLP, logit_head
from recnas.nn.models.base import CTRModel, register


@register("xdeepfm")
class XDeepFM(CTRModel):
    """logit = b + sum w + w^T CIN(e) + MLP(concatenated e)."""

    paper = (

        "Lian et al., xDeepFM: Combining Explicit and Implicit Feature Interactions for"

        " Recommender Systems, KDD 2018"

    )

    def __init__(self, schema: Schema, cin_layers: Sequence[int] = (100, 100), cin_activation: str = "identity",
                 **kw: Any) -> None:
        super().__init__(schema, **kw)
        self.first_order = self.make_first_order()
        self.cin = CIN(self.num_fields, cin_layers, cin_activation)
        self.cin_head = logit_head(self.cin.out_dim)
        self.mlp = MLP(self.embedding.flat_dim, self.mlp_sizes, self.dropout, self.batch_norm, out_dim=1)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        e = self.embedding(batch)
        return (self.first_order(batch) + self.cin_head(self.cin(e)) + self.mlp(e.flatten(1))).squeeze(1)
