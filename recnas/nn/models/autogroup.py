"""AutoGroup's model: first-order weights plus an MLP over the order-p interactions of feature sets.

Liu et al., AutoGroup: Automatic Feature Grouping for Modelling Explicit High-Order Feature Interactions in CTR
Prediction, SIGIR 2020. The sets are a constructor argument: the `autogroup` search composes its searchable sets
(`recnas.space.autogroup`) and retrains the frozen ones it exports; built alone, every field is in every set.
`order_tables` gives each order above the first its own embedding table, as the public implementation does
(P times the tables' embedding parameters, all counted in EP); by default every order reads the one table.
`raw_embeddings` feeds the concatenated field embeddings to the MLP beside the set interactions, as DeepFM's deep
part reads them: the order-1 sets are then linear mixes the MLP's first layer could form anyway, and a field pruned
from the sets still reaches the MLP. On by default (chosen on frappe_full and ml100k valid: the searched sets lost
0.001 and 0.06 valid AUC without it, bench/log/2026-12-06-issue20-autogroup-2.md); off is the paper's MLP, which
reads the interactions only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.errors import ConfigError
from recnas.nn.embedding import FieldEmbedding
from recnas.nn.feature_sets import FeatureSets, FeatureSetsBase
from recnas.nn.layers import MLP
from recnas.nn.models.base import CTRModel, register

DEFAULT_ORDERS = 3  # the paper's highest order on its public datasets


@register("autogroup")
class AutoGroup(CTRModel):
    """logit = b + sum w + MLP([I^p_s for every order p and set s]) (see `recnas.nn.feature_sets`).

    `sets` replaces the default sets (3 orders, one set per field each, every field in every set); `order_tables`:
    a table per order; `raw_embeddings`: the MLP reads the field embeddings too (see the module docstring).
    """

    paper = ("Liu et al., AutoGroup: Automatic Feature Grouping for Modelling Explicit High-Order Feature "
             "Interactions in CTR Prediction, SIGIR 2020")

    def __init__(self, schema: Schema, sets: FeatureSetsBase | None = None, order_tables: bool = False,
                 raw_embeddings: bool = True, **kw: Any) -> None:
        super().__init__(schema, **kw)
        self.first_order = self.make_first_order()
        if sets is None:
            sets = FeatureSets.every_field(self.embedding.field_names, self.embedding.dim, DEFAULT_ORDERS)
        else:
            self._composed["sets"] = sets
        self.sets = sets
        self.order_embeddings = nn.ModuleList()
        if order_tables:
            if "embedding" in self._composed:
                raise ConfigError("model.order_tables builds a table per order of the model's own embedding; it "
                                  "cannot take a composed (searched) embedding: set it to false")
            for _ in range(sets.orders - 1):
                self.order_embeddings.append(self.normed(FieldEmbedding(schema, self.embedding.dim, **self.encoding)))
        self.raw_embeddings = raw_embeddings
        raw_dim = self.embedding.flat_dim if raw_embeddings else 0
        self.mlp = MLP(sets.out_dim + raw_dim, self.mlp_sizes, self.dropout, self.batch_norm, out_dim=1)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        e = self.embedding(batch)
        es = [e, *(table(batch) for table in self.order_embeddings)] if len(self.order_embeddings) else e
        x = self.sets(es)
        if self.raw_embeddings:
            x = torch.cat([x, e.flatten(1)], dim=1)
        return (self.first_order(batch) + self.mlp(x)).squeeze(1)
