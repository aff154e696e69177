"""AFM: attentional FM (Xiao et al., Attentional Factorization Machines, IJCAI 2017)."""

from __future__ import annotations

from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.interactions import AttentionalPooling
from recnas.nn.models.base import CTRModel, register


@register("afm")
class AFM(CTRModel):
    """logit = b + sum w + p^T sum_{i<j} a_ij (e_i * e_j), with attention weights a_ij."""

    paper = "Xiao et al., Attentional Factorization Machines, IJCAI 2017"

    def __init__(self, schema: Schema, attention_dim: int = 16, **kw: Any) -> None:
        super().__init__(schema, **kw)
        self.first_order = self.make_first_order()
        self.afm = AttentionalPooling(self.num_fields, self.embedding.dim, attention_dim, self.dropout)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        return (self.first_order(batch) + self.afm(self.embedding(batch))).squeeze(1)
