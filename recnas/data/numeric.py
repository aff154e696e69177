"""Numerical-field transforms: z-score, Criteo log-square buckets, equal-frequency buckets.

Bucket transforms produce integer bucket *keys* (as text); a `Vocabulary` fitted on train keys
turns them into embedding ids, so bucket ids get frequencies and an OOV id like any category.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from recnas.data.schema import FieldSpec, NumericStats

N_QUANTILES = 101  # percentiles 0..100 kept in the stats
MAX_LEVELS = 100  # an integer field with at most this many distinct train values keeps them as `levels`


def zscore(x: np.ndarray, stats: NumericStats) -> np.ndarray:
    """(x - mean) / std with missing (NaN) values set to 0, the mean."""
    std = stats.std if stats.std > 0 else 1.0
    z = (x - stats.mean) / std
    return np.where(np.isnan(z), 0.0, z).astype(np.float32)


def log_square_key(x: np.ndarray) -> np.ndarray:
    """Criteo convention: x > 2 -> 1e6 + floor(log(x)^2), else floor(x); NaN gets -1e9 (masked by the caller)."""
    out = np.full(x.shape, -(10**9), dtype=np.int64)
    ok = ~np.isnan(x)
    big = ok & (x > 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[big] = np.floor(np.log(x[big]) ** 2).astype(np.int64) + 10**6
    small = ok & ~big
    out[small] = np.floor(x[small]).astype(np.int64)
    return out


def quantile_boundaries(spec: FieldSpec, stats: NumericStats) -> np.ndarray:
    """Interior boundaries of `n_buckets` equal-frequency buckets, from the stored percentiles."""
    q = np.asarray(stats.quantiles, dtype=np.float64)
    if len(q) == 0:
        return np.zeros(0)
    pct = np.linspace(0, 100, spec.n_buckets + 1)[1:-1]
    return np.unique(np.interp(pct, np.linspace(0, 100, len(q)), q))


def bucket_keys(spec: FieldSpec, x: np.ndarray, stats: NumericStats) -> pa.Array:
    """Bucket keys of `x` for `spec.buckets`, as text tokens (missing -> null).

    Log-square keys above 2 are offset by 1e6 so they never collide with the small raw integers.
    """
    if spec.buckets == "log":
        keys = log_square_key(x)
    else:
        keys = np.searchsorted(quantile_boundaries(spec, stats), x, side="right").astype(np.int64)
    return pa.array(keys, mask=np.isnan(x)).cast(pa.string())


class NumericAccumulator:
    """Running count, mean, std, min, max and a seeded reservoir sample for percentiles."""

    def __init__(self, reservoir: int = 200_000, seed: int = 0) -> None:
        self.n = 0
        self.missing = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations (merged per chunk, Chan et al.)
        self.lo = np.inf
        self.hi = -np.inf
        self.cap = reservoir
        self.rng = np.random.default_rng(seed)
        self.sample = np.zeros(0)
        self.keys = np.zeros(0)
        self.levels: set[float] | None = set()  # distinct values while integer and few; None once not

    def update(self, x: np.ndarray) -> None:
        """Add one chunk of values (NaN = missing)."""
        ok = x[~np.isnan(x)]
        self.missing += len(x) - len(ok)
        if len(ok) == 0:
            return
        n_b, mean_b = len(ok), float(ok.mean())
        m2_b = float(np.square(ok - mean_b).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n
        if self.levels is not None:
            integer = bool(np.all(ok == np.round(ok)))
            if integer:
                self.levels.update(np.unique(ok).tolist())
            if not integer or len(self.levels) > MAX_LEVELS:
                self.levels = None
        self.lo = min(self.lo, float(ok.min()))
        self.hi = max(self.hi, float(ok.max()))
        keys = np.concatenate([self.keys, self.rng.random(len(ok))])
        sample = np.concatenate([self.sample, ok])
        if len(sample) > self.cap:
            keep = np.argpartition(keys, self.cap)[: self.cap]
            keys, sample = keys[keep], sample[keep]
        self.keys, self.sample = keys, sample

    def stats(self) -> NumericStats:
        """The accumulated statistics."""
        if self.n == 0:
            return NumericStats(0, self.missing, 0.0, 1.0, 0.0, 0.0, ())
        q = np.percentile(self.sample, np.linspace(0, 100, N_QUANTILES))
        std = float(np.sqrt(self.m2 / self.n))
        return NumericStats(self.n, self.missing, self.mean, std, self.lo, self.hi,
                            tuple(float(v) for v in q), tuple(sorted(self.levels or ())))
