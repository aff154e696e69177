"""FM: first order + factorised pairwise interactions (Rendle, Factorization Machines, ICDM 2010)."""

from __future__ import annotations

from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.interactions import FMInteraction, PairwiseLayer
from recnas.nn.models.base import CTRModel, register


@register("fm")
class FM(CTRModel):
    """logit = b + sum w + sum_{i<j} <e_i, e_j> (or the `pairwise` layer given, e.g. AutoFIS's gated pairs)."""

    paper = "Rendle, Factorization Machines, ICDM 2010"
    pairwise_slot = "logit"

    def __init__(self, schema: Schema, pairwise: PairwiseLayer | None = None, **kw: Any) -> None:
        super().__init__(schema, **kw)
        self.first_order = self.make_first_order()
        self.fm = self._pairwise(pairwise, FMInteraction())

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        return (self.first_order(batch) + self.fm(self.embedding(batch))).squeeze(1)
