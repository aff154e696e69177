"""Frozen modules by spec: how a retrained (searched-then-fixed) model is rebuilt from JSON with `recnas.nn` alone.

A frozen module (a projected or mixed-width embedding, a selected set of interactions) describes itself with
`spec()` (JSON, with a `kind`); `build_frozen(spec, schema, encoding)` builds a fresh one from it. A retrained
run folder stores the specs of its model's parts in `frozen.json`, so loading it for `recnas predict` never
imports the search layers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from torch import nn

from recnas.data.schema import Schema
from recnas.errors import DataError


@runtime_checkable
class FrozenModule(Protocol):
    """A searched-then-fixed module that can describe itself for `build_frozen`."""

    def spec(self) -> dict[str, Any]:
        """JSON with a `kind` that `build_frozen` turns back into a fresh module."""
        ...


Builder = Callable[[Schema, Mapping[str, Any], Mapping[str, Any]], nn.Module]
FROZEN: dict[str, Builder] = {}


def register_frozen(kind: str) -> Callable[[Builder], Builder]:
    """Register the builder of a frozen module kind (one line beside the module's class)."""

    def wrap(fn: Builder) -> Builder:
        if kind in FROZEN:
            raise ValueError(f"frozen module kind {kind!r} is registered twice")
        FROZEN[kind] = fn
        return fn

    return wrap


def build_frozen(spec: Mapping[str, Any], schema: Schema, encoding: Mapping[str, Any]) -> nn.Module:
    """A fresh module from `spec`; `encoding` = how fields are embedded (numerical, pooling, options, sparse)."""
    from recnas.nn import block_dag, feature_sets, interactions, mixed_width, projected  # noqa: F401  (the built-in kinds)

    kind = spec.get("kind")
    if kind not in FROZEN:
        raise DataError(f"frozen module kind {kind!r} is unknown; known kinds: {sorted(FROZEN)}")
    return FROZEN[kind](schema, spec, encoding)
