"""Search benchmark: AutoDim-DeepFM and AutoFIS-DeepFM against DeepFM on the team's real splits.

For each dataset, seed and method, `recnas search` runs search -> retrain -> baseline in one run folder. Every
setting is in bench/configs/<method>.yaml, the same for every dataset (chosen on frappe_full and ml100k valid
together), each file saying why: the zoo benchmark's retrain and baseline (batch 4,096, Adam lr 1e-3, MLP
400-400-400, embedding L2 0.1, early stopping on valid AUC), AutoDim's memory_lambda and budget, AutoFIS's GRDA
threshold and search length, and how each was chosen. AutoFIS's baseline is DeepFM at dimension 10; AutoDim's is
DeepFM with every field at the largest candidate (32), the "full dimension" its EP is measured against. Goals
(issue 4): AutoDim AUC >= baseline - 0.001 at <= 30% of its EP; AutoFIS AUC >= baseline keeping <= 50% of the
interactions; search + retrain wall time <= 3x one baseline training.
Writes bench/results/search_<dataset>[<tag>].json and, with --write-md, a table in bench/log/unsorted.md.

    .venv/bin/python bench/search_bench.py [--datasets frappe_full,ml100k] [--methods autodim,autofis]
                                           [--seeds 2026,2027,2028] [--epochs 50] [--threads 2] [--write-md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
from pathlib import Path

from bench_configs import ROOT, bench_config, config_path, setting_record


def reuse_baseline(earlier: Path | None, run_dir: Path) -> None:
    """Copy an earlier run's finished baseline into `run_dir` (the runner then skips that stage).

    Only for a baseline trained with the same model, trainer, seed and data: the baseline does not depend on the
    search settings, and the same seed and config give the same metrics.
    """
    source = earlier / "runs" / run_dir.name / "baseline" if earlier is not None else None
    if source is not None and (source / "metrics.json").is_file() and not (run_dir / "baseline").exists():
        shutil.copytree(source, run_dir / "baseline")


def run(dataset: str, method: str, seed: int, epochs: int, threads: int, work: Path, extra: list[str],
        baselines: Path | None = None) -> dict:
    from recnas.experiment.search import run_search

    cfg = bench_config(method, dataset, seed, threads, epochs, work, extra)
    run_dir = work / "runs" / f"{dataset}-{method}-{seed}"
    reuse_baseline(baselines, run_dir)
    res = run_search(cfg, run_dir)
    rep = json.loads((res.path / "report.json").read_text())
    r = rep["results"]
    row = {"dataset": dataset, "method": method, "seed": seed,
           "test_auc": r["searched"]["test_auc"], "test_logloss": r["searched"]["test_logloss"],
           "valid_auc": res.retrain["valid_auc"], "base_valid_auc": (res.baseline or {}).get("valid_auc"),
           "ep": r["searched"]["embedding_params"], "base_test_auc": r["baseline"]["test_auc"],
           "base_test_logloss": r["baseline"]["test_logloss"], "base_ep": r["baseline"]["embedding_params"],
           "ep_fraction": r["model_ep_fraction"], "auc_gain": r["test_auc_gain"],
           "search_seconds": res.arch["search_seconds"], "retrain_seconds": r["searched"]["wall_seconds"],
           "baseline_seconds": r["baseline"]["wall_seconds"], "time_vs_baseline": r["time_vs_baseline"],
           "retrain_epochs": r["searched"]["epochs"], "baseline_epochs": r["baseline"]["epochs"],
           "run": str(res.path)}
    if method == "autofis":
        row["kept"] = len(res.arch["interactions"])
        row["pairs"] = res.arch["num_pairs"]
        row["interactions"] = res.arch["interactions"]
    else:
        row["dims"] = res.arch["dims"]
    return row


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method]

        def mean(key: str, rs: list[dict] = rs) -> float:
            return statistics.fmean(r[key] for r in rs)

        s = {"method": method, "seeds": len(rs), "test_auc": mean("test_auc"), "base_test_auc": mean("base_test_auc"),
             "auc_gain": mean("auc_gain"), "test_logloss": mean("test_logloss"),
             "base_test_logloss": mean("base_test_logloss"), "ep_fraction": mean("ep_fraction"),
             "ep": mean("ep"), "base_ep": mean("base_ep"), "time_vs_baseline": mean("time_vs_baseline"),
             "search_seconds": mean("search_seconds"), "retrain_seconds": mean("retrain_seconds"),
             "baseline_seconds": mean("baseline_seconds")}
        if method == "autofis":
            s["kept_fraction"] = statistics.fmean(r["kept"] / r["pairs"] for r in rs)
            s["auc_goal"] = s["auc_gain"] >= 0
            s["size_goal"] = s["kept_fraction"] <= 0.5
        else:
            s["auc_goal"] = s["auc_gain"] >= -0.001
            s["size_goal"] = s["ep_fraction"] <= 0.3
        s["time_goal"] = s["time_vs_baseline"] <= 3
        out.append(s)
    return out


def table(dataset: str, summary: list[dict]) -> str:
    lines = [f"### {dataset}", "", "| method | seeds | test AUC (searched / baseline, gain) | test logloss | "
             "EP (searched / baseline) | interactions kept | search + retrain ÷ baseline time | goals |",
             "|---|---|---|---|---|---|---|---|"]

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    for s in summary:
        kept = f"{s['kept_fraction']:.0%}" if "kept_fraction" in s else "-"
        lines.append(
            f"| {s['method']} | {s['seeds']} | {s['test_auc']:.4f} / {s['base_test_auc']:.4f} ({s['auc_gain']:+.4f}) | "
            f"{s['test_logloss']:.4f} / {s['base_test_logloss']:.4f} | {s['ep']:,.0f} / {s['base_ep']:,.0f} "
            f"({s['ep_fraction']:.1%}) | {kept} | {s['time_vs_baseline']:.2f} ({s['search_seconds']:.0f} s + "
            f"{s['retrain_seconds']:.0f} s vs {s['baseline_seconds']:.0f} s) | AUC {met(s['auc_goal'])}, size "
            f"{met(s['size_goal'])}, time {met(s['time_goal'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="frappe_full,ml100k")
    ap.add_argument("--methods", default="autodim,autofis")
    ap.add_argument("--seeds", default="2026,2027,2028")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "search")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="extra config override for every run, e.g. search.fill_budget=false (repeatable)")
    ap.add_argument("--tag", default="", help="suffix of the results file (parallel invocations per method)")
    ap.add_argument("--reuse-baselines", type=Path, default=None,
                    help="an earlier --work folder whose finished baselines (same setting and seed) are copied")
    ap.add_argument("--write-md", action="store_true")
    args = ap.parse_args()
    import torch

    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    machine = (f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
               f"torch {torch.__version__}, {args.threads} threads")
    command = "python bench/search_bench.py " + " ".join(sys.argv[1:])
    md = []
    datasets = args.datasets.split(",")
    for dataset in datasets:
        out = ROOT / "bench" / "results" / f"search_{dataset}{args.tag}.json"
        # runs of other methods from an earlier invocation stay (e.g. --methods autodim, then --methods autofis)
        earlier = json.loads(out.read_text()).get("runs", []) if out.is_file() else []
        rows: list[dict] = [r for r in earlier if r["method"] not in methods and r["seed"] in seeds]
        for seed in seeds:
            for method in methods:
                row = run(dataset, method, seed, args.epochs, args.threads, args.work, args.overrides,
                          args.reuse_baselines)
                rows.append(row)
                extra = (f"kept {row['kept']}/{row['pairs']}" if method == "autofis"
                         else f"EP {row['ep_fraction']:.1%}")
                print(f"{dataset} {method} seed {seed}: test AUC {row['test_auc']:.4f} vs {row['base_test_auc']:.4f}, "
                      f"{extra}, time x{row['time_vs_baseline']:.2f}", flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps({"date": dt.date.today().isoformat(), "command": command,
                                           "machine": machine, "methods": setting_record(methods),
                                           "overrides": args.overrides,
                                           "reused_baselines": str(args.reuse_baselines or ""),
                                           "runs": rows, "summary": summarize(rows)}, indent=2))
        md.append(table(dataset, summarize(rows)))
    text = "\n".join(md)
    print(text)
    if args.write_md:
        path = ROOT / "bench" / "log" / "unsorted.md"
        body = path.read_text() if path.exists() else "# Benchmarks\n"
        body += (f"\n## Search (`bench/search_bench.py`)\n\n{dt.date.today().isoformat()}, `{command}`, {machine}; "
                 f"seeds {seeds}, retrain/baseline up to {args.epochs} epochs; settings: "
                 f"{', '.join(str(config_path(m).relative_to(ROOT)) for m in methods)}"
                 f"{' with ' + ', '.join(args.overrides) if args.overrides else ''}.\n\n{text}")
        path.write_text(body)


if __name__ == "__main__":
    main()
