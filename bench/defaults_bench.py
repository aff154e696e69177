"""Zoo defaults chosen once (issue 19): candidate default sets of a model, trained on frappe_full and ml100k.

The rule, fixed before the runs: a candidate may replace the current defaults when its valid AUC gain over them
(mean over seeds) is positive on each of the two datasets; of those, the one with the largest gain averaged over
the two datasets and the two models wins. Test AUC is reported, never used to choose; bookcrossing (the data the
defaults were not chosen on) is run with --datasets bookcrossing to report.

    .venv/bin/python bench/defaults_bench.py --models deepfm,dcnv2 --seeds 2026,2027,2028 --threads 1 \
        --out bench/results/defaults.json
    .venv/bin/python bench/defaults_bench.py --out bench/results/defaults.json --table

Every run starts from the library's defaults (`load_config(None)`); a candidate changes only its named keys.
Finished runs are kept as records under --work, so a killed run resumes and two invocations started side by
side (each --threads 1 on a 2-core machine) share the queue through claim files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_bench import mean_sd, run_queue  # noqa: E402

from recnas.fileio import write_text_atomic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "derived"
CANDIDATES: dict[str, list[str]] = {
    "current": [],
    "norm": ["model.embedding_norm=true"],
    "norm015": ["model.embedding_norm=true", "model.embedding_norm_scale=0.15"],
    "norm015_dim16": ["model.embedding_norm=true", "model.embedding_norm_scale=0.15", "model.embedding_dim=16"],
    "norm_dim16": ["model.embedding_norm=true", "model.embedding_dim=16"],  # dropped after one seed (see the log)
}
RUN = ("current", "norm", "norm015", "norm015_dim16")  # the candidates run by default


def run_one(dataset: str, model: str, candidate: str, seed: int, threads: int, work: Path) -> dict:
    """Train one model with one candidate's defaults; the record the tables are made of."""
    from recnas.experiment.config import load_config
    from recnas.experiment.run import run_train

    cfg = load_config(None, [f"model.name={model}", f"seed={seed}", f"threads={threads}", "trainer.progress=false",
                             f"data.path={DATA / dataset}", f"data.cache_dir={work / 'cache'}",
                             *CANDIDATES[candidate]])
    t = time.perf_counter()
    res = run_train(cfg, work / "runs" / f"{dataset}-{model}-{candidate}-{seed}", log=lambda _m: None)
    m = res.metrics
    return {"dataset": dataset, "model": model, "candidate": candidate, "seed": seed,
            "valid_auc": m["valid_auc"], "test_auc": m["test_auc"], "test_logloss": m["test_logloss"],
            "embedding_params": m["embedding_params"], "epochs": m["epochs"], "wall_seconds": time.perf_counter() - t}


def jobs(args: argparse.Namespace) -> list[tuple[str, str, str, int]]:
    return [(d, m, c, s) for s in args.seeds for d in args.datasets for m in args.models for c in args.candidates]


def record_path(work: Path, job: tuple[str, str, str, int]) -> Path:
    return work / "records" / ("-".join(map(str, job)) + ".json")


def run_all(args: argparse.Namespace) -> list[dict]:
    """Every missing job (a job another process has claimed is left to it); then every record."""

    def say(job: tuple, r: dict) -> str:
        return (f"{' '.join(map(str, job))}: valid {r['valid_auc']:.4f} test {r['test_auc']:.4f} "
                f"({r['epochs']} epochs, {r['wall_seconds']:.0f} s)")

    return run_queue(jobs(args), lambda job: record_path(args.work, job),
                     lambda job: run_one(*job, args.threads, args.work), say)


def summarize(records: list[dict]) -> list[dict]:
    """Per dataset, model and candidate: valid and test AUC and the per-seed gain over `current`."""
    out = []
    base = {(r["dataset"], r["model"], r["seed"]): r for r in records if r["candidate"] == "current"}
    for key in dict.fromkeys((r["dataset"], r["model"], r["candidate"]) for r in records):
        rs = [r for r in records if (r["dataset"], r["model"], r["candidate"]) == key]
        paired = [(r, base[(r["dataset"], r["model"], r["seed"])]) for r in rs
                  if (r["dataset"], r["model"], r["seed"]) in base]
        out.append({"dataset": key[0], "model": key[1], "candidate": key[2], "seeds": [r["seed"] for r in rs],
                    "valid_auc": list(mean_sd(rs, "valid_auc")), "test_auc": list(mean_sd(rs, "test_auc")),
                    "test_logloss": list(mean_sd(rs, "test_logloss")),
                    "valid_gain": _ms([r["valid_auc"] - b["valid_auc"] for r, b in paired]),
                    "test_gain": _ms([r["test_auc"] - b["test_auc"] for r, b in paired]),
                    "embedding_params": rs[0]["embedding_params"], "epochs": mean_sd(rs, "epochs")[0]})
    return out


def _ms(values: list[float]) -> list[float]:
    return list(mean_sd([{"v": v} for v in values], "v")) if values else [float("nan"), float("nan")]


def table(summary: list[dict]) -> str:
    lines = ["| dataset | model | candidate | valid AUC | test AUC | valid gain | test gain | test logloss | EP | "
             "epochs | seeds |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['dataset']} | {s['model']} | {s['candidate']} | {s['valid_auc'][0]:.4f} ± "
                     f"{s['valid_auc'][1]:.4f} | {s['test_auc'][0]:.4f} ± {s['test_auc'][1]:.4f} | "
                     f"{s['valid_gain'][0]:+.4f} ± {s['valid_gain'][1]:.4f} | {s['test_gain'][0]:+.4f} ± "
                     f"{s['test_gain'][1]:.4f} | {s['test_logloss'][0]:.4f} | {s['embedding_params']:,} | "
                     f"{s['epochs']:.1f} | {len(s['seeds'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="frappe_full,ml100k")
    p.add_argument("--models", default="deepfm,dcnv2")
    p.add_argument("--candidates", default=",".join(RUN))
    p.add_argument("--seeds", default="2026,2027,2028")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "defaults")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "defaults.json")
    p.add_argument("--table", action="store_true", help="print the table of --out and stop")
    args = p.parse_args()
    if args.table:
        print(table(json.loads(args.out.read_text())["summary"]))
        return
    args.datasets, args.models = args.datasets.split(","), args.models.split(",")
    args.candidates = args.candidates.split(",")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    unknown = set(args.candidates) - set(CANDIDATES)
    if unknown:
        sys.exit(f"unknown candidate(s) {sorted(unknown)}; known: {', '.join(CANDIDATES)}")
    torch.set_num_threads(args.threads)
    records = run_all(args)
    summary = summarize(records)
    write_text_atomic(args.out, json.dumps({
        "date": dt.date.today().isoformat(), "command": " ".join(sys.argv),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, "
                   f"{args.threads} threads", "candidates": CANDIDATES, "runs": records, "summary": summary},
        indent=2))
    print(table(summary))


if __name__ == "__main__":
    main()
