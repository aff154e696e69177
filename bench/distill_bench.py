"""Distillation of the compact candidates (issue 19 point 2): does the tuned full-width model's soft target lift the
model `recnas auto` makes fit the memory budget?

For each dataset and seed: the tuned DeepFM of that seed (its best parameters from `auto_bench.py tune` JSON) is
trained at full width, the teacher; each compact candidate of it at the budget (`recnas.experiment.compact`: the
narrowed model, and where the ids have a tail the shared-tail and floored ones) is trained on the labels alone and
on the labels blended with the teacher's probabilities (`distill.weight` w). Every setting is the shipped default or
the tuned one of that seed; valid AUC chooses, test AUC is reported.

    .venv/bin/python bench/distill_bench.py --datasets frappe_full --seeds 2026,2027,2028 --weights 0.5 \
        --tuned bench/results/tune_frappe_full_wide64_a.json bench/results/tune_frappe_full_wide64_b.json \
        --threads 1 --out bench/results/distill_frappe_full.json
    .venv/bin/python bench/distill_bench.py --table --out bench/results/distill_frappe_full.json [--also MORE.json]

Work folders under bench/work/distill/ (a killed run resumes: finished runs are read back).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from recnas.fileio import write_text_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from auto_bench import DATA, mean_sd  # noqa: E402
from zoo_bench import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def tuned_params(files: list[str], dataset: str, seed: int) -> dict[str, Any]:
    """The best DeepFM parameters of `dataset` and `seed` in the tune JSON `files`."""
    for f in files:
        for r in json.loads(Path(f).read_text())["records"]:
            if r["dataset"] == dataset and r["seed"] == seed and r["model"] == "deepfm":
                return r["best_params"]
    raise SystemExit(f"no tuned DeepFM for {dataset} seed {seed} in {files}")


def cell(dataset: str, seed: int, params: dict[str, Any], weights: list[float], fraction: float, threads: int,
         work: Path) -> list[dict[str, Any]]:
    """The teacher, then every compact candidate plain and distilled: one record each."""
    from recnas.experiment.auto import base_config
    from recnas.experiment.budget import searched_budget
    from recnas.experiment.compact import compact_candidates
    from recnas.experiment.run import load_splits, run_train
    from recnas.experiment.tune import trial_config

    folder = work / f"{dataset}-{seed}"
    base = base_config(DATA / dataset, seed, threads, work / "cache")
    teacher_cfg = trial_config(base, {k: v for k, v in params.items() if k != "model.numerical_encoder"})
    schema = load_splits(teacher_cfg).ds.schema
    full_ep, _ = searched_budget(teacher_cfg, schema, fraction)

    def record(variant: str, m: dict[str, Any]) -> dict[str, Any]:
        out = {"dataset": dataset, "seed": seed, "variant": variant, "ep_fraction": m["embedding_params"] / full_ep}
        return {**out, **{k: m[k] for k in ("valid_auc", "test_auc", "test_logloss", "embedding_params",
                                            "train_seconds", "epochs")}}

    log = print
    rows = [record("teacher", run_train(teacher_cfg, folder / "teacher", log=lambda _m: None).metrics)]
    log(f"[{dataset} {seed}] teacher: valid {rows[0]['valid_auc']:.4f} test {rows[0]['test_auc']:.4f}", flush=True)
    for cand in compact_candidates(teacher_cfg, schema, int(fraction * full_ep)):
        runs = [(cand.folder, cand.config)]
        for w in weights:
            taught = trial_config(cand.config, {"distill.teacher": str(folder / "teacher"), "distill.weight": w})
            runs.append((f"{cand.folder}+distill{w:g}", taught))
        for variant, cfg in runs:
            rows.append(record(variant, run_train(cfg, folder / variant, log=lambda _m: None).metrics))
            log(f"[{dataset} {seed}] {variant}: valid {rows[-1]['valid_auc']:.4f} test {rows[-1]['test_auc']:.4f} "
                f"({rows[-1]['ep_fraction']:.1%} EP)", flush=True)
    return rows


def shown(values: list[float]) -> str:
    """`auto_bench.mean_sd` of `values`, as the tables print it."""
    mean, sd = mean_sd(values)
    return f"{mean:.4f} ± {sd:.4f}"


def table(records: list[dict[str, Any]]) -> str:
    """Per dataset and variant: valid and test AUC (mean ± sd over seeds), test minus the same candidate undistilled
    and minus the teacher, paired by seed."""
    lines = ["| dataset | variant | seeds | EP share | valid AUC | test AUC | minus undistilled (paired) "
             "| minus teacher |", "|---|---|---|---|---|---|---|---|"]
    by = {(r["dataset"], r["seed"], r["variant"]): r for r in records}
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        for variant in dict.fromkeys(r["variant"] for r in records if r["dataset"] == dataset):
            rs = [r for r in records if r["dataset"] == dataset and r["variant"] == variant]
            plain = variant.split("+")[0]
            d_plain = [r["test_auc"] - by[(dataset, r["seed"], plain)]["test_auc"] for r in rs
                       if "+" in variant and (dataset, r["seed"], plain) in by]
            d_teacher = [r["test_auc"] - by[(dataset, r["seed"], "teacher")]["test_auc"] for r in rs]
            lines.append(f"| {dataset} | {variant} | {len(rs)} | {statistics.fmean(r['ep_fraction'] for r in rs):.1%} "
                         f"| {shown([r['valid_auc'] for r in rs])} | {shown([r['test_auc'] for r in rs])} "
                         f"| {shown(d_plain) if d_plain else '-'} | {shown(d_teacher)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="frappe_full")
    ap.add_argument("--seeds", default="2026,2027,2028")
    ap.add_argument("--tuned", nargs="*", default=[], help="auto_bench.py tune JSON files with the tuned DeepFM")
    ap.add_argument("--weights", default="0.5", help="distill.weight values to try")
    ap.add_argument("--fraction", type=float, default=0.3, help="the memory budget, a share of the teacher's EP")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "distill")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--table", action="store_true", help="print the table of --out (and --also) and stop")
    ap.add_argument("--also", nargs="*", type=Path, default=[], help="more result files for --table")
    args = ap.parse_args()
    if args.table:
        print(table([r for f in (args.out, *args.also) for r in json.loads(f.read_text())["records"]]))
        return
    records = []
    for dataset in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            params = tuned_params(args.tuned, dataset, seed)
            records += cell(dataset, seed, params, [float(w) for w in args.weights.split(",")], args.fraction,
                            args.threads, args.work)
            write_text_atomic(args.out, json.dumps({
                "date": dt.date.today().isoformat(), "command": " ".join(sys.argv), "machine": machine(args.threads),
                "records": records}, indent=1))
    print(table(records))


if __name__ == "__main__":
    main()
