"""Hashed id fields against vocabularies (issue 22, point 2): DeepFM on long-tail data with and without hash_buckets.

Every categorical field with more ids than --buckets is hashed into that many buckets (`data.hash_buckets`); the
other fields keep their vocabularies. Both variants run at the library's defaults, side by side in one process per
seed. Reported: test AUC (paired per seed against the vocabulary run), test logloss, embedding parameters (EP) and
train samples per second.

    .venv/bin/python bench/hashing_bench.py --dataset bookcrossing --buckets 32768 --seeds 2026,2027,2028 \
        --threads 1 --out bench/results/hashing_bookcrossing.json
    .venv/bin/python bench/hashing_bench.py --out bench/results/hashing_bookcrossing.json --table

Finished runs are kept as records under --work (a killed run resumes); `--data DIR` runs on any prepared folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from frontier_bench import hash_plan  # noqa: E402
from zoo_bench import library_config, mean_sd, paired_gap, run_queue, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "derived"


def hashed_fields(data: Path, seed: int, threads: int, work: Path, buckets: int) -> dict[str, int]:
    """The frontier's `hash_plan` on the unhashed vocabularies of `data`."""
    from recnas.experiment.run import load_splits

    return hash_plan(load_splits(library_config(data, seed, threads, work)).ds.schema, buckets)


def run_one(data: Path, variant: str, seed: int, threads: int, work: Path, buckets: int) -> dict[str, Any]:
    """DeepFM on `data` with its vocabularies (`vocabulary`) or with the large id fields hashed (`hashed`)."""
    from recnas.experiment.run import run_train

    plan = hashed_fields(data, seed, threads, work, buckets) if variant == "hashed" else {}
    cfg = library_config(data, seed, threads, work, ["model.name=deepfm"])
    cfg.data.hash_buckets = plan
    folder = work / "runs" / f"{data.name}-{variant}-{buckets}-{seed}"
    m = run_train(cfg, folder, log=lambda _m: None).metrics
    return {"dataset": data.name, "variant": variant, "buckets": buckets if plan else None, "hashed": sorted(plan),
            "seed": seed, "valid_auc": m["valid_auc"], "test_auc": m["test_auc"], "test_logloss": m["test_logloss"],
            "embedding_params": m["embedding_params"], "samples_per_s": m["train_samples_per_s"],
            "train_seconds": m["train_seconds"], "epochs": m["epochs"]}


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant: means ± sd over seeds, and the test AUC paired per seed against the vocabulary run."""
    out = []
    base = {r["seed"]: r for r in records if r["variant"] == "vocabulary"}
    for variant in dict.fromkeys(r["variant"] for r in records):
        rs = [r for r in records if r["variant"] == variant]
        paired = [{"d": r["test_auc"] - base[r["seed"]]["test_auc"]} for r in rs if r["seed"] in base]
        out.append({"variant": variant, "seeds": [r["seed"] for r in rs], "hashed": rs[0]["hashed"],
                    "buckets": rs[0]["buckets"], "test_auc": list(mean_sd(rs, "test_auc")),
                    "vs_vocabulary": list(mean_sd(paired, "d")), "test_logloss": mean_sd(rs, "test_logloss")[0],
                    "ep": mean_sd(rs, "embedding_params")[0], "samples_per_s": list(mean_sd(rs, "samples_per_s"))})
    return out


def table(summary: list[dict[str, Any]]) -> str:
    lines = ["| variant | seeds | test AUC | minus vocabulary (paired) | test logloss | EP | train samples/s |",
             "|---|---|---|---|---|---|---|"]
    for s in summary:
        name = s["variant"] if not s["hashed"] else f"{', '.join(s['hashed'])} hashed into {s['buckets']:,}"
        vs = s["vs_vocabulary"]
        gap = "-" if s["variant"] == "vocabulary" else paired_gap(vs)
        lines.append(f"| {name} | {len(s['seeds'])} | {s['test_auc'][0]:.4f} ± {s['test_auc'][1]:.4f} | {gap} | "
                     f"{s['test_logloss']:.4f} | {s['ep']:,.0f} | {s['samples_per_s'][0]:,.0f} ± "
                     f"{s['samples_per_s'][1]:,.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="bookcrossing", help="a folder of ../shared/data/derived")
    p.add_argument("--data", type=Path, default=None, help="any prepared data folder instead of --dataset")
    p.add_argument("--buckets", type=int, default=1 << 15)
    p.add_argument("--seeds", default="2026,2027,2028")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "hashing")
    p.add_argument("--out", type=Path, default=None, help="default bench/results/hashing_<dataset>.json")
    p.add_argument("--table", action="store_true", help="print the table of --out and stop")
    args = p.parse_args()
    data = args.data or DATA / args.dataset
    out = args.out or ROOT / "bench" / "results" / f"hashing_{data.name}.json"
    if args.table:
        print(table(json.loads(out.read_text())["summary"]))
        return
    torch.set_num_threads(args.threads)
    jobs = [(v, int(s)) for s in args.seeds.split(",") for v in ("vocabulary", "hashed")]
    records = run_queue(jobs, lambda job: args.work / "records" / f"{data.name}-{job[0]}-{args.buckets}-{job[1]}.json",
                        lambda job: run_one(data, job[0], job[1], args.threads, args.work, args.buckets),
                        lambda job, r: f"{data.name} {job[0]} {job[1]}: test {r['test_auc']:.4f}, EP "
                                       f"{r['embedding_params']:,}, {r['samples_per_s']:,.0f} samples/s")
    summary = summarize(records)
    write_results(out, args.threads, records, summary)
    print(table(summary))


if __name__ == "__main__":
    main()
