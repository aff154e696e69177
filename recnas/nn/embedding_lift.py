"""Narrow id tables read through a per-field linear map to a wider vector (`model.embedding_lift`).

Why: under a memory budget the tables must be narrow, but the interactions need not be. Each field's `d`-wide row
is mapped by its own `d x C` matrix to width `C`, so FM's inner product of two fields becomes a learned bilinear form
`e_i^T A_i^T A_j e_j` (a field-matrixed FM) and the deep part reads `F x C` inputs. The maps are dense weights,
`F x d x C` floats whatever the vocabulary: they are not embedding parameters (EP counts the id tables).
"""

from __future__ import annotations

import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.nn.facade import FieldEmbeddingLayer
from recnas.nn.projected import Lift


class LiftedEmbedding(nn.Module):
    """`inner`'s equal-width `[B, F, d]` vectors mapped per field to `[B, F, width]`."""

    def __init__(self, inner: FieldEmbeddingLayer, width: int) -> None:
        super().__init__()
        if not inner.equal_dims:
            raise ValueError("LiftedEmbedding needs equal field widths")
        self.inner = inner
        self.field_names = list(inner.field_names)
        self.dims = [int(width)] * len(self.field_names)
        self.equal_dims = True
        self.dim = int(width)
        self.lift = Lift(len(self.field_names), inner.dim, int(width), gamma=None)

    @property
    def num_fields(self) -> int:
        """Number of embedded fields."""
        return len(self.field_names)

    @property
    def flat_dim(self) -> int:
        """Width of the flat output."""
        return sum(self.dims)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, F, width]`."""
        return self.lift(self.inner(batch))

    def flat(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, F * width]`."""
        return self(batch).flatten(1)

    def embedding_params(self) -> int:
        """The inner tables' floats (the maps are dense weights, not EP)."""
        return self.inner.embedding_params()

    def tables_weights(self) -> list[torch.Tensor]:
        """The inner id tables' weights."""
        return self.inner.tables_weights()  # type: ignore[attr-defined]
