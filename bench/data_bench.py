"""Data-layer benchmark: prepare, cache reload and batch iteration on a Criteo-like synthetic set.

1,000,000 rows, 39 fields (13 numerical, 26 categorical with Criteo-like cardinalities capped at
1e6). Each phase runs in its own process so its peak RSS is its own. Writes
bench/results/data_bench.json and appends a line to bench/log/unsorted.md.

    .venv/bin/python bench/data_bench.py [--rows 1000000] [--work bench/work]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from recnas.data.scale_synth import CRITEO_CARDINALITIES

ROOT = Path(__file__).resolve().parents[1]
# Zipf exponent 0.8 (flatter than the default 1.1) so the largest fields really hold ~1e5-1e6 distinct ids.
# Criteo Kaggle train cardinalities of C1..C26, capped at 1e6
CARDS = [min(c, 1_000_000) for c in CRITEO_CARDINALITIES]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_synth(work: Path, rows: int) -> dict:
    from recnas.data.synthetic import SynthConfig, write_synthetic

    t = time.perf_counter()
    truth = write_synthetic(work / "criteo_like", SynthConfig(
        rows=rows, seed=0, cat_cardinalities=CARDS, n_numerical=13, n_multi=0, n_noise_cat=2,
        numerical_missing_rate=0.1, zipf_exponent=0.8))
    return {"seconds": time.perf_counter() - t, "bayes_test_auc": truth["bayes_test_auc"]}


def phase_prepare(work: Path, rows: int) -> dict:
    from recnas.data.cache import prepare
    from recnas.data.source import open_dataset

    t = time.perf_counter()
    ds = prepare(open_dataset(work / "criteo_like"), work / "cache")
    return {"seconds": time.perf_counter() - t, "reused": ds.reused, "path": str(ds.path),
            "rows": {s: ds.rows(s) for s in ds.splits},
            "cache_mib": sum(f.stat().st_size for f in ds.path.rglob("*") if f.is_file()) / 2**20,
            "max_cardinality": max(f.cardinality for f in ds.schema.categorical)}


def phase_reload(work: Path, rows: int) -> dict:
    from recnas.data.cache import load_prepared

    path = next(p for p in (work / "cache").iterdir() if not p.name.startswith("."))
    t = time.perf_counter()
    ds = load_prepared(path)
    n = ds.rows("train")
    return {"seconds": time.perf_counter() - t, "train_rows": n}


def phase_iterate(work: Path, rows: int) -> dict:
    import torch

    from recnas.data.cache import load_prepared

    torch.set_num_threads(2)
    path = next(p for p in (work / "cache").iterdir() if not p.name.startswith("."))
    ds = load_prepared(path)
    out = {}
    for shuffle in (True, False):
        it = ds.batches("train", batch_size=4096, shuffle=shuffle, seed=0)
        for _ in it:  # warm the page cache once
            pass
        t = time.perf_counter()
        n = 0
        for b in it:
            n += len(b)
        out["shuffled" if shuffle else "sequential"] = n / (time.perf_counter() - t)
    return {"rows_per_s": out}


PHASES = {"synth": phase_synth, "prepare": phase_prepare, "prepare_again": phase_prepare,
          "reload": phase_reload, "iterate": phase_iterate}


def run_phase(name: str, work: Path, rows: int) -> dict:
    res = subprocess.run([sys.executable, __file__, "--phase", name, "--work", str(work), "--rows", str(rows)],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit(f"phase {name} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "work")
    ap.add_argument("--phase", choices=sorted(PHASES))
    args = ap.parse_args()
    if args.phase:
        out = PHASES[args.phase](args.work, args.rows)
        out["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(out))
        return
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    results = {}
    for name in ("synth", "prepare", "prepare_again", "reload", "iterate"):
        results[name] = run_phase(name, args.work, args.rows)
        print(name, json.dumps(results[name]), flush=True)
    import torch

    record = {
        "date": dt.date.today().isoformat(), "command": f"python bench/data_bench.py --rows {args.rows}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
                   f"torch {torch.__version__}",
        "rows": args.rows, "fields": {"numerical": 13, "categorical": 26, "max_cardinality": max(CARDS)},
        "results": results,
        "goals": {"reload_s": "< 1", "shuffled_rows_per_s": ">= 5e6"},
    }
    out = ROOT / "bench" / "results" / "data_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    it = results["iterate"]["rows_per_s"]
    line = (f"| {record['date']} | `{record['command']}` | {record['machine']} | "
            f"{args.rows:,} rows, 13 num + 26 cat (largest train vocabulary "
            f"{results['prepare']['max_cardinality']:,} ids): "
            f"prepare {results['prepare']['seconds']:.1f} s (peak RSS {results['prepare']['peak_rss_mib']:.0f} MiB), "
            f"no-op prepare {results['prepare_again']['seconds']:.2f} s, reload {results['reload']['seconds']:.3f} s, "
            f"batches@4096 shuffled {it['shuffled'] / 1e6:.1f} M rows/s, "
            f"sequential {it['sequential'] / 1e6:.1f} M rows/s "
            f"(iterate peak RSS {results['iterate']['peak_rss_mib']:.0f} MiB) |\n")
    bench_md = ROOT / "bench" / "log" / "unsorted.md"
    if not bench_md.exists():
        bench_md.write_text("# Benchmarks\n\n")
    text = bench_md.read_text()
    header = "## Data layer (`bench/data_bench.py`)\n\n| date | command | machine | figures |\n|---|---|---|---|\n"
    if header not in text:
        text += "\n" + header
    text = text.replace(header, header + line)
    bench_md.write_text(text)
    print(line)


if __name__ == "__main__":
    main()
