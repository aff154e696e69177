"""Shared by the zoo's and the methods' export checks: raw rows with the hard cases, and the parity assertion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv

BATCH_SIZES = (1, 37, 4096)
TOLERANCE = 1e-5
HEAD_ROWS = 200  # rows scored one at a time (batch size 1)


def hard_rows_csv(synth_dir: Path, out: Path, rows: int = 4200) -> Path:
    """The synthetic test split repeated to `rows`, with unseen and missing categories, missing numbers and empty
    or unseen multi-valued lists planted on fixed rows (written once, reused by every model)."""
    if out.is_file():
        return out
    names = (synth_dir / "test.csv").read_text().splitlines()[0].replace('"', "").split(",")
    as_text = {n: pa.string() for n in names if n != "label"}
    table = pv.read_csv(synth_dir / "test.csv", convert_options=pv.ConvertOptions(column_types=as_text))
    table = table.take(np.arange(rows) % table.num_rows)
    cols = {name: table[name].to_pylist() for name in table.column_names}
    i = np.arange(rows)
    for r in i[i % 7 == 0]:
        cols["c1"][r] = f"never_seen_{r}"
    for r in i[i % 9 == 0]:
        cols["c2"][r] = None
    for r in i[i % 5 == 0]:
        cols["n1"][r] = None
    for r in i[i % 11 == 0]:
        cols["n2"][r] = None
    for r in i[i % 6 == 0]:
        cols["m1"][r] = None
    for r in i[i % 13 == 0]:
        cols["m1"][r] = "never_seen|1"
    pv.write_csv(pa.table({k: pa.array(v, type=table.schema.field(k).type) for k, v in cols.items()}), out)
    return out


def head_rows(rows: Path) -> Path:
    """The first HEAD_ROWS rows of a CSV written by `hard_rows_csv` (beside it, written once)."""
    head = rows.with_name(rows.stem + "_head.csv")
    if not head.is_file():
        head.write_text("\n".join(rows.read_text().splitlines()[: HEAD_ROWS + 1]) + "\n")
    return head


def assert_onnx_matches_torch(run_dir: Path, rows: Path, work: Path) -> dict:
    """Export `run_dir`, then score `rows` with torch and with onnxruntime at each batch size: the same scores
    within TOLERANCE, the same labels and the same unseen-value counts. Returns the export's preprocess.json."""
    from recnas.experiment.export import export_run
    from recnas.experiment.run import predict_file
    from recnas.serving import predict_onnx

    summary = export_run(run_dir, work / "export")
    assert summary["max_abs_diff"] <= TOLERANCE
    _, torch_report = predict_file(run_dir, rows, work / "torch.csv")
    want = pv.read_csv(work / "torch.csv")
    assert want.num_rows == len(rows.read_text().splitlines()) - 1
    head = head_rows(rows)  # batch 1 row by row over the first rows only: they hold every planted case
    for b in BATCH_SIZES:
        scored = head if b == 1 else rows
        _, report = predict_onnx(work / "export", scored, work / f"onnx_{b}.csv", batch_size=b)
        got = pv.read_csv(work / f"onnx_{b}.csv")
        expected = want.slice(0, got.num_rows)
        assert got["label"].equals(expected["label"]) and got.num_rows in (HEAD_ROWS, want.num_rows)
        diff = np.abs(got["score"].to_numpy() - expected["score"].to_numpy()).max()
        assert diff <= TOLERANCE, f"batch {b}: onnxruntime differs from torch by {diff:.2e}"
        assert sum(report.oov.values()) > 0 and (scored is head or report.oov == torch_report.oov)
    return json.loads((work / "export" / "preprocess.json").read_text())
