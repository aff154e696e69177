"""Zoo benchmark: every registered model on the team's real splits with one shared setting.

Embedding dim 10, batch 4,096, Adam lr 1e-3, MLP 400-400-400 where a model has one (CIN 32-32), recnas's default
dropout, early stopping on valid AUC (patience 2, lr x0.1 on plateau), up to 50 epochs, 3 seeds. The embedding L2
is recnas's default 0.1 (FuxiCTR's Frappe value) except for the models named by --tune-l2 (by default the shallow
ones, which that L2 collapses): for those it is chosen from --l2-grid by valid AUC of the first seed, and the other
seeds reuse the choice. Models are chosen on valid, reported on test. Writes bench/results/zoo_<dataset>.json and, with
--write-md, a table in BENCHMARKS.md.

    .venv/bin/python bench/zoo_bench.py [--datasets frappe_full,ml100k] [--models deepfm,fm] [--seeds 2026,2027,2028]
                                        [--epochs 50] [--threads 2] [--tune-l2 lr,fm]
                                        [--l2-grid 0.1,0.01,0.001] [--write-md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "derived"
SETTING = ["model.embedding_dim=10", "model.mlp=[400,400,400]", "model.cin_layers=[32,32]", "trainer.batch_size=4096",
           "trainer.optimizer=adam",
           "trainer.lr=0.001", "trainer.patience=2", "trainer.reduce_lr_factor=0.1", "trainer.progress=false"]
DEFAULT_L2 = 0.1
SHALLOW = "lr,fm,fwfm,ffm,afm,nfm"


def run(dataset: str, model: str, seed: int, epochs: int, work: Path, l2: float, threads: int) -> dict:
    from recnas.experiment.config import load_config
    from recnas.experiment.run import run_train

    overrides = [*SETTING, f"seed={seed}", f"trainer.epochs={epochs}", f"data.path={DATA / dataset}",
                 f"data.cache_dir={work / 'cache'}", f"trainer.embedding_l2={l2}", f"threads={threads}"]
    cfg = load_config(None, overrides + [f"model.name={model}"])
    t = time.perf_counter()
    res = run_train(cfg, work / "runs" / f"{dataset}-{model.replace('+', 'plus')}-{seed}-l2_{l2:g}")
    m = res.metrics
    return {"model": model, "seed": seed, "embedding_l2": l2, "test_auc": m["test_auc"],
            "test_logloss": m["test_logloss"], "valid_auc": m["valid_auc"], "params": m["params"],
            "embedding_params": m["embedding_params"],
            "train_samples_per_s": m["train_samples_per_s"], "epochs": m["epochs"], "best_epoch": m["best_epoch"],
            "wall_seconds": time.perf_counter() - t}


def summarize(records: list[dict]) -> list[dict]:
    out = []
    for model in dict.fromkeys(r["model"] for r in records):
        rs = [r for r in records if r["model"] == model]

        def stat(key: str, rs: list[dict] = rs) -> tuple[float, float]:
            vals = [r[key] for r in rs]
            return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)

        out.append({"model": model, "seeds": len(rs), "test_auc": stat("test_auc"),
                    "test_logloss": stat("test_logloss"),
                    "valid_auc": stat("valid_auc"), "embedding_params": rs[0]["embedding_params"],
                    "params": rs[0]["params"], "train_samples_per_s": stat("train_samples_per_s")[0],
                    "embedding_l2": rs[0]["embedding_l2"],
                    "epochs": stat("epochs")[0]})
    return out


def table(dataset: str, rows: list[dict]) -> str:
    lines = [f"### {dataset}", "", "| model | test AUC (mean ± sd) | test logloss | valid AUC | EP | params | "
             "train samples/s | epochs | embedding L2 | seeds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["test_auc"][0]):
        lines.append(f"| {r['model']} | {r['test_auc'][0]:.4f} ± {r['test_auc'][1]:.4f} | {r['test_logloss'][0]:.4f} | "
                     f"{r['valid_auc'][0]:.4f} | {r['embedding_params']:,} | {r['params']:,} | "
                     f"{r['train_samples_per_s']:,.0f} | {r['epochs']:.1f} | {r['embedding_l2']:g} | {r['seeds']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from recnas.nn.models import ZOO

    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="frappe_full,ml100k")
    ap.add_argument("--models", default=",".join(ZOO))
    ap.add_argument("--seeds", default="2026,2027,2028")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tune-l2", default=SHALLOW, help="models whose embedding L2 is chosen on valid ('' for none)")
    ap.add_argument("--l2-grid", default="0.1,0.01,0.001")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "zoo")
    ap.add_argument("--write-md", action="store_true")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    models = args.models.split(",")
    import torch

    tuned = {m for m in args.tune_l2.split(",") if m}
    grid = [float(v) for v in args.l2_grid.split(",")]
    machine = (f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
               f"torch {torch.__version__}, {args.threads} threads")
    command = "python bench/zoo_bench.py " + " ".join(sys.argv[1:])
    md = []
    for dataset in args.datasets.split(","):
        records: list[dict] = []
        tuning: list[dict] = []  # first-seed runs of the L2 grid, the chosen one included
        chosen: dict[str, float] = {}
        out = ROOT / "bench" / "results" / f"zoo_{dataset}.json"

        header = {"date": dt.date.today().isoformat(), "command": command, "machine": machine, "setting": SETTING,
                  "max_epochs": args.epochs, "seeds": seeds, "l2_grid": grid}
        for seed in seeds:
            for model in models:
                if model in tuned and model not in chosen:
                    trials = [run(dataset, model, seed, args.epochs, args.work, l2, args.threads) for l2 in grid]
                    tuning.extend(trials)
                    r = max(trials, key=lambda t: t["valid_auc"])
                    chosen[model] = r["embedding_l2"]
                    print(f"{dataset} {model}: embedding L2 {chosen[model]:g} chosen on valid from "
                          + ", ".join(f"{t['embedding_l2']:g} -> {t['valid_auc']:.4f}" for t in trials), flush=True)
                else:
                    r = run(dataset, model, seed, args.epochs, args.work, chosen.get(model, DEFAULT_L2), args.threads)
                records.append(r)
                print(f"{dataset} {model} seed {seed}: test AUC {r['test_auc']:.4f}, logloss {r['test_logloss']:.4f}, "
                      f"{r['epochs']} epochs, {r['train_samples_per_s']:,.0f} samples/s", flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps({**header, "l2_chosen": chosen, "l2_tuning_runs": tuning, "runs": records,
                                           "summary": summarize(records)}, indent=2))
        md.append(table(dataset, summarize(records)))
    text = "\n".join(md)
    print(text)
    if args.write_md:
        path = ROOT / "BENCHMARKS.md"
        body = path.read_text() if path.exists() else "# Benchmarks\n"
        body += (f"\n## Model zoo (`bench/zoo_bench.py`)\n\n{dt.date.today().isoformat()}, `{command}`, {machine}; "
                 f"max {args.epochs} epochs, seeds {seeds}; setting: {', '.join(SETTING)}; embedding L2 {DEFAULT_L2} "
                 f"unless tuned on valid over {grid} ({', '.join(sorted(tuned)) or 'none'}).\n\n{text}")
        path.write_text(body)


if __name__ == "__main__":
    main()
