"""RL embedding-search benchmark: NIS and ESAPN against the full-dimension DeepFM and a random control at the same EP.

For each dataset, seed and method, `recnas search` runs search -> retrain -> random control -> baseline in one run
folder. Every setting is in bench/configs/<method>.yaml, the same for every dataset, each saying why: the zoo
benchmark's setting for
the retrain, the control and the baseline (batch 4,096, Adam lr 1e-3, MLP 400-400-400, embedding L2 0.1, early
stopping on valid AUC, up to 50 epochs: the regularised, early-stopped full model). The baseline is DeepFM with
every id at the full width: 16 for NIS (4 column blocks of 4), 32 for ESAPN (sizes 2-4-8-16-32; the paper's 64 and
128 would make every baseline 4x wider on these CPUs). The control is a random NIS layout of the searched EP, or
the ESAPN stream with a coin instead of the policy, its enlarge probability set for the searched EP. EP is counted
over the searched (categorical) fields and over the whole model (first-order weights and unsearched numerical
fields included). Goal (issue 6): test AUC >= full - 0.001 at <= 40% of the searched fields' EP, and above the
control. Writes bench/results/rl_<dataset>[<tag>].json and, with
--write-md, a table in bench/log/unsorted.md.

    .venv/bin/python bench/rl_bench.py [--datasets frappe_full,ml100k] [--methods nis,esapn]
                                       [--seeds 2026,2027,2028] [--threads 1] [--write-md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
from pathlib import Path

from bench_configs import ROOT, bench_config, config_path, setting_record
from search_bench import reuse_baseline
from zoo_bench import grouped, mean_sd

from recnas.fileio import write_text_atomic

# Settings that change only the retrain and the control, never the search or its export.
RETRAIN_ONLY = {("retrain", "embedding_l2"), ("lab", "retrain_norm")}


def _search_settings(raw: dict) -> dict:
    """A run's config without what cannot change its search: the runner's own resume comparison
    (`comparable_settings`: no progress bar, data path or cache folder), less the retrain-only keys and the name."""
    from recnas.experiment.folder import comparable_settings

    raw = comparable_settings(raw)  # a copy
    for section, key in RETRAIN_ONLY:
        raw.get(section, {}).pop(key, None)
    raw.pop("name", None)
    return raw


def reuse_search(earlier: Path | None, run_dir: Path, cfg_raw: dict) -> None:
    """Copy an earlier run's finished search (and its random control's layout) into `run_dir`.

    Only when the earlier run's config differs from this one in retrain-only keys alone: the search is seeded and
    does not read them, so it would come out the same. The runner then trains the retrain and the control only.
    """
    import yaml

    source = earlier / "runs" / run_dir.name if earlier is not None else None
    if source is None or not (source / "search" / "arch.json").is_file() or (run_dir / "search").exists():
        return
    from recnas.experiment.config import ExperimentConfig

    # through the current config model, so keys added since that run compare at their defaults
    theirs = ExperimentConfig.model_validate(yaml.safe_load((source / "config.yaml").read_text()))
    if _search_settings(theirs.model_dump(mode="json")) != _search_settings(cfg_raw):
        raise SystemExit(f"--reuse-searches: {source} was searched with other settings; not reused")
    shutil.copytree(source / "search", run_dir / "search")
    if (source / "control" / "arch.json").is_file():
        (run_dir / "control").mkdir(parents=True, exist_ok=True)
        shutil.copy(source / "control" / "arch.json", run_dir / "control" / "arch.json")


def full_layout(method, schema, arch: dict) -> dict:  # noqa: ANN001
    """Every id at the full width, as the search would write it: the unsearched model built and trained as the
    retrain is (every choice of the method's block at its largest candidate)."""
    block = method.block(schema)
    sample = {c.label: c.candidates[-1] for c in block.choices()}
    block.set_sample(sample)
    return {"method": arch["method"], "model": arch["model"], **method.arch(block, sample),
            "full_layout": "every id at the full width, retrained with the retrain's settings"}


def full_retrain(cfg, run_dir: Path, arch: dict) -> dict:  # noqa: ANN001
    """Train (once) the full layout with the retrain's settings into run_dir/full_retrain; its metrics."""
    from recnas.experiment.run import load_splits
    from recnas.experiment.search import retrain_stage
    from recnas.methods import method_of

    done = run_dir / "full_retrain" / "metrics.json"
    if done.is_file():
        return json.loads(done.read_text())
    method, splits = method_of(cfg), load_splits(cfg)
    return retrain_stage(method, splits, full_layout(method, splits.ds.schema, arch), run_dir / "full_retrain")


def run(dataset: str, method: str, seed: int, epochs: int, threads: int, work: Path, extra: list[str],
        baselines: Path | None = None, searches: Path | None = None, with_full_retrain: bool = False) -> dict:
    from recnas.experiment.search import run_search

    run_dir = work / "runs" / f"{dataset}-{method}-{seed}"
    cfg = bench_config(method, dataset, seed, threads, epochs, work, extra)
    reuse_baseline(baselines, run_dir)
    reuse_search(searches, run_dir, cfg.model_dump(mode="json"))
    res = run_search(cfg, run_dir)
    r = json.loads((res.path / "report.json").read_text())["results"]
    arch = res.arch
    same = {}
    if with_full_retrain:
        f = full_retrain(cfg, run_dir, arch)
        same = {"full_retrain_test_auc": f["test_auc"], "full_retrain_valid_auc": f["valid_auc"],
                "gain_over_full_retrain": r["searched"]["test_auc"] - f["test_auc"]}
    nan = float("nan")
    control = r.get("control") or {"test_auc": nan, "embedding_params": nan}  # lab.control=false: no control
    return {**same, "dataset": dataset, "method": method, "seed": seed,
            "test_auc": r["searched"]["test_auc"], "test_logloss": r["searched"]["test_logloss"],
            "control_test_auc": control["test_auc"], "base_test_auc": r["baseline"]["test_auc"],
            "base_test_logloss": r["baseline"]["test_logloss"], "valid_auc": res.retrain["valid_auc"],
            "searched_ep_fraction": arch["ep"] / arch["full_ep"], "searched_ep": arch["ep"],
            "searched_full_ep": arch["full_ep"],
            "model_ep": r["searched"]["embedding_params"], "control_model_ep": control["embedding_params"],
            "base_model_ep": r["baseline"]["embedding_params"],
            "model_ep_fraction": r["searched"]["embedding_params"] / r["baseline"]["embedding_params"],
            "auc_gain": r["test_auc_gain"], "gain_over_control": r.get("test_auc_gain_over_control", nan),
            "search_seconds": arch["search_seconds"], "retrain_seconds": r["searched"]["wall_seconds"],
            "baseline_seconds": r["baseline"]["wall_seconds"],
            "layout": arch.get("bucket_widths"), "run": str(res.path)}


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for method, rs in grouped(rows, "method").items():
        s: dict = {"method": method, "seeds": len(rs)}
        for key in ("test_auc", "control_test_auc", "base_test_auc", "auc_gain", "gain_over_control",
                    "searched_ep_fraction", "model_ep_fraction", "search_seconds", "baseline_seconds"):
            s[key], s[key + "_sd"] = mean_sd(rs, key)
        if all("full_retrain_test_auc" in r for r in rs):
            for key in ("full_retrain_test_auc", "gain_over_full_retrain"):
                s[key], s[key + "_sd"] = mean_sd(rs, key)
        s["auc_goal"] = s["auc_gain"] >= -0.001
        s["size_goal"] = s["searched_ep_fraction"] <= 0.4
        s["control_goal"] = s["gain_over_control"] > 0
        out.append(s)
    return out


def table(dataset: str, summary: list[dict]) -> str:
    lines = [f"### {dataset}", "", "| method | seeds | test AUC searched / random control / full DeepFM | gain over "
             "full (goal >= -0.001) | gain over control (goal > 0) | EP searched fields (goal <= 40%) | EP whole "
             "model | search s (baseline s) | goals |", "|---|---|---|---|---|---|---|---|---|"]

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    for s in summary:
        lines.append(
            f"| {s['method']} | {s['seeds']} | {s['test_auc']:.4f} / {s['control_test_auc']:.4f} / "
            f"{s['base_test_auc']:.4f} | {s['auc_gain']:+.4f} ± {s['auc_gain_sd']:.4f} | {s['gain_over_control']:+.4f} "
            f"± {s['gain_over_control_sd']:.4f} | {s['searched_ep_fraction']:.1%} | {s['model_ep_fraction']:.1%} | "
            f"{s['search_seconds']:.0f} ({s['baseline_seconds']:.0f}) | AUC {met(s['auc_goal'])}, size "
            f"{met(s['size_goal'])}, control {met(s['control_goal'])} |")
    same = [s for s in summary if "full_retrain_test_auc" in s]
    if same:
        lines += ["", "Against the full width built and trained as the retrain is (`--full-retrain`: every id at the "
                  "full width, with the retrain's settings, so what the layout costs apart from the retrain's model):",
                  "", "| method | test AUC full, same retrain | searched minus it |", "|---|---|---|"]
        lines += [f"| {s['method']} | {s['full_retrain_test_auc']:.4f} | {s['gain_over_full_retrain']:+.4f} ± "
                  f"{s['gain_over_full_retrain_sd']:.4f} |" for s in same]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="frappe_full,ml100k")
    ap.add_argument("--methods", default="nis,esapn")
    ap.add_argument("--seeds", default="2026,2027,2028")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "rl")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="extra config override for every run (repeatable)")
    ap.add_argument("--tag", default="", help="suffix of the results file (parallel invocations)")
    ap.add_argument("--write-md", action="store_true", help="append the saved results table to bench/log/unsorted.md")
    ap.add_argument("--reuse-baselines", type=Path, default=None,
                    help="an earlier --work folder whose finished baselines (same setting and seed) are copied")
    ap.add_argument("--reuse-searches", type=Path, default=None,
                    help="an earlier --work folder whose finished searches are copied where only retrain-only "
                    "settings differ (the search is seeded and would repeat exactly)")
    ap.add_argument("--full-retrain", action="store_true",
                    help="also train every id at the full width with the retrain's settings (run_dir/full_retrain)")
    args = ap.parse_args()
    import torch

    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    machine = (f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
               f"torch {torch.__version__}, {args.threads} threads")
    command = "python bench/rl_bench.py " + " ".join(sys.argv[1:])
    md = []
    datasets = args.datasets.split(",")
    for dataset in datasets:
        out = ROOT / "bench" / "results" / f"rl_{dataset}{args.tag}.json"
        earlier = json.loads(out.read_text()).get("runs", []) if out.is_file() else []
        rows = [r for r in earlier if not (r["method"] in methods and r["seed"] in seeds)]
        if not args.write_md:
            for seed in seeds:
                for method in methods:
                    row = run(dataset, method, seed, args.epochs, args.threads, args.work, args.overrides,
                              args.reuse_baselines, args.reuse_searches, args.full_retrain)
                    rows.append(row)
                    print(f"{dataset} {method} seed {seed}: test AUC {row['test_auc']:.4f} vs control "
                          f"{row['control_test_auc']:.4f} vs full {row['base_test_auc']:.4f}, searched EP "
                          f"{row['searched_ep_fraction']:.1%}", flush=True)
                    write_text_atomic(out, json.dumps({"date": dt.date.today().isoformat(), "command": command,
                                                       "machine": machine,
                                                       "methods": setting_record(methods),
                                                       "overrides": args.overrides,
                                                       "runs": rows,
                                                       "summary": summarize(rows)}, indent=2))
        else:
            rows = earlier
        if rows:
            md.append(table(dataset, summarize(rows)))
    text = "\n".join(md)
    print(text)
    if args.write_md:
        path = ROOT / "bench" / "log" / "unsorted.md"
        body = path.read_text() if path.exists() else "# Benchmarks\n"
        body += (f"\n## RL embedding search (`bench/rl_bench.py`)\n\n{dt.date.today().isoformat()}, `{command}`, "
                 f"{machine}; settings: "
                 f"{', '.join(str(config_path(m).relative_to(ROOT)) for m in methods)}"
                 f"{' with ' + ', '.join(args.overrides) if args.overrides else ''}.\n\n{text}")
        path.write_text(body)


if __name__ == "__main__":
    main()
