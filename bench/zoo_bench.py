"""Zoo benchmark: every registered model on the team's real splits with one shared setting.

Embedding dim 10, batch 4,096, Adam lr 1e-3, MLP 400-400-400 where a model has one (CIN 32-32), recnas's default
dropout, early stopping on valid AUC (patience 2, lr x0.1 on plateau), up to 50 epochs, 3 seeds. The embedding L2
is recnas's default 0.1 (FuxiCTR's Frappe value) except for the models named by --tune-l2 (by default the shallow
ones, which that L2 collapses): for those it is chosen from --l2-grid by valid AUC of the first seed, and the other
seeds reuse the choice. Models are chosen on valid, reported on test. Writes bench/results/zoo_<dataset>.json and, with
--write-md, a table in bench/log/unsorted.md.

Each finished run is kept as a record under <work>/records/<dataset>/, so an interrupted benchmark resumes where it
stopped, runs of an earlier results file with the same setting are reused, and several invocations started side by
side (e.g. two with --threads 1 on a 2-core machine) share the job queue through claim files.

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recnas.fileio import write_text_atomic

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


def grouped(rows: list[dict], key: str) -> dict[str, list[dict]]:
    """Rows by their value of `key`, in first-appearance order."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return out


def mean_sd(rows: list[dict], key: str) -> tuple[float, float]:
    """Mean and sample standard deviation of `key` over `rows` (sd 0 for a single row)."""
    vals = [r[key] for r in rows]
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def paired_gap(gap: Sequence[float]) -> str:
    """A paired difference (mean, sd) as "+0.0012 ± 0.0008 (tie)": a tie when the mean is within one sd."""
    mean, sd = gap[0], gap[1]
    return f"{mean:+.4f} ± {sd:.4f} ({'tie' if abs(mean) <= sd else 'gain' if mean > 0 else 'loss'})"


def summarize(records: list[dict]) -> list[dict]:
    out = []
    for model, rs in grouped(records, "model").items():

        def stat(key: str, rs: list[dict] = rs) -> tuple[float, float]:
            return mean_sd(rs, key)

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


def job_path(records: Path, model: str, seed: int, l2: float) -> Path:
    """Where one finished run's record lives: workers and later invocations find finished work here."""
    return records / f"{model.replace('+', 'plus')}-{seed}-l2_{l2:g}.json"


def seed_records(out: Path, header: dict, records: Path) -> None:
    """Turn the runs of an earlier results file with the same setting into record files, so they are not re-run."""
    if not out.exists():
        return
    old = json.loads(out.read_text())
    if any(old.get(k) != header[k] for k in ("setting", "max_epochs", "l2_grid")):
        return
    for r in [*old.get("l2_tuning_runs", []), *old.get("runs", [])]:
        path = job_path(records, r["model"], r["seed"], r["embedding_l2"])
        if not path.exists():
            write_text_atomic(path, json.dumps(r, indent=2))


def claim(path: Path) -> bool:
    """Take a job for this process; a claim left by a process that no longer runs is taken over."""
    lock = path.with_suffix(".claim")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or "0"), 0)
                return False
            except (ProcessLookupError, ValueError):
                lock.unlink(missing_ok=True)
                continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


def library_config(data: Path, seed: int, threads: int, work: Path, extra: Sequence[str] = ()) -> Any:
    """The library's defaults on `data`, cached under `work` (plus `extra`): what nothing was chosen for."""
    from recnas.experiment.config import load_config

    return load_config(None, [f"data.path={data}", f"data.cache_dir={work / 'cache'}", f"seed={seed}",
                              f"threads={threads}", "trainer.progress=false", *extra])


def machine(threads: int) -> str:
    """The machine a result came from: CPU model and the vector unit torch uses (float results differ in the
    fourth decimal between CPUs with the same code and seed), Python, torch and the threads per run."""
    import os

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return (f"{platform.machine()}, {cpu}, {os.cpu_count()} cpus, torch cpu capability "
            f"{torch.backends.cpu.get_cpu_capability()}, Python {platform.python_version()}, torch "
            f"{torch.__version__}, {threads} threads")


def write_results(out: Path, threads: int, records: list[dict], summary: list[dict]) -> None:
    """A benchmark's JSON: date, the command, the machine, every run's record and the summary."""
    write_text_atomic(out, json.dumps({
        "date": dt.date.today().isoformat(), "command": "python " + " ".join(sys.argv),
        "machine": machine(threads), "runs": records, "summary": summary}, indent=2))


def run_queue(jobs: Sequence[Any], path_of: Callable[[Any], Path], run: Callable[[Any], dict],
              say: Callable[[Any, dict], str]) -> list[dict]:
    """Run every job whose record file is missing and return every job's record, in `jobs` order.

    Several processes may share the queue: a job another process has claimed is left to it (and waited for).
    """
    while True:
        pending = blocked = 0
        for job in jobs:
            path = path_of(job)
            if path.exists():
                continue
            pending += 1
            path.parent.mkdir(parents=True, exist_ok=True)
            if not claim(path):
                blocked += 1
                continue
            try:
                record = run(job)
                write_text_atomic(path, json.dumps(record, indent=2))
            finally:
                path.with_suffix(".claim").unlink(missing_ok=True)
            print(say(job, record), flush=True)
        if pending == 0:
            return [json.loads(path_of(job).read_text()) for job in jobs]
        if pending == blocked:  # everything left is being run by another process
            time.sleep(15)


def chosen_l2(records: Path, model: str, seed: int, grid: list[float]) -> float | None:
    """The grid value with the best valid AUC at the first seed, or None while a grid run is missing."""
    paths = [job_path(records, model, seed, l2) for l2 in grid]
    if not all(p.exists() for p in paths):
        return None
    trials = [json.loads(p.read_text()) for p in paths]
    return max(trials, key=lambda t: t["valid_auc"])["embedding_l2"]


def run_jobs(dataset: str, models: list[str], seeds: list[int], tuned: set[str], grid: list[float],
             records: Path, args: argparse.Namespace) -> None:
    """Run every missing job of a dataset; several processes may share the queue through claim files."""
    records.mkdir(parents=True, exist_ok=True)
    while True:
        pending = blocked = 0
        for seed in seeds:
            for model in models:
                if model in tuned and seed == seeds[0]:
                    wanted = list(grid)
                elif model in tuned:
                    l2 = chosen_l2(records, model, seeds[0], grid)
                    if l2 is None:
                        pending += 1
                        blocked += 1
                        continue
                    wanted = [l2]
                else:
                    wanted = [DEFAULT_L2]
                for l2 in wanted:
                    path = job_path(records, model, seed, l2)
                    if path.exists():
                        continue
                    pending += 1
                    if not claim(path):
                        blocked += 1
                        continue
                    try:
                        r = run(dataset, model, seed, args.epochs, args.work, l2, args.threads)
                        write_text_atomic(path, json.dumps(r, indent=2))
                    finally:
                        path.with_suffix(".claim").unlink(missing_ok=True)
                    print(f"{dataset} {model} seed {seed} L2 {l2:g}: test AUC {r['test_auc']:.4f}, valid AUC "
                          f"{r['valid_auc']:.4f}, {r['epochs']} epochs, {r['train_samples_per_s']:,.0f} samples/s",
                          flush=True)
        if pending == 0:
            return
        if pending == blocked:  # everything left is being run by another process
            time.sleep(15)


def collect(models: list[str], seeds: list[int], tuned: set[str], grid: list[float],
            records: Path) -> tuple[list[dict], list[dict], dict[str, float]]:
    """The finished runs in table order, the first seed's L2 grid runs, and the L2 chosen per tuned model."""
    chosen = {m: l2 for m in models if m in tuned
              if (l2 := chosen_l2(records, m, seeds[0], grid)) is not None}
    tuning = [json.loads(job_path(records, m, seeds[0], l2).read_text()) for m in chosen for l2 in grid]
    runs = []
    for seed in seeds:
        for model in models:
            path = job_path(records, model, seed, chosen.get(model, DEFAULT_L2))
            if path.exists() and (model not in tuned or model in chosen):
                runs.append(json.loads(path.read_text()))
    return runs, tuning, chosen


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
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results", help="folder of zoo_<dataset>.json")
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
        out = args.results / f"zoo_{dataset}.json"
        header = {"date": dt.date.today().isoformat(), "command": command, "machine": machine, "setting": SETTING,
                  "max_epochs": args.epochs, "seeds": seeds, "l2_grid": grid}
        records = args.work / "records" / dataset
        seed_records(out, header, records)
        run_jobs(dataset, models, seeds, tuned, grid, records, args)
        runs, tuning, chosen = collect(models, seeds, tuned, grid, records)
        write_text_atomic(out, json.dumps({**header, "l2_chosen": chosen, "l2_tuning_runs": tuning, "runs": runs,
                                           "summary": summarize(runs)}, indent=2))
        md.append(table(dataset, summarize(runs)))
    text = "\n".join(md)
    print(text)
    if args.write_md:
        path = ROOT / "bench" / "log" / "unsorted.md"
        body = path.read_text() if path.exists() else "# Benchmarks\n"
        body += (f"\n## Model zoo (`bench/zoo_bench.py`)\n\n{dt.date.today().isoformat()}, `{command}`, {machine}; "
                 f"max {args.epochs} epochs, seeds {seeds}; setting: {', '.join(SETTING)}; embedding L2 {DEFAULT_L2} "
                 f"unless tuned on valid over {grid} ({', '.join(sorted(tuned)) or 'none'}).\n\n{text}")
        path.write_text(body)


if __name__ == "__main__":
    main()
