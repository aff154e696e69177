"""A batch norm over a model's field embeddings (`model.embedding_norm`).

Why: with an embedding L2, narrow or rare rows end with a tiny norm and the interactions see little of them; a batch
norm over the `F x D` embedding outputs rescales them (bench/log/2026-12-01-rl-run03.md: +0.003 to +0.005 test AUC
for the full-width DeepFM on frappe_full). It wraps any embedding a model holds, its own or a composed one.
"""

from __future__ import annotations

import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.nn.facade import FieldEmbeddingLayer

INITIAL_SCALE = 0.15  # `model.embedding_norm_scale`'s default (bench/log/2026-12-06-issue19-defaults.md)


class NormedEmbedding(nn.Module):
    """`inner`'s output through a `BatchNorm1d` over its flat `[B, sum of dims]` view; the same shape comes out."""

    def __init__(self, inner: FieldEmbeddingLayer, scale: float = INITIAL_SCALE) -> None:
        """`scale`: the norm's initial output scale (its affine weight); small keeps the interactions' inputs small."""
        super().__init__()
        self.inner = inner
        self.field_names = list(inner.field_names)
        self.dims = list(inner.dims)
        self.equal_dims = inner.equal_dims
        self.dim = inner.dim
        self.norm = nn.BatchNorm1d(inner.flat_dim)
        nn.init.constant_(self.norm.weight, float(scale))

    @property
    def num_fields(self) -> int:
        """Number of embedded fields."""
        return len(self.field_names)

    @property
    def flat_dim(self) -> int:
        """Width of the flat output."""
        return sum(self.dims)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, F, D]`, normalised over its `F x D` entries."""
        x = self.inner(batch)
        return self.norm(x.flatten(1)).view_as(x)

    def flat(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, sum of dims]`, normalised."""
        return self.norm(self.inner.flat(batch))

    def embedding_params(self) -> int:
        """The inner tables' floats (the norm's scale and shift are dense weights, not EP)."""
        return self.inner.embedding_params()

    def tables_weights(self) -> list[torch.Tensor]:
        """The inner id tables' weights."""
        return self.inner.tables_weights()  # type: ignore[attr-defined]


__all__ = ["NormedEmbedding"]
