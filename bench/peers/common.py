"""Shared pieces of the peer-comparison workers: reading the splits, the shared setting, the stop rule.

Imported by the worker scripts in this folder, which run either in the peers venv (FuxiCTR, DeepCTR-Torch)
or in the recnas venv (the bare PyTorch loop). Needs numpy, pyarrow, scikit-learn and torch, which both
venvs have; nothing from recnas.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SPLITS = ("train", "valid", "test")


def parse_worker_args() -> tuple[dict, Path]:
    """Every worker takes `--spec JSON --out PATH`: the run's settings in, one result JSON out."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True, help="the run's settings as a JSON object")
    ap.add_argument("--out", required=True, type=Path, help="where to write the result JSON")
    args = ap.parse_args()
    return json.loads(args.spec), args.out


def set_threads(n: int) -> None:
    """Same thread count everywhere: the env vars (set by the driver too) and torch's intra-op pool."""
    import torch

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    torch.set_num_threads(n)


def seed_all(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return fh.readline().strip().split(",")


def read_split(path: Path, max_rows: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One split as {field: string values} plus labels (float32); the first `max_rows` rows if given."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = csv_header(path)
    label, fields = names[0], names[1:]
    types = {name: pa.string() for name in fields}
    types[label] = pa.float32()
    table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=False))
    if max_rows is not None:
        table = table.slice(0, max_rows)
    cols = {name: table.column(name).to_numpy(zero_copy_only=False).astype(str) for name in fields}
    return cols, table.column(label).to_numpy().astype(np.float32)


class FieldEncoder:
    """Per-field ids: train values sorted (as sklearn's LabelEncoder does) get 0..n-1, anything unseen gets n."""

    def __init__(self, train_values: np.ndarray) -> None:
        self.classes = np.unique(train_values)

    @property
    def size(self) -> int:
        """Rows this field needs in an embedding table: the train values plus one out-of-vocabulary id."""
        return len(self.classes) + 1

    def transform(self, values: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.classes, values)
        pos_clipped = np.minimum(pos, len(self.classes) - 1)
        seen = (pos < len(self.classes)) & (self.classes[pos_clipped] == values)
        return np.where(seen, pos, len(self.classes)).astype(np.int64)


def load_encoded(data_dir: Path, max_train_rows: int | None = None) -> dict:
    """Read the three splits and encode them with vocabularies fitted on train (min count 1, one OOV id a field).

    Returns {"fields": [...], "sizes": [vocab + 1 per field], "train"/"valid"/"test": (ids [N, F] int64, y [N])}.
    """
    t = time.perf_counter()
    raw = {s: read_split(data_dir / f"{s}.csv", max_train_rows if s == "train" else None) for s in SPLITS}
    fields = list(raw["train"][0])
    encoders = {f: FieldEncoder(raw["train"][0][f]) for f in fields}
    out: dict = {"fields": fields, "sizes": [encoders[f].size for f in fields]}
    for s in SPLITS:
        cols, y = raw[s]
        out[s] = (np.stack([encoders[f].transform(cols[f]) for f in fields], axis=1), y)
    out["preprocess_seconds"] = time.perf_counter() - t
    return out


def auc_logloss(y_true: np.ndarray, prob: np.ndarray) -> tuple[float, float]:
    """Test/validation metrics as FuxiCTR computes them: sklearn on float64 probabilities."""
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(prob, dtype=np.float64).reshape(-1)
    return float(roc_auc_score(y, p)), float(log_loss(y, p, labels=[0.0, 1.0]))


class PlateauRule:
    """FuxiCTR's `BaseModel.checkpoint_and_earlystop` with `reduce_lr_on_plateau=True`, monitor AUC (max).

    After each epoch: an AUC that does not beat the best by `min_delta` is a bad epoch and multiplies every
    param group's lr by `factor` (never below `min_lr`, as FuxiCTR's `lr_decay`); `patience` bad epochs in a
    row stop training. Otherwise the best is updated and the caller keeps the weights.
    """

    def __init__(self, patience: int = 2, factor: float = 0.1, min_lr: float = 1e-6, min_delta: float = 1e-6):
        self.patience, self.factor, self.min_lr, self.min_delta = patience, factor, min_lr, min_delta
        self.best = -np.inf
        self.bad = 0

    def step(self, value: float, optimizer) -> tuple[bool, bool]:  # noqa: ANN001
        """Returns (improved, stop)."""
        improved = not value < self.best + self.min_delta
        if improved:
            self.best = value
            self.bad = 0
        else:
            self.bad += 1
            for group in optimizer.param_groups:
                group["lr"] = max(group["lr"] * self.factor, self.min_lr)
        return improved, self.bad >= self.patience


def train_with_plateau(spec: dict, optimizer, train_epoch: Callable[[], None],  # noqa: ANN001
                       valid_auc: Callable[[], float], save_best: Callable[[], None]) -> dict:
    """The outer loop shared by the DeepCTR-Torch and bare workers: train an epoch, validate, apply the rule.

    Training and evaluation are timed apart; `save_best` (keeping the best weights) counts as evaluation,
    as FuxiCTR's checkpoint save does inside its `eval_step`.
    """
    rule = PlateauRule(spec["patience"], spec["lr_factor"], spec["min_lr"])
    train_s = eval_s = 0.0
    history = []
    epochs = 0
    for epoch in range(spec["epochs"]):
        t = time.perf_counter()
        train_epoch()
        train_s += time.perf_counter() - t
        epochs = epoch + 1
        t = time.perf_counter()
        auc = valid_auc()
        lr = optimizer.param_groups[0]["lr"]
        improved, stop = rule.step(auc, optimizer)
        if improved:
            save_best()
        eval_s += time.perf_counter() - t
        history.append({"epoch": epochs, "valid_auc": auc, "lr": lr, "improved": improved})
        if stop:
            break
    return {"epochs": epochs, "train_seconds": train_s, "eval_seconds": eval_s, "valid_auc": float(rule.best),
            "history": history}


def base_versions() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "executable": sys.executable}


def write_result(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
