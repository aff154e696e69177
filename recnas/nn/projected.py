"""Per-field embedding dimensions lifted to one common dimension: the frozen (retrain) module of AutoDim.

Each field's id table has its own width; a per-field linear map plus batch norm lifts every field to the
common dimension the model's interactions need, so any zoo model that consumes equal-dimension field
embeddings works unchanged. The batch norm's scale starts small (`lift_gamma`): at 1 the lifted vectors
start so large that FM logits explode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.embedding import FieldEmbedding, NumericalSpec
from recnas.nn.facade import EmbeddingFacade
from recnas.nn.frozen import register_frozen

LIFT_GAMMA = 0.15


class Lift(nn.Module):
    """Per-field linear maps `[B, F, d] -> [B, F, C]` followed by batch norm over the F x C outputs."""

    def __init__(self, num_fields: int, in_dim: int, out_dim: int, gamma: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_fields, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(num_fields, out_dim))
        bound = (6.0 / (in_dim + out_dim)) ** 0.5  # Xavier-uniform per field map
        nn.init.uniform_(self.weight, -bound, bound)
        self.norm = nn.BatchNorm1d(num_fields * out_dim)
        nn.init.constant_(self.norm.weight, gamma)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """`[B, F, d]` -> `[B, F, C]`."""
        x = torch.einsum("bfd,fdc->bfc", e, self.weight) + self.bias
        return self.norm(x.flatten(1)).view_as(x)


class ProjectedEmbedding(EmbeddingFacade):
    """Per-field dimensions (the AutoDim result) lifted to one common dimension: `[B, F, common_dim]`.

    Fields are grouped by size, so the lift is one batched matrix product per distinct size.
    """

    def __init__(
        self, schema: Schema, dims: Mapping[str, int], common_dim: int, numerical: NumericalSpec = "auto",
        pooling: str = "mean", lift_gamma: float = LIFT_GAMMA, sparse: bool = False,
        numerical_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.base = FieldEmbedding(schema, dict(dims), numerical=numerical, pooling=pooling, sparse=sparse,
                                   numerical_options=numerical_options)
        self.encoding = {"numerical": numerical, "pooling": pooling, "numerical_options": numerical_options}
        self._set_shape(list(self.base.field_names), int(common_dim))
        self.field_dims = {f: int(dims[f]) for f in self.field_names}
        self.lift_gamma = float(lift_gamma)
        starts = torch.tensor([0, *self.base.dims[:-1]]).cumsum(0).tolist()
        self.sizes = sorted(set(self.base.dims))
        self.lifts = nn.ModuleList()
        for g, d in enumerate(self.sizes):
            fields = [i for i, fd in enumerate(self.base.dims) if fd == d]
            cols = torch.tensor([starts[i] + j for i in fields for j in range(d)], dtype=torch.long)
            self.register_buffer(f"cols_{g}", cols, persistent=False)
            self.register_buffer(f"fields_{g}", torch.tensor(fields, dtype=torch.long), persistent=False)
            self.lifts.append(Lift(len(fields), d, self.common_dim, lift_gamma))

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, F, common_dim]`."""
        flat = self.base.flat(batch)
        out = flat.new_empty(flat.shape[0], self.num_fields, self.common_dim)
        for g, (d, lift) in enumerate(zip(self.sizes, self.lifts, strict=True)):
            fields = getattr(self, f"fields_{g}")
            e = flat.index_select(1, getattr(self, f"cols_{g}")).view(flat.shape[0], len(fields), d)
            out[:, fields] = lift(e)
        return out

    def flat(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, F * C]`."""
        return self(batch).flatten(1)

    def spec(self) -> dict[str, Any]:
        """What rebuilds this module on the same schema (`recnas.nn.frozen.build_frozen`): JSON."""
        return {"kind": "projected", "dims": dict(self.field_dims), "common_dim": self.common_dim,
                "lift_gamma": self.lift_gamma}


@register_frozen("projected")
def _build_projected(schema: Schema, spec: Mapping[str, Any], encoding: Mapping[str, Any]) -> ProjectedEmbedding:
    return ProjectedEmbedding(schema, spec["dims"], int(spec["common_dim"]), lift_gamma=float(spec["lift_gamma"]),
                              **encoding)
