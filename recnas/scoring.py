"""Scoring raw rows into predictions.csv and metrics, shared by the torch and the ONNX paths (imports no torch).

`score_file` reads a data file chunk by chunk through a fitted schema, asks a scorer for the logits of each
encoded chunk, and writes `score[,label]` atomically; both `recnas predict` engines go through it, so they write
the same file and count unseen categories the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recnas.data.processor import EncodeReport, FeatureProcessor
from recnas.data.readers import ReadReport
from recnas.data.schema import Schema
from recnas.errors import DataError, TrainingError
from recnas.fileio import write_atomic

# The encoded arrays one chunk of rows gives a scorer -> that chunk's logits `[rows]` (float).
Scorer = Callable[[dict[str, np.ndarray]], np.ndarray]


def binary_metrics(y: np.ndarray, logits: np.ndarray, split: str = "scored") -> dict[str, float]:
    """AUC and logloss of logits against 0/1 labels (AUC is NaN when only one class is present).

    Scores that are not finite are an error naming the `split` and the first such row, never a metric.
    """
    from sklearn.metrics import log_loss, roc_auc_score

    bad = ~np.isfinite(logits)
    if bad.any():
        raise TrainingError(f"the model's scores on the {split} rows are not finite for {int(bad.sum()):,} of "
                            f"{len(logits):,} rows (first: row {int(np.argmax(bad))}); an input value there is out "
                            "of range for the model (check that split's numerical fields) or the weights diverged")
    p = np.clip(sigmoid(logits), 1e-7, 1 - 1e-7)
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return {"auc": auc, "logloss": float(log_loss(y, p, labels=[0, 1]))}


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities of logits, in float64 (the one formula both engines write)."""
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def data_file(data: str | Path, schema: Schema) -> Path:
    """`data` itself, or the test split of a dataset folder."""
    from recnas.data.source import open_dataset

    data = Path(data)
    path = open_dataset(data, schema=schema).splits.get("test") if data.is_dir() else data
    if path is None:
        raise DataError(f"{data}: no test file in this folder; pass a data file")
    return Path(path)


def score_rows(schema: Schema, path: Path, scorer: Scorer, require_label: bool = False, on_bad_row: str = "error"
               ) -> tuple[np.ndarray, np.ndarray, EncodeReport, ReadReport]:
    """(labels, logits, encode report, read report) of every row of `path`, read chunk by chunk through `schema`."""
    proc = FeatureProcessor(schema, on_bad_row=on_bad_row, require_label=require_label)
    report = EncodeReport()
    ys, outs = [], []
    read = ReadReport(Path(path))
    for arrays, rep in proc.transform_chunks(path, read):
        report.add(rep)
        ys.append(arrays["y"])
        outs.append(np.asarray(scorer(arrays), dtype=np.float32).reshape(-1))
    y_all = np.concatenate(ys) if ys else np.zeros(0, np.float32)
    logits_all = np.concatenate(outs) if outs else np.zeros(0, np.float32)
    return y_all, logits_all, report, read


def score_file(schema: Schema, path: Path, scorer: Scorer, out: Path) -> tuple[dict[str, Any], EncodeReport]:
    """Score the rows of `path` (CSV/Parquet/...; the label column may be missing) and write `out` as CSV.

    Nothing is written when a score is not finite (the error names the first such row).
    """
    if out.is_dir():
        raise DataError(f"{out}: is a folder; pass a file path for the scores (e.g. {out / 'predictions.csv'})")
    y_all, logits_all, report, read = score_rows(schema, path, scorer)
    bad = ~np.isfinite(logits_all)
    if bad.any():  # never write scores that are not numbers
        raise DataError(f"{path}: the model's scores are not finite for {int(bad.sum()):,} of {len(bad):,} rows "
                        f"(first: data row {int(np.argmax(bad)) + 1}); a numerical value there is out of range for the "
                        f"model; nothing was written to {out}")
    p_all = sigmoid(logits_all)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DataError(f"{out}: a part of this path is a file, not a folder; pass another output path") from None
    import pyarrow as pa
    import pyarrow.csv as pv

    columns = {"score": p_all, "label": y_all.astype(np.int64)} if read.labeled else {"score": p_all}
    table = pa.table(columns)
    write_atomic(out, lambda tmp: pv.write_csv(table, str(tmp)))
    summary = {"rows": len(p_all), "path": str(path), "out": str(out), "labeled": read.labeled}
    if read.labeled and 0 < y_all.sum() < len(y_all):
        summary.update(binary_metrics(y_all, logits_all, str(path)))
    return summary, report


__all__ = ["Scorer", "binary_metrics", "data_file", "score_file", "score_rows", "sigmoid"]
