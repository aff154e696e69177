"""Error types: every message names the file, row, field or key at fault and what to do."""

from __future__ import annotations

from typing import Any


class RecnasError(ValueError):
    """Base of all errors recnas raises on bad input; the CLI prints them as one line."""


class DataError(RecnasError):
    """A data file is missing, empty or holds a value that cannot be used."""


class SchemaError(RecnasError):
    """A schema is inconsistent with itself or with the data it describes."""


class CacheError(RecnasError):
    """A prepared-data cache is missing, corrupt or does not match its sources."""


class ConfigError(RecnasError):
    """A configuration key is unknown or has a value of the wrong type."""


class TrainingError(RecnasError):
    """Training cannot go on (e.g. the loss became NaN)."""


def describe_validation_error(err: Any, source: str) -> str:
    """One line naming the first bad key of a pydantic `ValidationError` raised while reading `source`."""
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r}; remove it or check its spelling"
    if first["type"] == "missing":
        return f"{source}: required key {key!r} is missing"
    return f"{source}: key {key!r}: {first['msg']} (got {first.get('input')!r})"
