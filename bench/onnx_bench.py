"""ONNX export benchmark (issue 23): file size against embedding parameters, and onnxruntime against torch.

    # size: export each run folder (label=folder) and compare model.onnx bytes with the EP of the first of its dataset
    .venv/bin/python bench/onnx_bench.py size --run frappe_full:deepfm=DIR --run frappe_full:autodim=DIR ... \
        --out bench/results/onnx_size.json
    # speed, side by side in one process (frappe_full test split): batch-1 latency p50/p99 and batch-4,096
    # throughput of torch eager, torch.compile and onnxruntime, at 1 and 2 threads, on encoded rows (the model
    # alone) and on raw rows (recnas's encoder + the model: raw rows -> probabilities)
    .venv/bin/python bench/onnx_bench.py speed --run DIR --dataset frappe_full --out bench/results/onnx_speed.json

Time nothing else on the machine while `speed` runs. Exports go under bench/work/onnx/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recnas.fileio import write_text_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_bench import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "derived"
WORK = ROOT / "bench" / "work" / "onnx"
FLOAT_BYTES = 4


def size_rows(runs: list[tuple[str, str, Path]]) -> list[dict[str, Any]]:
    """Export each (dataset, label, folder) and measure; ratios are against the first run of the same dataset."""
    from recnas.experiment.export import export_run

    rows: list[dict[str, Any]] = []
    first: dict[str, dict[str, Any]] = {}
    for dataset, label, folder in runs:
        s = export_run(folder, WORK / f"{dataset}-{label}")
        metrics_path = Path(s["source"]) / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        ep = s["embedding_params"]
        row = {"dataset": dataset, "label": label, "folder": str(folder), "bytes": s["bytes"],
               "embedding_params": ep, "rest_bytes": s["bytes"] - FLOAT_BYTES * ep,
               "test_auc": metrics.get("test_auc"), "max_abs_diff": s["max_abs_diff"]}
        base = first.setdefault(dataset, row)
        row["bytes_ratio"] = row["bytes"] / base["bytes"]
        row["ep_ratio"] = row["embedding_params"] / base["embedding_params"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def size_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| dataset | model | test AUC | EP | EP share | model.onnx bytes | bytes share | bytes not in EP (dense "
             "layers, projections, graph) | of which beyond the full model's |",
             "|---|---|---|---|---|---|---|---|---|"]
    first: dict[str, dict[str, Any]] = {}
    for r in rows:
        base = first.setdefault(r["dataset"], r)
        auc = f"{r['test_auc']:.4f}" if r["test_auc"] is not None else "-"
        lines.append(f"| {r['dataset']} | {r['label']} | {auc} | {r['embedding_params']:,} | {r['ep_ratio']:.1%} | "
                     f"{r['bytes']:,} | {r['bytes_ratio']:.1%} | {r['rest_bytes']:,} | "
                     f"{r['rest_bytes'] - base['rest_bytes']:+,} |")
    return "\n".join(lines)


def timed(fn: Callable[[], Any], calls: int, warm: int) -> np.ndarray:
    """Seconds of each of `calls` calls of `fn` after `warm` untimed ones."""
    for _ in range(warm):
        fn()
    out = np.empty(calls)
    for i in range(calls):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return out


def measure(fn: Callable[[dict[str, np.ndarray]], Any], singles: list[dict[str, np.ndarray]],
            batch: dict[str, np.ndarray], table: Any, schema: Any, batches: int) -> dict[str, float]:
    """One engine's cell: encoded rows (the model alone) and raw rows (recnas's encoder, then the model)."""
    import itertools

    import torch

    from recnas.data.processor import encode_table

    n, big = len(singles), len(batch["y"])
    encoded = itertools.cycle(singles)
    raw = itertools.cycle(range(n))
    with torch.inference_mode():
        one = timed(lambda: fn(next(encoded)), n, 200)
        full = timed(lambda: fn(batch), batches, 3)
        raw1 = timed(lambda: fn(encode_table(schema, table.slice(next(raw), 1))[0]), min(n, 500), 20)
        raw_full = timed(lambda: fn(encode_table(schema, table.slice(0, big))[0]), batches, 2)
    return {"p50_us": float(np.median(one) * 1e6), "p99_us": float(np.percentile(one, 99) * 1e6),
            "rows_per_s": big / float(np.median(full)), "raw_p50_us": float(np.median(raw1) * 1e6),
            "raw_p99_us": float(np.percentile(raw1, 99) * 1e6), "raw_rows_per_s": big / float(np.median(raw_full))}


def speed_rows(run: Path, dataset: str, threads: list[int], rows_1: int, batches: int,
               rounds: int) -> list[dict[str, Any]]:
    """Every engine x threads x (encoded, raw) cell: batch-1 p50/p99 in microseconds, batch-4,096 rows/s (each the
    median over `rounds` interleaved rounds)."""
    import torch

    from recnas.data.batches import FieldBatch
    from recnas.data.processor import encode_table
    from recnas.data.readers import read_chunks
    from recnas.experiment.export import export_run
    from recnas.experiment.run import load_run
    from recnas.scoring import data_file
    from recnas.serving import OnnxModel

    folder = Path(dataset) if Path(dataset).is_dir() else DATA / dataset
    export = WORK / f"{folder.name}-speed"
    export_run(run, export)
    _, schema, model = load_run(run)
    table = next(read_chunks(data_file(folder, schema), schema, chunk_rows=8192))
    big = 4096
    table = table.slice(0, max(big, rows_1))
    arrays, _ = encode_table(schema, table)
    singles = [encode_table(schema, table.slice(i, 1))[0] for i in range(rows_1)]
    batch4k = {k: v[:big] for k, v in arrays.items()}
    rows = []
    for t in threads:
        torch.set_num_threads(t)
        onnx = OnnxModel.load(export, threads=t)
        engines: dict[str, Callable[[dict[str, np.ndarray]], Any]] = {
            "torch eager": lambda a: model(FieldBatch.from_arrays(a)),
            "onnxruntime": onnx.probabilities,
        }
        try:
            compiled = torch.compile(model, dynamic=False)
            started = time.perf_counter()
            with torch.inference_mode():
                compiled(FieldBatch.from_arrays(singles[0]))
                compiled(FieldBatch.from_arrays(batch4k))
            compile_s = time.perf_counter() - started
            engines["torch.compile"] = lambda a, c=compiled: c(FieldBatch.from_arrays(a))
        except Exception as e:  # noqa: BLE001 - reported as a cell, the bench goes on
            compile_s = None
            rows.append({"engine": "torch.compile", "threads": t, "error": f"{e.__class__.__name__}: {e}"[:200]})
        cells: dict[str, list[dict[str, float]]] = {name: [] for name in engines}
        for _ in range(rounds):  # engines interleaved, so a slow spell of the machine hits each of them alike
            for name, fn in engines.items():
                cells[name].append(measure(fn, singles, batch4k, table, schema, batches))
        for name, runs in cells.items():
            row: dict[str, Any] = {"engine": name, "threads": t, "rounds": rounds}
            row.update({k: float(np.median([r[k] for r in runs])) for k in runs[0]})
            row["rows_per_s_rounds"] = [r["rows_per_s"] for r in runs]
            if name == "torch.compile":
                row["compile_seconds"] = compile_s
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def speed_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| threads | engine | batch 1 p50 / p99 (us) | batch 4,096 rows/s (rounds' range) "
             "| raw row -> probability p50 / p99 (us) | raw 4,096 rows/s | batch-1 speed-up over eager |",
             "|---|---|---|---|---|---|---|"]
    eager = {r["threads"]: r for r in rows if r["engine"] == "torch eager"}
    for r in sorted(rows, key=lambda r: (r["threads"], r["engine"])):
        if "error" in r:
            lines.append(f"| {r['threads']} | {r['engine']} | failed: {r['error']} | | | | |")
            continue
        e = eager[r["threads"]]
        gain = f"{e['p50_us'] / r['p50_us']:.2f}x (raw {e['raw_p50_us'] / r['raw_p50_us']:.2f}x)"
        spread = f"{min(r['rows_per_s_rounds']):,.0f}-{max(r['rows_per_s_rounds']):,.0f}"
        lines.append(f"| {r['threads']} | {r['engine']} | {r['p50_us']:.0f} / {r['p99_us']:.0f} | "
                     f"{r['rows_per_s']:,.0f} ({spread}) | "
                     f"{r['raw_p50_us']:.0f} / {r['raw_p99_us']:.0f} | "
                     f"{r['raw_rows_per_s']:,.0f} | {gain} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["size", "speed", "table"])
    p.add_argument("--run", action="append", default=[], help="size: dataset:label=FOLDER (repeat; the first of "
                   "each dataset is the reference); speed: FOLDER")
    p.add_argument("--dataset", default="frappe_full", help="speed: dataset name or folder (its test split)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rows", type=int, default=2000, help="speed: single-row calls timed per cell")
    p.add_argument("--batches", type=int, default=30, help="speed: 4,096-row calls timed per cell")
    p.add_argument("--rounds", type=int, default=3, help="speed: interleaved rounds per cell (their median)")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    if a.mode == "table":
        doc = json.loads(a.out.read_text())
        print(size_table(doc["rows"]) if doc["mode"] == "size" else speed_table(doc["rows"]))
        return
    threads = [int(t) for t in a.threads.split(",")]
    if a.mode == "size":
        runs = []
        for spec in a.run:
            key, folder = spec.split("=", 1)
            dataset, label = key.split(":", 1)
            runs.append((dataset, label, Path(folder)))
        rows = size_rows(runs)
        text = size_table(rows)
    else:
        rows = speed_rows(Path(a.run[0]), a.dataset, threads, a.rows, a.batches, a.rounds)
        text = speed_table(rows)
    doc = {"date": dt.date.today().isoformat(), "command": "python " + " ".join(sys.argv),
           "machine": machine(max(threads)), "mode": a.mode, "rows": rows}
    write_text_atomic(a.out, json.dumps(doc, indent=2))
    print(text)


if __name__ == "__main__":
    main()
