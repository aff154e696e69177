"""AutoGroup's model: first-order weights plus an MLP over the order-p interactions of feature sets.

Liu et al., AutoGroup: Automatic Feature Grouping for Modelling Explicit High-Order Feature Interactions in CTR
Prediction, SIGIR 2020. The sets are a constructor argument: the `autogroup` search composes its searchable sets
(`recnas.space.autogroup`) and retrains the frozen ones it exports; built alone, every field is in every set.
"""

from __future__ import annotations

from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.feature_sets import FeatureSets, FeatureSetsBase
from recnas.nn.layers import MLP
from recnas.nn.models.base import CTRModel, register

DEFAULT_ORDERS = 3  # the paper's highest order on its public datasets


@register("autogroup")
class AutoGroup(CTRModel):
    """logit = b + sum w + MLP([I^p_s for every order p and set s]) (see `recnas.nn.feature_sets`).

    `sets` replaces the default sets (3 orders, one set per field each, every field in every set).
    """

    paper = ("Liu et al., AutoGroup: Automatic Feature Grouping for Modelling Explicit High-Order Feature "
             "Interactions in CTR Prediction, SIGIR 2020")

    def __init__(self, schema: Schema, sets: FeatureSetsBase | None = None, **kw: Any) -> None:
        super().__init__(schema, **kw)
        self.first_order = self.make_first_order()
        if sets is None:
            sets = FeatureSets.every_field(self.embedding.field_names, self.embedding.dim, DEFAULT_ORDERS)
        else:
            self._composed["sets"] = sets
        self.sets = sets
        self.mlp = MLP(sets.out_dim, self.mlp_sizes, self.dropout, self.batch_norm, out_dim=1)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        return (self.first_order(batch) + self.mlp(self.sets(self.embedding(batch)))).squeeze(1)
