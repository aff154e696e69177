"""AutoCTR benchmark (issue 21): evolution against random search at equal trials, and the retrained DAG against
the zoo, on real data.

For each dataset and seed, one `recnas search` of AutoCTR at its library defaults (`--set` overrides are the same
for every dataset and named in the results) with `lab.control=true`: the evolution's trials, then the best DAG
retrained at full fidelity, then a random search over the same space with the same trial budget and its best DAG
retrained the same way. Beside it the zoo models of `--zoo` (DeepFM first) trained with the same trainer settings.
Records: both searches' best-so-far curves of validation logloss (low fidelity), the retrained models' test AUC,
logloss, FLOPs per row and dense parameters, and the wall time of the search.

    .venv/bin/python bench/autoctr_bench.py --datasets ml100k,frappe_full,bookcrossing --seeds 2026,2027,2028 \
        --set search.trials=40 --out bench/results/autoctr.json
    .venv/bin/python bench/autoctr_bench.py --out bench/results/autoctr.json --table

Finished cells are kept as records under --work; a killed run resumes (a killed search resumes from its
trials.jsonl). `--speed` times one search with 1 and with 2 Ray workers (same trials, same result) instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_bench import library_config, mean_sd, paired_gap, run_queue, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "derived"


def flops_and_params(folder: Path) -> tuple[float, int]:
    """FLOPs per row and dense (non-table) parameters of a trained run folder's model."""
    from recnas.data.batches import FieldBatch
    from recnas.experiment.run import load_run, load_splits
    from recnas.train.cost import flops_per_sample
    from recnas.train.metrics import dense_params

    cfg, _, model = load_run(folder)
    splits = load_splits(cfg)
    batch = FieldBatch.from_arrays({k: v[:256] for k, v in splits.ds.splits["valid"].items()})
    return float(flops_per_sample(model, batch)), dense_params(model)


def run_one(data: Path, variant: str, seed: int, threads: int, work: Path, sets: list[str]) -> dict[str, Any]:
    """One cell: a zoo model's training, or AutoCTR's evolution + retrain + random control + retrain."""
    from recnas.experiment.run import run_train
    from recnas.experiment.search import run_search

    folder = work / "runs" / f"{data.name}-{variant}-{seed}"
    t = time.perf_counter()
    if variant == "autoctr":
        cfg = library_config(data, seed, threads, work, ["model.name=autoctr", "search.method=autoctr",
                                                         "search.baseline=false", "lab.control=true", *sets])
        res = run_search(cfg, folder, log=lambda _m: None)
        control = json.loads((folder / "control" / "arch.json").read_text())
        control_m = json.loads((folder / "control" / "metrics.json").read_text())
        out: dict[str, Any] = {"settings": sets}
        for name, arch, m, sub in (("evolution", res.arch, res.retrain, "retrain"),
                                   ("random", control, control_m, "control")):
            flops, params = flops_and_params(folder / sub)
            out[name] = {"best_so_far": arch["best_so_far"], "best_valid_logloss": arch["best_so_far"][-1],
                         "blocks": arch["blocks"], "failed": arch["failed"], "search_seconds": arch["search_seconds"],
                         "valid_auc": m["valid_auc"], "test_auc": m["test_auc"], "test_logloss": m["test_logloss"],
                         "flops": flops, "params": params, "train_seconds": m["train_seconds"]}
        return {"dataset": data.name, "variant": variant, "seed": seed, "test_auc": out["evolution"]["test_auc"],
                "wall_seconds": time.perf_counter() - t, **out}
    m = run_train(library_config(data, seed, threads, work, [f"model.name={variant}"]), folder,
                  log=lambda _m: None).metrics
    flops, params = flops_and_params(folder)
    return {"dataset": data.name, "variant": variant, "seed": seed, "valid_auc": m["valid_auc"],
            "test_auc": m["test_auc"], "test_logloss": m["test_logloss"], "flops": flops, "params": params,
            "train_seconds": m["train_seconds"], "wall_seconds": time.perf_counter() - t}


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset: every model's test AUC, logloss, FLOPs, params; the searches' best valid logloss, paired."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == ds]
        zoo = {r["variant"] for r in rows if r["variant"] != "autoctr"}
        searched = [r for r in rows if r["variant"] == "autoctr"]
        entry: dict[str, Any] = {"dataset": ds, "models": {}}
        for v in sorted(zoo):
            rs = [r for r in rows if r["variant"] == v]
            entry["models"][v] = {"seeds": [r["seed"] for r in rs], "test_auc": list(mean_sd(rs, "test_auc")),
                                  "test_logloss": mean_sd(rs, "test_logloss")[0], "flops": mean_sd(rs, "flops")[0],
                                  "params": mean_sd(rs, "params")[0], "train_seconds": mean_sd(rs, "train_seconds")[0]}
        for name in ("evolution", "random"):
            rs = [r[name] for r in searched]
            if rs:
                entry["models"][f"autoctr-{name}"] = {
                    "seeds": [r["seed"] for r in searched], "test_auc": list(mean_sd(rs, "test_auc")),
                    "test_logloss": mean_sd(rs, "test_logloss")[0], "flops": mean_sd(rs, "flops")[0],
                    "params": mean_sd(rs, "params")[0], "train_seconds": mean_sd(rs, "train_seconds")[0],
                    "best_valid_logloss": list(mean_sd(rs, "best_valid_logloss")),
                    "search_seconds": mean_sd(rs, "search_seconds")[0]}
        if searched:
            gap = [{"d": r["evolution"]["best_valid_logloss"] - r["random"]["best_valid_logloss"]} for r in searched]
            entry["evolution_minus_random_valid_logloss"] = list(mean_sd(gap, "d"))
            for v in sorted(zoo):
                paired = [{"d": r["evolution"]["test_auc"] - by_seed_v["test_auc"]} for r in searched
                          if (by_seed_v := next((x for x in rows if x["variant"] == v and x["seed"] == r["seed"]),
                                                None)) is not None]
                if paired:
                    entry[f"evolution_minus_{v}_test_auc"] = list(mean_sd(paired, "d"))
        out.append(entry)
    return out


def table(summary: list[dict[str, Any]]) -> str:
    lines = ["| dataset | model | seeds | test AUC | test logloss | FLOPs/row | dense params | best valid logloss "
             "(trials) | search s |", "|---|---|---|---|---|---|---|---|---|"]
    for e in summary:
        for name, m in e["models"].items():
            best = m.get("best_valid_logloss")
            lines.append(f"| {e['dataset']} | {name} | {len(m['seeds'])} | {m['test_auc'][0]:.4f} ± "
                         f"{m['test_auc'][1]:.4f} | {m['test_logloss']:.4f} | {m['flops']:,.0f} | {m['params']:,.0f} | "
                         f"{'-' if best is None else f'{best[0]:.4f} ± {best[1]:.4f}'} | "
                         f"{m.get('search_seconds', 0):.0f} |")
    lines.append("")
    for e in summary:
        gaps = [f"{k.replace('_', ' ')}: {paired_gap(v) if 'auc' in k else f'{v[0]:+.4f} ± {v[1]:.4f}'}"
                for k, v in e.items() if k.startswith("evolution_minus")]
        if gaps:
            lines.append(f"- {e['dataset']}: " + "; ".join(gaps))
    return "\n".join(lines) + "\n"


def speed(data: Path, seed: int, work: Path, sets: list[str], out: Path) -> None:
    """One search with 1 and with 2 Ray workers (one CPU each): wall time, and whether the trials agree."""
    from types import SimpleNamespace

    from recnas.experiment.run import load_splits
    from recnas.methods.autoctr import AutoCTR

    res = {}
    for workers in (1, 2):
        cfg = library_config(data, seed, 1, work, ["model.name=autoctr", "search.method=autoctr",
                                                   f"search.local_cpus={workers}", *sets])
        splits = load_splits(cfg)
        t = time.perf_counter()
        records, _ = AutoCTR(cfg).run_trials(SimpleNamespace(ds=splits.ds), work / f"speed-{workers}", "evolution",
                                             lambda _m: None)
        res[workers] = {"seconds": time.perf_counter() - t, "losses": [r.get("valid_logloss") for r in records],
                        "nodes": sorted({str(r.get("node")) for r in records})}
        print(f"{workers} worker(s): {res[workers]['seconds']:.1f} s", flush=True)
    res["speedup"] = res[1]["seconds"] / res[2]["seconds"]
    res["same_trials"] = res[1]["losses"] == res[2]["losses"]
    print(f"speed-up {res['speedup']:.2f}x; same trial results: {res['same_trials']}")
    write_results(out, 1, [res], [])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="ml100k,frappe_full,bookcrossing", help="folders of ../shared/data/derived")
    p.add_argument("--data", type=Path, default=None, help="one prepared data folder instead of --datasets")
    p.add_argument("--zoo", default="deepfm,dcnv2", help="zoo models trained beside the search (deepfm first)")
    p.add_argument("--seeds", default="2026,2027,2028")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the retrains and zoo models")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="an AutoCTR override for every dataset (repeatable)")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "autoctr")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "autoctr.json")
    p.add_argument("--table", action="store_true", help="print the table of --out and stop")
    p.add_argument("--speed", action="store_true", help="time one search with 1 and 2 Ray workers instead")
    args = p.parse_args()
    if args.table:
        print(table(json.loads(args.out.read_text())["summary"]))
        return
    datas = [args.data] if args.data is not None else [DATA / d for d in args.datasets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.speed:
        speed(datas[0], seeds[0], args.work, args.sets, args.out)
        return
    variants = [v for v in args.zoo.split(",") if v] + ["autoctr"]
    jobs = [(d, v, s) for d in datas for s in seeds for v in variants]
    records = run_queue(jobs, lambda job: args.work / "records" / f"{job[0].name}-{job[1]}-{job[2]}.json",
                        lambda job: run_one(*job, args.threads, args.work, args.sets),
                        lambda job, r: f"{job[0].name} {job[1]} {job[2]}: test {r['test_auc']:.4f} "
                                       f"({r['wall_seconds']:.0f} s)")
    summary = summarize(records)
    write_results(args.out, args.threads, records, summary)
    print(table(summary))


if __name__ == "__main__":
    main()
