"""What zoo models read from `model.embedding`, for embeddings that output equal-width `[B, F, C]` vectors.

AutoDim, NIS and ESAPN replace a model's `FieldEmbedding` with their own module; subclassing this facade
gives them the attributes the models and the trainer expect (field names, dims, `flat`, EP, tables).
"""

from __future__ import annotations

import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.nn.embedding import FieldEmbedding


class EmbeddingFacade(nn.Module):
    """The attributes zoo models read from `model.embedding`, for an embedding that outputs `[B, F, C]`."""

    field_names: list[str]
    common_dim: int
    base: FieldEmbedding

    def _set_shape(self, field_names: list[str], common_dim: int) -> None:
        self.field_names = field_names
        self.common_dim = common_dim
        self.dims = [common_dim] * len(field_names)
        self.equal_dims = True
        self.dim = common_dim

    @property
    def num_fields(self) -> int:
        """Number of embedded fields."""
        return len(self.field_names)

    @property
    def flat_dim(self) -> int:
        """Width of the flat output."""
        return self.num_fields * self.common_dim

    def flat(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, F * C]`."""
        return self(batch).flatten(1)

    def embedding_params(self) -> int:
        """Parameters of the embedding tables (the lift maps are dense weights, not EP)."""
        return self.base.embedding_params()

    def tables_weights(self) -> list[torch.Tensor]:
        """The id tables' weights."""
        return self.base.tables_weights()
