"""FwFM: field-weighted FM (Pan et al., Field-weighted Factorization Machines for CTR Prediction, WWW 2018)."""

from __future__ import annotations

from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.interactions import FwFMInteraction
from recnas.nn.models.base import CTRModel, register


@register("fwfm")
class FwFM(CTRModel):
    """logit = b + sum w + sum_{i<j} r_ij <e_i, e_j>, one learned weight per field pair."""

    paper = "Pan et al., Field-weighted Factorization Machines for Click-Through Rate Prediction, WWW 2018"

    def __init__(self, schema: Schema, **kw: Any) -> None:
        super().__init__(schema, **kw)
        self.first_order = self.make_first_order()
        self.fwfm = FwFMInteraction(self.num_fields)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        return (self.first_order(batch) + self.fwfm(self.embedding(batch))).squeeze(1)
