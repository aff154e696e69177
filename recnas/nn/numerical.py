"""Numerical-field encoders: a raw value (NaN = missing) -> one vector per field, `[B, F] -> [B, F, D]`.

Every encoder is vectorised over the fields it encodes (one module per encoder kind and dimension) and
gives missing values their own learned vector. The baselines AutoDis must beat live here:
- `scalar`: the z-scored value times a field vector (FuxiCTR's form), linear in x;
- `bucket_equal_width` / `bucket_equal_freq`: hard buckets with edges from the train min/max or the
  train quantiles, one embedding per bucket;
- `log_square`: the Criteo winners' id `floor(log(x)^2)` for x > 2, `floor(x)` below;
- `levels`: one embedding per train value of a few-valued integer field (a categorical view of it; other
  fields get equal-frequency buckets).
`auto` picks one per field from its train statistics (`auto_kind`).
Encoders are registered by name in `NUMERICAL_ENCODERS`; the searchable AutoDis block registers itself
from `recnas.space.autodis` (the model space sits above this layer).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from recnas.data.schema import FieldSpec, NumericStats
from recnas.errors import SchemaError

DEFAULT_BUCKETS = 20
LOG_SQUARE_MIN_KEY = -100  # floor(x) keys below this share one id (log_square targets non-negative counts)


def field_stats(spec: FieldSpec) -> NumericStats:
    """The fitted statistics of a numerical field (an encoder cannot be built without them)."""
    if spec.stats is None:
        raise SchemaError(f"numerical field {spec.name!r} has no statistics; fit the schema first")
    return spec.stats


class NumericalEncoder(nn.Module):
    """Base of the numerical encoders: `forward(x [B, F]) -> [B, F, D]` with NaN for missing values.

    Subclasses set `rows` (embedding rows per field, the missing-value row included) and implement
    `encode`, `embedding_params` and `field_tensors` (the weights of one field, for copying between
    encoders of the same kind, e.g. from an AutoDim supernet into its frozen retrain embedding).
    """

    kind: str = "base"

    def __init__(self, fields: list[FieldSpec], dim: int) -> None:
        super().__init__()
        if not fields:
            raise SchemaError(f"a {self.kind} encoder needs at least one numerical field")
        if dim < 1:
            raise SchemaError(f"numerical encoder dimension must be >= 1, got {dim}")
        self.field_names = [f.name for f in fields]
        self.dim = int(dim)
        self.rows: list[int] = []
        self.missing = nn.Parameter(torch.zeros(len(fields), dim))

    @property
    def num_fields(self) -> int:
        """Number of encoded fields."""
        return len(self.field_names)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """`[B, F]` values with missing ones replaced by a finite placeholder -> `[B, F, D]`."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, F]` raw values (NaN = missing) -> `[B, F, D]`; a missing value gets its field's missing vector."""
        miss = torch.isnan(x)
        out = self.encode(torch.where(miss, torch.zeros_like(x), x))
        return torch.where(miss.unsqueeze(-1), self.missing.unsqueeze(0).expand_as(out), out)

    def embedding_params(self) -> int:
        """Embedding parameters (EP): vectors that represent values (not the maps that compute weights)."""
        return sum(self.rows) * self.dim

    def field_tensors(self, j: int) -> list[torch.Tensor]:
        """Views of field j's weights; the last axis of dimension-sized ones is the embedding axis."""
        return [self.missing[j]]


class ScalarEncoder(NumericalEncoder):
    """`z(x) * v_f`: one learned vector per field scaled by the z-scored value (linear in x)."""

    kind = "scalar"

    def __init__(self, fields: list[FieldSpec], dim: int, init_std: float = 1e-4) -> None:
        super().__init__(fields, dim)
        stats = [field_stats(f) for f in fields]
        self.vectors = nn.Parameter(torch.randn(len(fields), dim) * init_std)
        self.register_buffer("mean", torch.tensor([s.mean for s in stats], dtype=torch.float32), persistent=False)
        std = [s.std if s.std > 0 else 1.0 for s in stats]
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32), persistent=False)
        self.rows = [2] * len(fields)  # its vector and its missing-value vector

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, F] -> [B, F, D]`."""
        z = (x - self.mean) / self.std
        return z.unsqueeze(-1) * self.vectors

    def field_tensors(self, j: int) -> list[torch.Tensor]:
        """Field j's vector and missing vector."""
        return [self.vectors[j], self.missing[j]]


class _TableEncoder(NumericalEncoder):
    """A numerical encoder that maps each value to one of `n_f` ids and looks it up in a per-field table."""

    def _build_table(self, n_ids: list[int], init_std: float) -> None:
        self.n_ids = [int(n) for n in n_ids]
        self.rows = [n + 1 for n in self.n_ids]
        offsets = np.concatenate([[0], np.cumsum(self.n_ids)[:-1]]).astype(np.int64)
        self.register_buffer("offsets", torch.from_numpy(offsets), persistent=False)
        self.table = nn.Embedding(int(sum(self.n_ids)), self.dim)
        nn.init.normal_(self.table.weight, 0.0, init_std)

    def ids(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """`[B, F]` finite values -> `[B, F]` ids in `[0, n_f)` per field."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, F] -> [B, F, D]`: one lookup for all fields."""
        return self.table(self.ids(x) + self.offsets)

    def field_tensors(self, j: int) -> list[torch.Tensor]:
        """Field j's rows of the shared table and its missing vector."""
        start = int(self.offsets[j])
        return [self.table.weight[start : start + self.n_ids[j]], self.missing[j]]


class BucketEncoder(_TableEncoder):
    """Hard buckets between given interior edges per field; a value's bucket is `#edges <= x`.

    Values outside the train range fall into the first or last bucket.
    """

    kind = "bucket"

    def __init__(self, fields: list[FieldSpec], dim: int, edges: list[np.ndarray], init_std: float = 1e-4) -> None:
        super().__init__(fields, dim)
        if len(edges) != len(fields):
            raise SchemaError(f"got {len(edges)} edge lists for {len(fields)} fields")
        clean = [np.unique(np.asarray(e, dtype=np.float64)) for e in edges]
        width = max(1, max(len(e) for e in clean))
        padded = np.full((len(fields), width), np.inf)
        for j, e in enumerate(clean):
            padded[j, : len(e)] = e
        self.edges = [e.tolist() for e in clean]
        self.register_buffer("boundaries", torch.tensor(padded, dtype=torch.float32), persistent=False)
        self._build_table([len(e) + 1 for e in clean], init_std)

    def ids(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, F]` -> bucket ids `[B, F]` (padding edges are +inf, so they never count).

        A count of comparisons rather than `torch.searchsorted`: the same ids for sorted edges, and it exports to
        ONNX (which has no searchsorted); `[B, F, edges]` booleans is small for the bucket counts used here.
        """
        return (x.unsqueeze(-1) >= self.boundaries).sum(-1)


def equal_width_edges(stats: NumericStats, n_buckets: int) -> np.ndarray:
    """Interior edges of `n_buckets` equal-width buckets over the train [min, max]."""
    if stats.max <= stats.min:
        return np.zeros(0)
    return np.linspace(stats.min, stats.max, n_buckets + 1)[1:-1]


def level_edges(field: FieldSpec, n_buckets: int) -> np.ndarray:
    """Interior edges halfway between the train levels of a few-valued integer field: one bucket per value.

    A field without levels (not integer, or more than 100 values) gets `n_buckets` equal-frequency buckets instead,
    so `levels` is defined for every field; `auto` picks it only where the levels exist.
    """
    levels = np.asarray(field_stats(field).levels, dtype=np.float64)
    if len(levels) == 0:
        return equal_freq_edges(field_stats(field), n_buckets)
    return (levels[1:] + levels[:-1]) / 2


def is_skewed_count(stats: NumericStats) -> bool:
    """Non-negative and right-skewed (the upper decile spread exceeds 3x the lower): a count to log-transform."""
    q = np.asarray(stats.quantiles, dtype=np.float64)
    if stats.min < 0 or len(q) < 11:
        return False
    q10, q50, q90 = np.interp([10, 50, 90], np.linspace(0, 100, len(q)), q)
    return bool(q90 - q50 > 3 * (q50 - q10) + 1e-12)


AUTO_MAX_LEVELS = 20  # `auto` embeds each value of an integer field with at most this many (the default bucket count)


def auto_kind(field: FieldSpec) -> str:
    """What `auto` encodes a numerical field with, from its train statistics (chosen once, on no dataset's test split).

    The schema's bucket ids where it declares buckets; `levels` (one embedding per value, as a categorical field) for
    an integer field with at most `AUTO_MAX_LEVELS` distinct values (ratings, ordinal codes, small counts);
    `log_square` for a non-negative right-skewed field (counts: Criteo's winners' encoding); `scalar` for the rest.
    At up to 100 levels, ml100k's age (59 values) and release year (72) lost 0.006 valid AUC to scalar (3 seeds,
    bench/log/2026-12-05-issue25-new-data.md), hence the lower bound.
    """
    if field.buckets != "none":
        return "bucket"
    stats = field.stats
    if stats is None:
        return "scalar"
    if 2 <= len(stats.levels) <= AUTO_MAX_LEVELS:
        return "levels"
    return "log_square" if is_skewed_count(stats) else "scalar"


def equal_freq_edges(stats: NumericStats, n_buckets: int) -> np.ndarray:
    """Interior edges of `n_buckets` equal-frequency buckets, from the stored train percentiles (ties merge)."""
    q = np.asarray(stats.quantiles, dtype=np.float64)
    if len(q) == 0:
        return np.zeros(0)
    pct = np.linspace(0, 100, n_buckets + 1)[1:-1]
    return np.unique(np.interp(pct, np.linspace(0, 100, len(q)), q))


class LogSquareEncoder(_TableEncoder):
    """Criteo winners' buckets: id of `floor(log(x)^2)` for x > 2, of `floor(x)` for x <= 2.

    The key range comes from the train min/max; keys beyond it (unseen at train time) share the
    nearest end id, and `floor(x)` keys below `LOG_SQUARE_MIN_KEY` share one id.
    """

    kind = "log_square"

    def __init__(self, fields: list[FieldSpec], dim: int, init_std: float = 1e-4) -> None:
        super().__init__(fields, dim)
        stats = [field_stats(f) for f in fields]
        lows = [max(LOG_SQUARE_MIN_KEY, min(2, math.floor(s.min))) for s in stats]
        highs = [math.floor(math.log(s.max) ** 2) if s.max > 2 else 0 for s in stats]
        self.register_buffer("low", torch.tensor(lows, dtype=torch.float32), persistent=False)
        self.register_buffer("high", torch.tensor(highs, dtype=torch.float32), persistent=False)
        self._build_table([(2 - lo + 1) + (hi + 1) for lo, hi in zip(lows, highs, strict=True)], init_std)

    def ids(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, F]` -> ids: small keys first (`floor(x) - low`), then the log-square keys."""
        small = torch.floor(x).clamp(min=self.low, max=torch.full_like(self.low, 2.0)) - self.low
        big = torch.floor(torch.log(x.clamp(min=2.0)) ** 2).clamp(max=self.high) + (3.0 - self.low)  # after small
        return torch.where(x > 2, big, small).long()


EncoderFactory = Callable[[list[FieldSpec], int, float, Mapping[str, Any]], NumericalEncoder]
NUMERICAL_ENCODERS: dict[str, EncoderFactory] = {}


def register_encoder(name: str, factory: EncoderFactory) -> None:
    """Add a numerical encoder under `name` (`factory(fields, dim, init_std, options) -> encoder`)."""
    if name in NUMERICAL_ENCODERS:
        raise ValueError(f"numerical encoder {name!r} is registered twice")
    NUMERICAL_ENCODERS[name] = factory


def _n_buckets(options: Mapping[str, Any]) -> int:
    n = int(options.get("n_buckets", DEFAULT_BUCKETS))
    if n < 2:
        raise SchemaError(f"numerical n_buckets must be >= 2, got {n}")
    return n


register_encoder("scalar", lambda fields, dim, init_std, options: ScalarEncoder(fields, dim, init_std))
register_encoder("bucket_equal_width", lambda fields, dim, init_std, options: BucketEncoder(
    fields, dim, [equal_width_edges(field_stats(f), _n_buckets(options)) for f in fields], init_std))
register_encoder("bucket_equal_freq", lambda fields, dim, init_std, options: BucketEncoder(
    fields, dim, [equal_freq_edges(field_stats(f), _n_buckets(options)) for f in fields], init_std))
register_encoder("log_square", lambda fields, dim, init_std, options: LogSquareEncoder(fields, dim, init_std))
register_encoder("levels", lambda fields, dim, init_std, options: BucketEncoder(
    fields, dim, [level_edges(f, _n_buckets(options)) for f in fields], init_std))

# `bucket`: the schema's bucket ids where a field declares buckets, `scalar` elsewhere; `auto`: see `auto_kind`.
SCHEMA_KINDS = ("auto", "bucket")
BUILTIN_KINDS = ("scalar", "bucket_equal_width", "bucket_equal_freq", "log_square", "levels", "autodis")
# Encoders that register themselves from a higher layer, loaded on first use (so a model without them imports
# nothing above nn): AutoDis lives in the model space.
LAZY_KINDS = {"autodis": "recnas.space.autodis"}


def build_encoder(kind: str, fields: list[FieldSpec], dim: int, init_std: float,
                  options: Mapping[str, Any] | None = None) -> NumericalEncoder:
    """Build a registered numerical encoder, with a clear error when it is unknown or not loaded."""
    if kind not in NUMERICAL_ENCODERS and kind in LAZY_KINDS:  # registered by a module of a higher layer
        importlib.import_module(LAZY_KINDS[kind])
    if kind not in NUMERICAL_ENCODERS:
        if kind in BUILTIN_KINDS:
            raise SchemaError(f"numerical encoder {kind!r} is not loaded; `import recnas.space` first")
        raise SchemaError(f"unknown numerical encoder {kind!r}; choose one of "
                          f"{sorted({*SCHEMA_KINDS, *BUILTIN_KINDS, *NUMERICAL_ENCODERS})}")
    return NUMERICAL_ENCODERS[kind](fields, dim, init_std, dict(options or {}))
