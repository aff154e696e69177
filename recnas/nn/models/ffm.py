"""FFM: field-aware FM (Juan et al., Field-aware Factorization Machines for CTR Prediction, RecSys 2016)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.errors import SchemaError
from recnas.nn.embedding import field_order
from recnas.nn.interactions import FFMInteraction
from recnas.nn.models.base import CTRModel, register


@register("ffm")
class FFM(CTRModel):
    """Each id has one vector per other field: logit = b + sum w + sum_{i<j} <e_{i,f_j}, e_{j,f_i}>.

    Stored as one table of width F * D (the F latent vectors of an id side by side).
    """

    paper = "Juan et al., Field-aware Factorization Machines for CTR Prediction, RecSys 2016"
    field_aware = True

    def __init__(self, schema: Schema, **kw: Any) -> None:
        dim = kw.get("embedding_dim", 10)
        if isinstance(dim, Mapping):
            if len(set(dim.values())) > 1:
                raise SchemaError(f"model 'ffm' needs equal embedding dimensions, got {dict(dim)}")
            dim = next(iter(dim.values()))
        n_fields = sum(len(group) for group in field_order(schema, kw.get("numerical", "auto")))
        super().__init__(schema, **{**kw, "embedding_dim": int(dim) * n_fields})
        self.dim = int(dim)
        self.first_order = self.make_first_order()
        self.ffm = FFMInteraction(self.num_fields)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        e = self.embedding(batch)  # [B, F, F*D]
        e = e.view(e.shape[0], self.num_fields, self.num_fields, self.dim)
        return (self.first_order(batch) + self.ffm(e)).squeeze(1)
