"""Base class and registry of the model zoo.

A base model is embedding -> interaction -> deep -> head. It takes a fitted schema and returns
logits `[batch]`; it knows nothing of loss, optimiser or epochs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.errors import ConfigError, SchemaError
from recnas.nn.embedding import FieldEmbedding, NumericalSpec, field_order
from recnas.nn.embedding_norm import INITIAL_SCALE, NormedEmbedding
from recnas.nn.facade import FieldEmbeddingLayer, OwnIdTables, id_tables
from recnas.nn.frozen import FrozenModule
from recnas.nn.interactions import PairwiseLayer

MODELS: dict[str, type[CTRModel]] = {}


def register(name: str, *aliases: str) -> Callable[[type[CTRModel]], type[CTRModel]]:
    """Class decorator adding a model to the zoo under `name` (and aliases)."""

    def wrap(cls: type[CTRModel]) -> type[CTRModel]:
        for key in (name, *aliases):
            if key in MODELS:
                raise ValueError(f"model name {key!r} is registered twice")
            MODELS[key] = cls
        cls.model_name = name
        return cls

    return wrap


class CTRModel(nn.Module):
    """Common constructor arguments and helpers of every zoo model.

    Subclasses set `needs_equal_dims` (interactions over stacked `[B, F, D]` embeddings) and
    `paper` (the citation), and implement `forward(batch) -> logits [B]`.
    """

    model_name: ClassVar[str] = "base"
    needs_equal_dims: ClassVar[bool] = True
    has_embedding: ClassVar[bool] = True  # False: first-order weights only (LR)
    field_aware: ClassVar[bool] = False  # True: several vectors per id (FFM), so no one-vector-per-field embedding
    paper: ClassVar[str] = ""
    # The model's pairwise-interaction slot (constructor argument `pairwise`): "logit" takes a layer whose
    # output is one logit term (`out_dim == 1`, FM's), "products" one product per pair (IPNN's); None: no slot.
    pairwise_slot: ClassVar[str | None] = None

    def __init__(
        self, schema: Schema, embedding_dim: int | Mapping[str, int] = 10, mlp: Sequence[int] = (400, 400, 400),
        dropout: float = 0.0, batch_norm: bool = False, numerical: NumericalSpec = "auto", pooling: str = "mean",
        sparse: bool = False, numerical_options: Mapping[str, Any] | None = None,
        embedding: FieldEmbeddingLayer | None = None, embedding_norm: bool = False,
        embedding_norm_scale: float = INITIAL_SCALE, **options: Any,
    ) -> None:
        super().__init__()
        self.schema = schema
        self._composed: dict[str, nn.Module] = {}  # parts given to the constructor, by argument name
        self.encoding = {"numerical": numerical, "pooling": pooling, "sparse": sparse,
                         "numerical_options": dict(numerical_options or {})}
        if not self.has_embedding:
            if embedding is not None:
                raise ConfigError(f"model {self.model_name!r} has no embeddings; it cannot take one")
            self.num_fields = sum(len(group) for group in field_order(schema, numerical))
        elif embedding is not None:  # composed by the caller (a search block or a frozen one)
            self.embedding = embedding
            self._composed["embedding"] = embedding
            self._check_equal_dims()
        else:
            self._build_embedding(schema, embedding_dim, **self.encoding)
        self.norm_scale = embedding_norm_scale if embedding_norm else None  # `normed` reads it
        if embedding_norm:  # after composition: the norm wraps whichever embedding the model holds
            if not self.has_embedding:
                raise ConfigError(f"model.embedding_norm: model {self.model_name!r} has no embeddings to normalise; "
                                  "set it to false")
            self.embedding = self.normed(self.embedding)  # type: ignore[assignment]
        self.mlp_sizes = list(mlp)
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.options = options

    def _build_embedding(
        self, schema: Schema, embedding_dim: int | Mapping[str, int], numerical: NumericalSpec, pooling: str,
        sparse: bool, numerical_options: Mapping[str, Any],
    ) -> None:
        self.embedding = FieldEmbedding(schema, embedding_dim, numerical=numerical, pooling=pooling, sparse=sparse,
                                        numerical_options=numerical_options)
        self._check_equal_dims()

    def _check_equal_dims(self) -> None:
        if self.needs_equal_dims and not self.embedding.equal_dims:
            dims = dict(zip(self.embedding.field_names, self.embedding.dims, strict=True))
            raise SchemaError(
                f"model {self.model_name!r} needs equal embedding dimensions for its interactions, got {dims}; "
                "give one embedding_dim or use a model that concatenates embeddings (e.g. widedeep)"
            )
        self.num_fields = self.embedding.num_fields

    def _pairwise(self, pairwise: PairwiseLayer | None, default: nn.Module) -> nn.Module:
        """The pairwise layer given to the constructor (checked against this model's slot), else `default`."""
        if pairwise is None:
            return default
        if self.pairwise_slot == "logit" and pairwise.out_dim != 1:
            raise ConfigError(f"model {self.model_name!r} adds its pairwise layer to the logit, so the layer must "
                              f"output one value per row, not {pairwise.out_dim}")
        self._composed["pairwise"] = pairwise  # type: ignore[assignment]
        return pairwise  # type: ignore[return-value]

    def normed(self, table: nn.Module) -> nn.Module:
        """`table` behind the `embedding_norm`, where the model has one (else `table` itself)."""
        return table if self.norm_scale is None else NormedEmbedding(table, self.norm_scale)  # type: ignore[arg-type]

    @property
    def embedding_block(self) -> nn.Module:
        """The embedding module itself (a search block, say), without the `embedding_norm` wrapped around it."""
        e = self.embedding
        return e.inner if isinstance(e, NormedEmbedding) else e

    def frozen_spec(self) -> dict[str, Any]:
        """{constructor argument: spec} of the frozen parts this model was composed with (`recnas.nn.frozen`)."""
        out = {}
        for slot, part in self._composed.items():
            if not isinstance(part, FrozenModule):
                raise ConfigError(f"the {slot} of this {self.model_name} model is not frozen (it has no spec()); "
                                  "freeze() the searched block first")
            out[slot] = part.spec()
        return out

    def make_first_order(self) -> FirstOrder:
        """A first-order (LR) part encoding fields the same way as the model's embedding."""
        return FirstOrder(self.schema, **self.encoding)

    def embedding_params(self) -> int:
        """Embedding parameters (EP): the floats of every embedding table, first-order weights included."""
        fields = sum(m.embedding_params() for m in self.modules() if isinstance(m, FieldEmbedding))
        return fields + sum(m.own_embedding_params() for m in self.modules() if isinstance(m, OwnIdTables))

    def embedding_tables(self) -> list[torch.Tensor]:
        """Weights of every id table (targets of embedding L2 and sparse optimisers).

        Those of `FieldEmbedding`s, plus `own_tables()` of embedding modules that store ids their own way
        (NIS and ESAPN's mixed-width tables).
        """
        return id_tables(self)

    def forward(self, batch: FieldBatch) -> torch.Tensor:  # pragma: no cover - abstract
        """Logits `[batch]`."""
        raise NotImplementedError


class FirstOrder(nn.Module):
    """Logistic-regression part: a bias plus one learned weight per id (and per scalar numerical field)."""

    def __init__(
        self, schema: Schema, numerical: NumericalSpec = "auto", pooling: str = "mean", sparse: bool = False,
        numerical_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.weights = FieldEmbedding(schema, 1, numerical=numerical, pooling=pooling, sparse=sparse,
                                      numerical_options=numerical_options)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, 1]` first-order logit."""
        return self.weights(batch).sum(1) + self.bias


def model_options(cls: type[CTRModel]) -> set[str]:
    """The model-specific constructor options `cls` reads (its own and its zoo parents' `__init__` arguments)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is CTRModel or not (isinstance(klass, type) and issubclass(klass, CTRModel)):
            break
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD or p.kind is p.KEYWORD_ONLY}
    return names - {"self", "schema"}


def build_model(name: str, schema: Schema, **kwargs: Any) -> CTRModel:
    """Build a registered model by name, with a clear error for an unknown one."""
    key = name.lower()
    if key not in MODELS:
        raise ConfigError(f"model.name: unknown model {name!r}; choose one of {sorted(MODELS)} (see `recnas models`)")
    return MODELS[key](schema, **kwargs)
