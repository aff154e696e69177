"""Data-parallel benchmark (issue 22 points 3 and 4): 2 processes against 1, same global batch and lr.

`correct`: DeepFM at the library's defaults, trained by `recnas train` with 1 process (2 threads) and with
`--nproc 2` (1 thread each), per seed: test AUC and logloss, epochs, wall time. `search`: AutoDim and AutoFIS at
their defaults the same two ways: the retrained test AUC and whether the two searches found the same
architecture (every rank of the 2-process search holds the same one, or the run fails). `speed`: one epoch's train
samples/s with 1 process x 1 thread, 2 processes x 1 thread and 1 process x 2 threads, and what one all-reduce of
the model's gradients costs. Each run is a `recnas` command in its own process, so a run resumes where killed.

    .venv/bin/python bench/ddp_bench.py correct --dataset frappe_full --seeds 2026,2027,2028 \\
        --out bench/results/ddp_correct_frappe_full.json
    .venv/bin/python bench/ddp_bench.py search --dataset frappe_full --methods autodim,autofis --seeds 2026 \\
        --out bench/results/ddp_search_frappe_full.json
    .venv/bin/python bench/ddp_bench.py speed --dataset frappe_full --out bench/results/ddp_speed_frappe_full.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_bench import DATA, ROOT, library_config, write_results  # noqa: E402

WORK = ROOT / "bench" / "work" / "ddp"
PYTHON = sys.executable


def write_config(dataset: str, seed: int, threads: int, extra: list[str]) -> Path:
    """The library's defaults on `dataset` as a YAML file a `recnas` command reads."""
    cfg = library_config(DATA / dataset, seed, threads, WORK, extra)
    tag = hashlib.sha1("|".join(extra).encode()).hexdigest()[:8]
    path = WORK / "configs" / f"{dataset}-{seed}-{threads}-{tag}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return path


def recnas(args: list[str], nproc: int) -> float:
    """Run `recnas <args>` (with `--nproc` when 2); the wall seconds. A failure stops the benchmark."""
    t0 = time.perf_counter()
    cmd = [PYTHON, "-m", "recnas", *args, "--quiet"] + (["--nproc", str(nproc)] if nproc > 1 else [])
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return time.perf_counter() - t0


def layouts() -> list[tuple[int, int]]:
    """(processes, threads per process) on 2 cores: the comparison of points 3 and 4."""
    return [(1, 2), (2, 1)]


def correct(dataset: str, seeds: list[int]) -> list[dict]:
    """DeepFM at the defaults, 1 process against 2, per seed."""
    out = []
    for seed in seeds:
        for nproc, threads in layouts():
            run = WORK / "runs" / f"deepfm-{dataset}-{seed}-{nproc}p"
            wall = None
            if not (run / "metrics.json").is_file():
                wall = recnas(["train", str(write_config(dataset, seed, threads, [])), "--out", str(run)], nproc)
            m = json.loads((run / "metrics.json").read_text())
            rec = {"dataset": dataset, "seed": seed, "processes": nproc, "threads": threads,
                   "test_auc": m["test_auc"], "test_logloss": m["test_logloss"], "epochs": m["epochs"],
                   "best_epoch": m["best_epoch"], "train_samples_per_s": m["train_samples_per_s"],
                   "wall_seconds": wall if wall is not None else m["wall_seconds"]}
            print(json.dumps(rec), flush=True)
            out.append(rec)
    return out


def search(dataset: str, methods: list[str], seeds: list[int]) -> list[dict]:
    """Each method's search at its defaults (its shipped synth config's search section), 1 process against 2."""
    out = []
    for method in methods:
        for seed in seeds:
            for nproc, threads in layouts():
                run = WORK / "runs" / f"{method}-{dataset}-{seed}-{nproc}p"
                if not (run / "report.json").is_file():
                    cfg = write_config(dataset, seed, threads, [f"search.method={method}", "search.baseline=false"])
                    recnas(["search", str(cfg), "--out", str(run)], nproc)
                arch = json.loads((run / "search" / "arch.json").read_text())
                m = json.loads((run / "retrain" / "metrics.json").read_text())
                rec = {"dataset": dataset, "method": method, "seed": seed, "processes": nproc, "threads": threads,
                       "test_auc": m["test_auc"], "test_logloss": m["test_logloss"], "sample": arch["sample"],
                       "embedding_params": m["embedding_params"], "search_seconds": arch.get("search_seconds")}
                print(json.dumps({k: v for k, v in rec.items() if k != "sample"}), flush=True)
                out.append(rec)
    return out


def speed(dataset: str) -> list[dict]:
    """Train samples/s of one epoch (no early stop) for each layout, and one gradient all-reduce's cost."""
    out = []
    for nproc, threads in [(1, 1), (2, 1), (1, 2)]:
        run = WORK / "speed" / f"{dataset}-{nproc}p{threads}t"
        cfg = write_config(dataset, 2026, threads, ["trainer.epochs=1"])
        if not (run / "metrics.json").is_file():
            recnas(["train", str(cfg), "--out", str(run)], nproc)
        m = json.loads((run / "metrics.json").read_text())
        rec = {"dataset": dataset, "processes": nproc, "threads": threads,
               "train_samples_per_s": m["train_samples_per_s"], "train_seconds": m["train_seconds"],
               "steps": -(-m["train_rows"] // 4096)}
        print(json.dumps(rec), flush=True)
        out.append(rec)
    out.append(two_nodes(dataset))
    out.append(allreduce_cost(dataset))
    return out


def two_nodes(dataset: str) -> dict:
    """The same epoch as 2 "nodes" on localhost: two torchrun agents meeting at one c10d rendezvous endpoint."""
    run = WORK / "speed" / f"{dataset}-2nodes"
    cfg = write_config(dataset, 2026, 1, ["trainer.epochs=1"])
    if not (run / "metrics.json").is_file():
        port = 29_000 + os.getpid() % 1000
        agents = [subprocess.Popen(
            [PYTHON, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node), "--nproc_per_node",
             "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"bench{port}",
             "-m", "recnas", "train", str(cfg), "--out", str(run), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for node in (0, 1)]
        for agent in agents:
            _, err = agent.communicate()
            if agent.returncode:
                raise SystemExit(f"a torchrun node failed:\n{err[-2000:]}")
    m = json.loads((run / "metrics.json").read_text())
    rec = {"dataset": dataset, "processes": 2, "threads": 1, "nodes": 2,
           "train_samples_per_s": m["train_samples_per_s"], "train_seconds": m["train_seconds"]}
    print(json.dumps(rec), flush=True)
    return rec


def allreduce_cost(dataset: str) -> dict:
    """Seconds of one `average_gradients` over DeepFM's parameters on 2 processes (median of 20)."""
    script = WORK / "allreduce.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(f"""
import json, statistics, time, torch
from recnas.train import distributed
from recnas.data.cache import prepare
from recnas.data.source import open_dataset
from recnas.nn.models import build_model
from recnas.experiment.config import load_config
from recnas.methods.base import model_kwargs
distributed.init_from_env()
torch.set_num_threads(1)
cfg = load_config(None, ["data.path={DATA / dataset}"])
ds = prepare(open_dataset(cfg.data.path), "{WORK / 'cache'}")
model = build_model("deepfm", ds.schema, **model_kwargs(cfg))
for p in model.parameters():
    p.grad = torch.randn_like(p)
times = []
for _ in range(25):
    distributed.barrier()
    t0 = time.perf_counter()
    distributed.average_gradients(model.parameters())
    times.append(time.perf_counter() - t0)
if distributed.is_main():
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({{"allreduce_seconds": statistics.median(times[5:]), "parameters": n}}))
distributed.shutdown()
""")
    res = subprocess.run([PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = next((x for x in res.stdout.splitlines() if x.startswith("{")), None)
    if line is None:
        raise SystemExit(f"the all-reduce probe failed:\n{res.stderr[-2000:]}")
    rec = {"dataset": dataset, "probe": "allreduce", **json.loads(line)}
    print(json.dumps(rec), flush=True)
    return rec


def summarize(records: list[dict], key: str = "test_auc") -> list[dict]:
    """Mean and sd of `key` per (method, processes)."""
    groups: dict[tuple, list[float]] = {}
    for r in records:
        if key in r:
            label = r.get("method", "deepfm") + (f" x{r['threads']} threads" if key == "train_samples_per_s" else "")
            label += " (2 nodes)" if r.get("nodes") else ""
            groups.setdefault((label, r["processes"]), []).append(r[key])
    return [{"method": m, "processes": p, "n": len(v), "mean": statistics.fmean(v),
             "sd": statistics.stdev(v) if len(v) > 1 else 0.0} for (m, p), v in sorted(groups.items())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["correct", "search", "speed"])
    ap.add_argument("--dataset", default="frappe_full")
    ap.add_argument("--seeds", default="2026,2027,2028")
    ap.add_argument("--methods", default="autodim,autofis")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    if a.what == "correct":
        records = correct(a.dataset, seeds)
    elif a.what == "search":
        records = search(a.dataset, a.methods.split(","), seeds)
    else:
        records = speed(a.dataset)
    summary = summarize(records, "train_samples_per_s" if a.what == "speed" else "test_auc")
    for row in summary:
        print(f"| {row['method']} | {row['processes']} | {row['mean']:.4f} ± {row['sd']:.4f} (n={row['n']}) |")
    write_results(a.out, 2, records, summary)


if __name__ == "__main__":
    main()
