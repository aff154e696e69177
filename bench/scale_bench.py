"""Scale benchmark (issue 22 point 1): seconds per million rows and peak RSS of each stage as the rows grow.

For each row count: `recnas synth --profile criteo` data (13 counts, 26 categorical fields of Criteo's
cardinalities), then prepare, then one epoch of DeepFM with the block-wise shuffle and the five fields of more
than a million ids hashed into 2^20 buckets (sparse gradients). Each stage runs in its own process, so its peak RSS
is its own. Goals: seconds per row at the largest count within 1.3x of the smallest; peak RSS within 1.5x and under
4 GB while the encoded data on disk is larger.

    .venv/bin/python bench/scale_bench.py --rows 1000000,5000000 --threads 2 --out bench/results/scale.json

One stage alone, e.g. a prepare into a new cache (the `prepare` stage reuses a valid one):

    .venv/bin/python bench/scale_bench.py --stage fresh_prepare --data bench/work/scale/criteo-50000000 --rows 50000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_bench import library_config, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HASHED = {"c3": 1 << 20, "c4": 1 << 20, "c12": 1 << 20, "c16": 1 << 20, "c21": 1 << 20}  # Criteo's > 1M fields


def stage_synth(data: Path, rows: int, threads: int) -> dict:
    from recnas.data.scale_synth import ScaleConfig, write_scale_synthetic

    if not (data / "truth.json").exists():
        write_scale_synthetic(data, ScaleConfig(rows=rows, seed=0))
    return {"disk_mib": sum(f.stat().st_size for f in data.iterdir()) / 2**20}


def config(data: Path, threads: int, work: Path | None = None):  # noqa: ANN201
    """The library's defaults on `data` (seed 0, its cache under `work`, by default beside it) plus the scale settings
    of the docstring."""
    hashed = "{" + ", ".join(f"{k}: {v}" for k, v in HASHED.items()) + "}"
    return library_config(data, 0, threads, work or data.parent, [
        f"data.hash_buckets={hashed}", "data.shuffle_window=1048576", "model.name=deepfm", "trainer.epochs=1",
        "trainer.sparse=true"])


def stage_prepare(data: Path, rows: int, threads: int, work: Path | None = None) -> dict:
    from recnas.experiment.run import load_splits

    splits = load_splits(config(data, threads, work))
    return {"cache_mib": sum(f.stat().st_size for f in splits.ds.path.rglob("*") if f.is_file()) / 2**20}


def stage_epoch(data: Path, rows: int, threads: int) -> dict:
    from recnas.experiment.run import run_train

    m = run_train(config(data, threads), data.parent / f"run-{rows}", log=lambda _m: None).metrics
    return {"train_seconds": m["train_seconds"], "test_auc": m["test_auc"], "embedding_params": m["embedding_params"]}


def stage_fresh_prepare(data: Path, rows: int, threads: int) -> dict:
    """Prepare into a new, empty cache folder (the `prepare` stage reuses a valid cache, which costs nothing)."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(dir=data.parent, prefix="fresh-cache-"))
    try:
        return stage_prepare(data, rows, threads, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


STAGES = {"synth": stage_synth, "prepare": stage_prepare, "epoch": stage_epoch, "fresh_prepare": stage_fresh_prepare}


def run_stage(name: str, data: Path, rows: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--stage", name, "--data", str(data), "--rows", str(rows),
           "--threads", str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit(f"stage {name} at {rows:,} rows failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="1000000,5000000")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "scale")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    p.add_argument("--stage", choices=sorted(STAGES))
    p.add_argument("--data", type=Path)
    args = p.parse_args()
    if args.stage:
        t = time.perf_counter()
        out = STAGES[args.stage](args.data, int(args.rows), args.threads)
        out.update(seconds=time.perf_counter() - t,
                   peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(out))
        return
    records = []
    for rows in (int(r) for r in args.rows.split(",")):
        data = args.work / f"criteo-{rows}"
        rec: dict = {"rows": rows}
        for name in ("synth", "prepare", "epoch"):
            rec[name] = run_stage(name, data, rows, args.threads)
            per_m = rec[name]["seconds"] / rows * 1e6
            print(f"{rows:,} rows {name}: {rec[name]['seconds']:.1f} s ({per_m:.1f} s per million rows), "
                  f"peak RSS {rec[name]['peak_rss_mib']:,.0f} MiB", flush=True)
        records.append(rec)
    base = records[0]
    summary = [{"rows": r["rows"], **{f"{s}_s_per_m": r[s]["seconds"] / r["rows"] * 1e6 for s in ("prepare", "epoch")},
                **{f"{s}_rss_mib": r[s]["peak_rss_mib"] for s in ("prepare", "epoch")},
                "cache_mib": r["prepare"]["cache_mib"],
                "time_vs_first": {s: (r[s]["seconds"] / r["rows"]) / (base[s]["seconds"] / base["rows"])
                                  for s in ("prepare", "epoch")},
                "rss_vs_first": {s: r[s]["peak_rss_mib"] / base[s]["peak_rss_mib"] for s in ("prepare", "epoch")}}
               for r in records]
    write_results(args.out, args.threads, records, summary)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
