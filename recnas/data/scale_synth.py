"""Criteo-shaped synthetic data at any row count, written block by block in memory that does not grow with the rows.

The shape of Criteo's Kaggle set: 13 zero-inflated, log-normal counts (`i1`..`i13`, 2% missing) and 26 categorical
fields (`c1`..`c26`) with Criteo's cardinalities (up to 10 million ids, capped by `max_cardinality`) and Zipf-like
ids. Nothing per id is stored: an id's first-order weight and its latent vector are functions of (field, id, seed)
through a 64-bit mix, and ids are drawn from a continuous power law, so a field with millions of ids costs no
memory. Rows are drawn in blocks of `BLOCK_ROWS` from a generator seeded by (seed, block), so the same seed gives the
same files, and each block is appended to Parquet writers of train/valid/test (a seeded 80/10/10 draw per row).

The planted truth (truth.json): a first-order effect on every categorical field but the last four (noise), a
rank-4 pair interaction between `c1` and `c2`, a U shape on `i1`, a wave on `i2` and a log-linear `i3` (the rest of
the counts are noise); the Bayes AUC is measured on the first `TRUTH_ROWS` test rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from recnas.data.hashing import mix64
from recnas.errors import ConfigError

CRITEO_CARDINALITIES = (1460, 583, 10_131_227, 2_202_608, 305, 24, 12_517, 633, 3, 93_145, 5_683, 8_351_593, 3_194,
                        27, 14_992, 5_461_306, 10, 5_652, 2_173, 4, 7_046_547, 18, 15, 286_181, 105, 142_572)
BLOCK_ROWS = 1 << 16
TRUTH_ROWS = 1_000_000
N_COUNTS = 13
N_NOISE_CAT = 4
PAIR = ("c1", "c2")
PAIR_RANK = 4


@dataclass
class ScaleConfig:
    """Knobs of the Criteo-shaped generator."""

    rows: int = 1_000_000
    seed: int = 0
    max_cardinality: int | None = None  # cap on every field's ids (None: Criteo's own, up to 10,131,227)
    zipf_exponent: float = 1.1
    missing_rate: float = 0.02
    bias: float = -1.4
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)

    def validate(self) -> None:
        """Raise `ConfigError` naming the bad knob."""
        if self.rows < 100:
            raise ConfigError(f"--rows must be at least 100 for the criteo profile (got {self.rows})")
        if self.max_cardinality is not None and self.max_cardinality < 2:
            raise ConfigError(f"--max-cardinality must be at least 2 (got {self.max_cardinality})")
        if self.zipf_exponent <= 1.0:
            raise ConfigError(f"zipf_exponent must be above 1 (got {self.zipf_exponent})")
        if abs(sum(self.split) - 1.0) > 1e-9 or min(self.split) <= 0:
            raise ConfigError(f"split must be three positive shares summing to 1 (got {self.split})")

    def cardinalities(self) -> dict[str, int]:
        """{c1..c26: ids}, each capped at `max_cardinality`."""
        cap = self.max_cardinality or max(CRITEO_CARDINALITIES)
        return {f"c{i + 1}": min(c, cap) for i, c in enumerate(CRITEO_CARDINALITIES)}


def _uniform(ids: np.ndarray, salt: int) -> np.ndarray:
    """A value in [-1, 1) per id, fixed by (`salt`, id): a parameter table of any size without storing it."""
    with np.errstate(over="ignore"):
        key = ids.astype(np.uint64) * np.uint64(0x100000001B3) + np.uint64(salt & 0xFFFFFFFFFFFF)
        h = mix64(key + np.uint64(0x9E3779B97F4A7C15))  # splitmix64: step by its gamma, then finalise
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 52) - 1.0


def _power_law_ids(rng: np.random.Generator, card: int, n: int, s: float) -> np.ndarray:
    """`n` ids in [0, card), P(k) about proportional to (k+1)^-s (id 0 the head), by inverting the continuous law."""
    u = rng.random(n)
    top = float(card + 1) ** (1.0 - s)
    k = np.floor((1.0 + u * (top - 1.0)) ** (1.0 / (1.0 - s))) - 1.0
    return np.clip(k, 0, card - 1).astype(np.int64)


def _block(cfg: ScaleConfig, b: int, n: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Rows of block `b`: (columns, true probability, label, split 0/1/2)."""
    rng = np.random.default_rng([cfg.seed, b])
    cols: dict[str, np.ndarray] = {}
    logit = np.full(n, cfg.bias)
    counts = []
    for i in range(N_COUNTS):
        p = np.random.default_rng([cfg.seed, 10_000 + i])  # the field's own shape, the same in every block
        mu, sigma, zeros = p.uniform(0.5, 3.0), p.uniform(0.8, 1.8), p.uniform(0.0, 0.4)
        c = np.floor(rng.lognormal(mu, sigma, n))
        c[rng.random(n) < zeros] = 0.0
        z = (np.log1p(c) - mu) / sigma
        if i == 0:
            logit += 0.6 * (z**2 - 1.0)
        elif i == 1:
            logit += 0.8 * np.sin(2.0 * z)
        elif i == 2:
            logit += 0.3 * z
        c[rng.random(n) < cfg.missing_rate] = np.nan
        counts.append(c)
    for i, c in enumerate(counts):
        cols[f"i{i + 1}"] = c
    cards = cfg.cardinalities()
    names = list(cards)
    for j, (name, card) in enumerate(cards.items()):
        ids = _power_law_ids(rng, card, n, cfg.zipf_exponent)
        cols[name] = ids
        if j < len(names) - N_NOISE_CAT:
            logit += 0.3 * _uniform(ids, cfg.seed * 1000 + j)
    pair = np.zeros(n)
    a, b_ = (cols[f] for f in PAIR)
    for r in range(PAIR_RANK):
        pair += _uniform(a, cfg.seed * 1000 + 100 + r) * _uniform(b_, cfg.seed * 1000 + 200 + r)
    logit += 2.0 * pair / np.sqrt(PAIR_RANK)
    prob = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.random(n) < prob).astype(np.int64)
    split = np.searchsorted(np.cumsum(cfg.split)[:-1], rng.random(n), side="right")
    return cols, prob, y, split


def _table(cols: dict[str, np.ndarray], y: np.ndarray, rows: np.ndarray) -> pa.Table:
    out: dict[str, pa.Array] = {"label": pa.array(y[rows])}
    for name, v in cols.items():
        part = v[rows]
        out[name] = pa.array(part, mask=np.isnan(part)) if name.startswith("i") else pa.array(part)
    return pa.table(out)


def write_scale_synthetic(out: str | Path, cfg: ScaleConfig, log: Any = None) -> dict[str, Any]:
    """Write train/valid/test.parquet, schema.yaml and truth.json to `out`, block by block; return the truth."""
    from recnas.data.synthetic import auc

    cfg.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = ("train", "valid", "test")
    writers: dict[str, pq.ParquetWriter] = {}
    rows = dict.fromkeys(names, 0)
    positives = 0
    truth_p: list[np.ndarray] = []
    truth_y: list[np.ndarray] = []
    try:
        for b, lo in enumerate(range(0, cfg.rows, BLOCK_ROWS)):
            n = min(BLOCK_ROWS, cfg.rows - lo)
            cols, prob, y, split = _block(cfg, b, n)
            positives += int(y.sum())
            for s, name in enumerate(names):
                idx = np.flatnonzero(split == s)
                table = _table(cols, y, idx)
                if name not in writers:
                    writers[name] = pq.ParquetWriter(out / f"{name}.parquet", table.schema)
                writers[name].write_table(table)
                rows[name] += len(idx)
                if name == "test" and sum(len(t) for t in truth_y) < TRUTH_ROWS:
                    truth_p.append(prob[idx])
                    truth_y.append(y[idx])
            if log is not None and b % 64 == 63:
                log(f"{lo + n:,} of {cfg.rows:,} rows")
    finally:
        for w in writers.values():
            w.close()
    ty, tp = np.concatenate(truth_y)[:TRUTH_ROWS], np.concatenate(truth_p)[:TRUTH_ROWS]
    cards = cfg.cardinalities()
    cat_names = list(cards)
    truth = {
        "profile": "criteo", "rows": rows, "positive_rate": positives / cfg.rows,
        "bayes_test_auc": auc(ty, tp) if 0 < ty.sum() < len(ty) else None, "bayes_rows": len(ty),
        "interactions": [list(PAIR)], "interaction_ranks": [PAIR_RANK],
        "noise_fields": cat_names[-N_NOISE_CAT:] + [f"i{i + 1}" for i in range(3, N_COUNTS)],
        "nonlinear_numerical_fields": ["i1", "i2"], "linear_numerical_fields": ["i3"], "cardinalities": cards,
        "config": {**asdict(cfg), "block_rows": BLOCK_ROWS},
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
    columns = ([{"name": "label", "type": "label", "values": [0, 1]}]
               + [{"name": f"i{i + 1}", "type": "numerical"} for i in range(N_COUNTS)]
               + [{"name": c, "type": "categorical"} for c in cat_names])
    schema = {"name": out.name, "description": f"recnas Criteo-shaped synthetic data (seed {cfg.seed}, {cfg.rows:,} "
              "rows); planted truth in truth.json", "files": {s: f"{s}.parquet" for s in names},
              "format": {"kind": "parquet", "delimiter": ",", "header": True}, "label": "label", "columns": columns}
    (out / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    return truth
