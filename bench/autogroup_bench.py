"""AutoGroup benchmark (issue 20): AutoGroup against DeepFM, the other zoo candidates and AutoFIS, same trainer.

For each dataset and seed: the zoo models (`--zoo`, default DeepFM and DCNv2, the strongest of the zoo benchmark)
trained at the library's defaults; AutoFIS (search on DeepFM, retrain) and AutoGroup (search on the autogroup model,
retrain) at their library defaults; every model with the same trainer settings (the library's). Nothing is chosen
per dataset. Goals (issue 20): AutoGroup's test AUC >= the best of DeepFM and AutoFIS (mean of 3 seeds; a gap within
the seed spread is a tie), and its search + retrain <= 3x one DeepFM training.

    .venv/bin/python bench/autogroup_bench.py --datasets frappe_full,ml100k,bookcrossing --seeds 2026,2027,2028 \
        --threads 1 --out bench/results/autogroup.json
    .venv/bin/python bench/autogroup_bench.py --out bench/results/autogroup.json --table

Finished runs are kept as records under --work; a killed run resumes, and two invocations side by side (each
--threads 1) share the queue through claim files. `--data DIR` runs on any prepared folder (a smoke run on
`recnas synth` data, say).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_bench import library_config, mean_sd, paired_gap, run_queue, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "derived"
SEARCHES = {"autofis": "deepfm", "autogroup": "autogroup"}  # search method -> the model it searches


def run_one(data: Path, variant: str, seed: int, threads: int, work: Path,
            autogroup_set: list[str]) -> dict[str, Any]:
    """One cell: a zoo model's training, or a search and its retrain (seconds: search + retrain).

    `autogroup_set`: overrides for the AutoGroup runs only (settings compared on the validation split).
    """
    from recnas.experiment.run import run_train
    from recnas.experiment.search import run_search
    from recnas.methods import method_of

    folder = work / "runs" / f"{data.name}-{variant}-{seed}"
    t = time.perf_counter()
    if variant in SEARCHES:
        own = autogroup_set if variant == "autogroup" else []
        cfg = library_config(data, seed, threads, work, [f"model.name={SEARCHES[variant]}", f"search.method={variant}",
                                                 "search.baseline=false", *own])
        res = run_search(cfg, folder, log=lambda _m: None)
        m, arch = res.retrain, res.arch
        search_s = float(arch.get("search_seconds") or 0.0)
        extra = {"search_seconds": search_s, "seconds": search_s + float(m["train_seconds"]),
                 "found": method_of(cfg).summary(arch), "settings": own}
        if "one_shot" in arch:  # AutoGroup's searched model used as it is, no retrain
            extra["one_shot_test_auc"] = arch["one_shot"]["test_auc"]
    else:
        m = run_train(library_config(data, seed, threads, work, [f"model.name={variant}"]), folder,
                      log=lambda _m: None).metrics
        extra = {"seconds": float(m["train_seconds"])}
    return {"dataset": data.name, "variant": variant, "seed": seed, "valid_auc": m["valid_auc"],
            "test_auc": m["test_auc"], "test_logloss": m["test_logloss"], "embedding_params": m["embedding_params"],
            "wall_seconds": time.perf_counter() - t, **extra}


def record_path(work: Path, data: Path, variant: str, seed: int) -> Path:
    return work / "records" / f"{data.name}-{variant}-{seed}.json"


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset and variant: test AUC and seconds mean ± sd, and the test AUC paired per seed against DeepFM."""
    out = []
    for key in dict.fromkeys((r["dataset"], r["variant"]) for r in records):
        rs = [r for r in records if (r["dataset"], r["variant"]) == key]
        base = {r["seed"]: r for r in records if r["dataset"] == key[0] and r["variant"] == "deepfm"}
        paired = [{"d": r["test_auc"] - base[r["seed"]]["test_auc"],
                   "t": r["seconds"] / base[r["seed"]]["seconds"]} for r in rs if r["seed"] in base]
        out.append({"dataset": key[0], "variant": key[1], "seeds": [r["seed"] for r in rs],
                    "test_auc": list(mean_sd(rs, "test_auc")), "valid_auc": list(mean_sd(rs, "valid_auc")),
                    "test_logloss": mean_sd(rs, "test_logloss")[0], "ep": mean_sd(rs, "embedding_params")[0],
                    "seconds": list(mean_sd(rs, "seconds")),
                    "vs_deepfm": list(mean_sd(paired, "d")) if paired else None,
                    "time_vs_deepfm": mean_sd(paired, "t")[0] if paired else None})
    return out


def table(summary: list[dict[str, Any]]) -> str:
    lines = ["| dataset | variant | seeds | test AUC | minus DeepFM (paired) | test logloss | EP | seconds | "
             "x DeepFM time |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        vs = s["vs_deepfm"]
        gap = "-" if s["variant"] == "deepfm" or vs is None else paired_gap(vs)
        ratio = "-" if s["time_vs_deepfm"] is None else f"{s['time_vs_deepfm']:.2f}"
        lines.append(f"| {s['dataset']} | {s['variant']} | {len(s['seeds'])} | {s['test_auc'][0]:.4f} ± "
                     f"{s['test_auc'][1]:.4f} | {gap} | {s['test_logloss']:.4f} | {s['ep']:,.0f} | "
                     f"{s['seconds'][0]:.0f} | {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="frappe_full,ml100k,bookcrossing", help="folders of ../shared/data/derived")
    p.add_argument("--data", type=Path, default=None, help="one prepared data folder instead of --datasets")
    p.add_argument("--zoo", default="deepfm,dcnv2", help="zoo models trained beside the searches (deepfm first)")
    p.add_argument("--searches", default="autofis,autogroup")
    p.add_argument("--seeds", default="2026,2027,2028")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "autogroup")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "autogroup.json")
    p.add_argument("--autogroup-set", action="append", default=[], metavar="KEY=VALUE",
                   help="an override for the AutoGroup runs only (repeatable); give them their own --work")
    p.add_argument("--table", action="store_true", help="print the table of --out and stop")
    args = p.parse_args()
    if args.table:
        print(table(json.loads(args.out.read_text())["summary"]))
        return
    datas = [args.data] if args.data is not None else [DATA / d for d in args.datasets.split(",")]
    variants = [v for v in args.zoo.split(",") + args.searches.split(",") if v]
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(args.threads)
    jobs = [(d, v, s) for d in datas for s in seeds for v in variants]
    records = run_queue(jobs, lambda job: record_path(args.work, *job),
                        lambda job: run_one(*job, args.threads, args.work, args.autogroup_set),
                        lambda job, r: f"{job[0].name} {job[1]} {job[2]}: test {r['test_auc']:.4f} "
                                       f"({r['seconds']:.0f} s)")
    summary = summarize(records)
    write_results(args.out, args.threads, records, summary)
    print(table(summary))


if __name__ == "__main__":
    main()
