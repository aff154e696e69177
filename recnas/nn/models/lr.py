"""LR: logistic regression on one-hot ids (the first-order baseline every CTR paper reports)."""

from __future__ import annotations

from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.models.base import CTRModel, register


@register("lr")
class LR(CTRModel):
    """Logistic regression: logit = b + sum_f w[id_f]."""

    needs_equal_dims = False
    has_embedding = False
    paper = "Richardson et al., Predicting Clicks: Estimating the Click-Through Rate for New Ads, WWW 2007"

    def __init__(self, schema: Schema, **kw: Any) -> None:
        super().__init__(schema, **kw)
        self.first_order = self.make_first_order()

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        return self.first_order(batch).squeeze(1)
