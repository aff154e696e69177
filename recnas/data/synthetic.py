"""Synthetic CTR data with a planted truth: the built-in dataset and the oracle of algorithm tests.

The label is Bernoulli(sigmoid(logit)) with
    logit = bias + sum_f w_f[id_f]                      (first order, informative fields only)
          + sum_(a,b) s/sqrt(r) * <U_a[id_a], V_b[id_b]>  (rank-r pairwise interactions)
          + sum_(a,b,c) s/sqrt(r) * sum_k U_a V_b W_c       (optional third order, CP rank r)
          + u * (x_n1^2 - 1)                               (U-shaped numerical effect)
          + sum linear numerical effects + mean token weight of the multi-valued field,
while noise fields carry no signal. Ids are Zipf-distributed, so head and tail ids exist; a rank-r
interaction needs about r embedding dimensions to be learned. `truth.json` names all of it and the
Bayes-optimal test AUC (the AUC of the true probabilities).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq
import yaml

from recnas.errors import ConfigError

DEFAULT_CARDINALITIES = [2000, 1500, 500, 100, 40, 12, 200, 30]


@dataclass
class Interaction:
    """A planted interaction between 2 (or 3) fields with a given rank and scale."""

    fields: list[str]
    rank: int
    scale: float = 1.0


@dataclass
class SynthConfig:
    """Knobs of the generator; defaults give the demo dataset (see module docstring)."""

    rows: int = 100_000
    seed: int = 0
    cat_cardinalities: list[int] = field(default_factory=lambda: list(DEFAULT_CARDINALITIES))
    n_numerical: int = 2
    n_multi: int = 1
    multi_vocab: int = 30
    multi_max_len: int = 4
    n_noise_cat: int = 2
    zipf_exponent: float = 1.1
    interactions: list[Interaction] | None = None  # None: one rank-8 and one rank-2 pair
    third_order: bool = False
    first_order_std: float = 0.4
    u_shape_scale: float = 0.6
    numerical_missing_rate: float = 0.02
    numerical_kind: str = "default"  # "counts": every numerical field a skewed count (Criteo-shaped), see below
    bias: float = -1.0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    file_format: str = "csv"
    shuffle_fields: bool = False  # feature columns in a seeded order (files and schema): no method may lean on it

    def validate(self) -> None:
        """Raise `ConfigError` naming the bad knob."""
        if self.rows < 30:
            raise ConfigError(f"rows must be >= 30 (got {self.rows})")
        if len(self.cat_cardinalities) < 6:
            raise ConfigError("cat_cardinalities needs at least 6 fields (4 informative + 2 noise)")
        if any(c < 2 for c in self.cat_cardinalities):
            raise ConfigError(f"every cardinality must be >= 2 (got {self.cat_cardinalities})")
        if not 0 <= self.n_noise_cat <= len(self.cat_cardinalities) - 4:
            raise ConfigError("n_noise_cat must leave at least 4 informative categorical fields")
        if self.n_numerical < 1:
            raise ConfigError("n_numerical must be >= 1 (n1 carries the U-shaped effect)")
        if abs(sum(self.split) - 1.0) > 1e-9 or min(self.split) <= 0:
            raise ConfigError(f"split must be three positive shares summing to 1 (got {self.split})")
        for it in self.interactions or []:
            if len(it.fields) not in (2, 3) or len(set(it.fields)) != len(it.fields):
                raise ConfigError(f"an interaction joins 2 or 3 distinct fields, got {it.fields}")
            if it.rank < 1:
                raise ConfigError(f"interaction {it.fields}: rank must be >= 1, got {it.rank}")
        if self.numerical_kind not in ("default", "counts"):
            raise ConfigError(f"numerical_kind must be default or counts (got {self.numerical_kind!r})")
        if self.file_format not in ("csv", "parquet"):
            raise ConfigError(f"file_format must be csv or parquet (got {self.file_format!r})")

    @property
    def cat_names(self) -> list[str]:
        """Categorical field names c1..cK."""
        return [f"c{i + 1}" for i in range(len(self.cat_cardinalities))]

    @property
    def noise_cat(self) -> list[str]:
        """The last `n_noise_cat` categorical fields carry no signal."""
        return self.cat_names[len(self.cat_names) - self.n_noise_cat :]

    def planted(self) -> list[Interaction]:
        """The interactions to plant (defaults picked from the informative fields)."""
        if self.interactions is not None:
            return self.interactions
        card = dict(zip(self.cat_names, self.cat_cardinalities, strict=True))
        informative = [c for c in self.cat_names if c not in self.noise_cat]
        by_card = sorted(informative, key=lambda c: (-card[c], c))
        out = [Interaction(by_card[:2], rank=8, scale=1.2), Interaction(sorted(by_card[-2:]), rank=2, scale=1.0)]
        if self.third_order:
            out.append(Interaction(by_card[2:5], rank=2, scale=0.8))
        return out


def zipf_ids(rng: np.random.Generator, card: int, n: int, exponent: float) -> np.ndarray:
    """`n` ids in [0, card) with P(k) proportional to 1/(k+1)^exponent (id 0 is the head)."""
    p = 1.0 / np.arange(1, card + 1) ** exponent
    cdf = np.cumsum(p / p.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), card - 1).astype(np.int64)


def count_fields(rng: np.random.Generator, cfg: SynthConfig, names: list[str], cols: dict[str, Any],
                 noise: list[str], linear: list[str], nonlinear: list[str]) -> np.ndarray:
    """Criteo-shaped numerical fields: zero-inflated, log-normal counts; returns their logit contribution.

    With s the standardised log1p(count), field i gets, by i mod 4: a U shape u*(s^2 - 1), a wave
    0.8*sin(2s), a log-linear 0.3*s, or nothing (noise).
    """
    total = np.zeros(cfg.rows)
    for i, name in enumerate(names):
        mu, sigma, zeros = rng.uniform(0.5, 3.0), rng.uniform(0.8, 1.8), rng.uniform(0.0, 0.4)
        counts = np.floor(rng.lognormal(mu, sigma, cfg.rows))
        counts[rng.random(cfg.rows) < zeros] = 0.0
        u = np.log1p(counts)
        z = (u - u.mean()) / (u.std() or 1.0)
        kind = i % 4
        if kind == 0:
            total += cfg.u_shape_scale * (z**2 - 1.0)
            nonlinear.append(name)
        elif kind == 1:
            total += 0.8 * np.sin(2.0 * z)
            nonlinear.append(name)
        elif kind == 2:
            total += 0.3 * z
            linear.append(name)
        else:
            noise.append(name)
        counts[rng.random(cfg.rows) < cfg.numerical_missing_rate] = np.nan
        cols[name] = counts
    return total


def generate(cfg: SynthConfig) -> tuple[dict[str, Any], np.ndarray, np.ndarray, dict[str, Any]]:
    """Draw columns, true probabilities and labels; returns (columns, p, y, truth)."""
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    n = cfg.rows
    card = dict(zip(cfg.cat_names, cfg.cat_cardinalities, strict=True))
    cols: dict[str, Any] = {c: zipf_ids(rng, card[c], n, cfg.zipf_exponent) for c in cfg.cat_names}
    logit = np.full(n, cfg.bias)
    informative = [c for c in cfg.cat_names if c not in cfg.noise_cat]
    for c in informative:
        w = rng.normal(0.0, cfg.first_order_std, card[c])
        logit += w[cols[c]]
    inters = cfg.planted()
    for it in inters:
        for f in it.fields:
            if f not in card:
                raise ConfigError(f"interaction names field {f!r}; fields are {cfg.cat_names}")
            if f in cfg.noise_cat:
                raise ConfigError(f"interaction field {f!r} is a noise field")
        prod = np.ones((n, it.rank))
        for f in it.fields:
            prod *= rng.normal(0.0, 1.0, (card[f], it.rank))[cols[f]]
        logit += it.scale / np.sqrt(it.rank) * prod.sum(axis=1)
    num_names = [f"n{i + 1}" for i in range(cfg.n_numerical)]
    noise_num, linear_num, nonlinear_num = [], [], ["n1"]
    if cfg.numerical_kind == "counts":
        nonlinear_num = []
        logit += count_fields(rng, cfg, num_names, cols, noise_num, linear_num, nonlinear_num)
    else:
        x = rng.normal(0.0, 1.0, n)
        cols["n1"] = x
        logit += cfg.u_shape_scale * (x**2 - 1.0)
        for i, name in enumerate(num_names[1:]):
            counts = np.floor(rng.lognormal(1.5, 1.2, n))
            if i % 2 == 0:
                noise_num.append(name)
            else:
                linear_num.append(name)
                logit += 0.3 * (np.log1p(counts) - 1.5)
            counts[rng.random(n) < cfg.numerical_missing_rate] = np.nan
            cols[name] = counts
    mv_names = [f"m{i + 1}" for i in range(cfg.n_multi)]
    for name in mv_names:
        lengths = rng.integers(1, cfg.multi_max_len + 1, n)
        tokens = zipf_ids(rng, cfg.multi_vocab, int(lengths.sum()), 0.8)
        w = rng.normal(0.0, 0.6, cfg.multi_vocab)
        owner = np.repeat(np.arange(n), lengths)
        logit += np.bincount(owner, weights=w[tokens], minlength=n) / lengths
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        cols[name] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(tokens).cast(pa.string()))
    p = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.random(n) < p).astype(np.int64)
    truth = {
        "interactions": [it.fields for it in inters],
        "interaction_ranks": [it.rank for it in inters],
        "interaction_scales": [it.scale for it in inters],
        "informative_fields": informative + ["n1", *linear_num, *mv_names],
        "noise_fields": list(cfg.noise_cat) + noise_num,
        "nonlinear_numerical_fields": nonlinear_num,
        "linear_numerical_fields": linear_num,
        "cardinalities": card,
        "config": {**asdict(cfg), "interactions": [asdict(i) for i in inters]},
    }
    return cols, p, y, truth


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by scikit-learn (imported here so the data layer loads without it)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def column_spec(name: str) -> dict[str, Any]:
    """schema.yaml's entry of a generated column (c*: categorical, n*: numerical, m*: multi-valued)."""
    kind = {"c": "categorical", "n": "numerical", "m": "multi_categorical"}[name[0]]
    return {"name": name, "type": kind, **({"separator": "|"} if kind == "multi_categorical" else {})}


def write_synthetic(out: str | Path, cfg: SynthConfig) -> dict[str, Any]:
    """Write a dataset folder (train/valid/test, schema.yaml, truth.json) and return the truth."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cols, p, y, truth = generate(cfg)
    n = cfg.rows
    perm = np.random.default_rng([cfg.seed, 1]).permutation(n)
    n_train = int(n * cfg.split[0])
    n_valid = int(n * cfg.split[1])
    parts = {"train": perm[:n_train], "valid": perm[n_train : n_train + n_valid], "test": perm[n_train + n_valid :]}
    columns: dict[str, pa.Array] = {"label": pa.array(y)}
    order = list(cols)
    if cfg.shuffle_fields:
        order = [order[i] for i in np.random.default_rng([cfg.seed, 2]).permutation(len(order))]
    for name in order:
        v = cols[name]
        if isinstance(v, pa.ListArray):
            columns[name] = pc.binary_join(v, "|")
        elif name.startswith("c"):
            columns[name] = pa.array(v)
        else:
            columns[name] = pa.array(v, mask=np.isnan(v))
    table = pa.table(columns)
    ext = cfg.file_format
    for split, idx in parts.items():
        part = table.take(pa.array(np.sort(idx)))
        if ext == "csv":
            pv.write_csv(part, out / f"{split}.csv")
        else:
            pq.write_table(part, out / f"{split}.parquet")
    test = np.sort(parts["test"])
    valid = np.sort(parts["valid"])
    truth["bayes_test_auc"] = auc(y[test], p[test])
    truth["bayes_valid_auc"] = auc(y[valid], p[valid])
    truth["positive_rate"] = float(y.mean())
    truth["rows"] = {s: int(len(i)) for s, i in parts.items()}
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
    schema = {
        "name": out.name,
        "description": f"recnas synthetic data (seed {cfg.seed}); planted truth in truth.json",
        "files": {s: f"{s}.{ext}" for s in parts},
        "format": {"kind": ext, "delimiter": ",", "header": True},
        "label": "label",
        "columns": [{"name": "label", "type": "label", "values": [0, 1]}] + [column_spec(c) for c in order],
    }
    (out / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    return truth
