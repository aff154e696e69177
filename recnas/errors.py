"""Error types: every message names the file, row, field or key at fault and what to do."""

from __future__ import annotations


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
