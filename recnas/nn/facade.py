"""What zoo models read from `model.embedding`, for embeddings that output equal-width `[B, F, C]` vectors.

AutoDim, NIS and ESAPN give a model their own embedding module (constructor argument `embedding`); subclassing
this facade gives it the attributes the models and the trainer expect (field names, dims, `flat`, EP, tables).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.data.schema import FieldType, Schema
from recnas.nn.embedding import FieldEmbedding, NumericalSpec


@runtime_checkable
class FieldEmbeddingLayer(Protocol):
    """What a zoo model reads from its `embedding` (a `FieldEmbedding`, or a search / frozen block given to it).

    `forward(batch)` gives `[B, F, D]` (equal dims) and `flat(batch)` `[B, sum of dims]`.
    """

    field_names: list[str]
    dims: list[int]
    equal_dims: bool
    dim: int

    @property
    def num_fields(self) -> int:
        """Number of embedded fields."""
        ...

    @property
    def flat_dim(self) -> int:
        """Width of the flat output."""
        ...

    def flat(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, sum of dims]`."""
        ...

    def embedding_params(self) -> int:
        """Floats of the id tables (EP)."""
        ...

    def __call__(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, F, D]`."""
        ...


@runtime_checkable
class OwnIdTables(Protocol):
    """A module that stores ids in its own tables (not a `FieldEmbedding`'s): NIS's and ESAPN's mixed widths."""

    def own_tables(self) -> list[torch.Tensor]:
        """The id tables' weights (targets of the embedding L2)."""
        ...

    def own_embedding_params(self) -> int:
        """Floats these tables store (EP)."""
        ...


def id_tables(model: nn.Module) -> list[torch.Tensor]:
    """Weights of every id table inside `model` (targets of embedding L2 and sparse optimisers)."""
    fields = [w for m in model.modules() if isinstance(m, FieldEmbedding) for w in m.tables_weights()]
    return fields + [w for m in model.modules() if isinstance(m, OwnIdTables) for w in m.own_tables()]


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


def non_categorical(schema: Schema) -> Schema | None:
    """The schema without its categorical fields (None when nothing else is left)."""
    rest = [f for f in schema.fields if f.type is not FieldType.CATEGORICAL]
    return schema.replace_fields(rest) if rest else None


class CategoricalSplitEmbedding(EmbeddingFacade):
    """Categorical fields in the subclass's own tables (`self.tables`), the others in a plain `FieldEmbedding`.

    NIS's and ESAPN's retrain and ESAPN's search store categorical ids their own way; numerical and
    multi-valued fields are not searched and keep the common width. Output: categorical fields first.
    """

    tables: nn.ModuleList
    rest: FieldEmbedding | None

    def _build_rest(self, schema: Schema, width: int, numerical: NumericalSpec, pooling: str, sparse: bool,
                    numerical_options: Mapping[str, Any] | None, init_std: float) -> None:
        rest = non_categorical(schema)
        self.rest = (FieldEmbedding(rest, width, numerical=numerical, pooling=pooling, sparse=sparse,
                                    numerical_options=numerical_options, init_std=init_std)
                     if rest is not None else None)

    def embed_categorical(self, batch: FieldBatch) -> torch.Tensor | None:
        """`[B, F_cat, common_dim]`, or None without categorical fields."""
        raise NotImplementedError

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, F, common_dim]`: categorical fields first, then the others in `FieldEmbedding` order."""
        parts = [p for p in (self.embed_categorical(batch), self.rest(batch) if self.rest is not None else None)
                 if p is not None]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def own_tables(self) -> list[torch.Tensor]:
        """The categorical tables (the embedding L2 acts on them)."""
        return [t.weight for t in self.tables]

    def own_embedding_params(self) -> int:
        """Floats the categorical tables store."""
        raise NotImplementedError

    def embedding_params(self) -> int:
        """EP of this embedding: the categorical floats plus the other fields' tables and encoders."""
        return self.own_embedding_params() + (self.rest.embedding_params() if self.rest is not None else 0)

    def tables_weights(self) -> list[torch.Tensor]:
        """Every id table of this embedding."""
        return self.own_tables() + (self.rest.tables_weights() if self.rest is not None else [])
