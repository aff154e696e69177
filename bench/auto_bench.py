"""AutoML benchmark (issue 19): the tuned zoo against its defaults, and `recnas auto` against the tuned zoo.

    # tuned zoo: `recnas tune` per dataset, model and seed; trial 0 of every tune is the zoo default (the baseline,
    # trained in the same run), so "default" and "tuned" below come from one study each
    .venv/bin/python bench/auto_bench.py tune --datasets ml100k --models deepfm,dcnv2 --seeds 2026,2027,2028 \
        --trials 12 --threads 1 --out bench/results/tune_ml100k.json
    # recnas auto with a time budget, against the tuned zoo of the same seed
    .venv/bin/python bench/auto_bench.py auto --datasets ml100k --seeds 2026 --budget 20m \
        --out bench/results/auto_ml100k.json
    # runs made before `recnas auto` trained the compact candidates (narrowed, shared tail): train the missing ones
    # and add the choice with them
    .venv/bin/python bench/auto_bench.py compact --out bench/results/auto_ml100k.json
    # per-run leaderboards and the per-dataset summary, paired by seed with the best tuned zoo model
    .venv/bin/python bench/auto_bench.py table --out bench/results/auto_ml100k.json \
        --tuned bench/results/tune_ml100k.json

Every setting comes from the shipped defaults (the zoo's config defaults and `recnas/experiment/tune_space.yaml`):
nothing here is chosen per dataset. Work folders under bench/work/auto/ (a killed run resumes: tune studies and
auto folders pick up where they stopped). The JSON holds one record per (dataset, model, seed) and the summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

from recnas.fileio import write_text_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_bench import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "derived"
WORK = ROOT / "bench" / "work" / "auto"


def mean_sd(values: list[float]) -> list[float]:
    return [statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0]


def tune_cell(dataset: str, model: str, seed: int, trials: int, threads: int, work: Path = WORK) -> dict:
    from recnas.experiment.config import load_config
    from recnas.experiment.tune import run_tune

    cfg = load_config(None, [f"model.name={model}", f"seed={seed}", f"threads={threads}", "trainer.progress=false",
                             f"data.path={DATA / dataset}", f"data.cache_dir={work / 'cache'}"])
    t = time.perf_counter()
    res = run_tune(cfg, work / "tune" / f"{dataset}-{model}-{seed}", trials,
                   log=lambda m: print(f"  [{dataset} {model} {seed}] {m}", flush=True))
    values = [{k: v for k, v in r.items() if k not in ("trial", "state", "valid_auc", "test_auc")} for r in res.trials]
    # the default: trial 0, or the trial that re-ran its values after a kill (not merely the first to complete)
    first = next(r for r, v in zip(res.trials, values, strict=True) if r["state"] == "COMPLETE" and v == values[0])
    rows = [r for r in res.trials if r["state"] == "COMPLETE"]
    return {"dataset": dataset, "model": model, "seed": seed, "trials": len(res.trials),
            "completed": len(rows), "default_valid_auc": first["valid_auc"], "default_test_auc": first["test_auc"],
            "tuned_valid_auc": res.best_metrics["valid_auc"], "tuned_test_auc": res.best_metrics["test_auc"],
            "tuned_test_logloss": res.best_metrics["test_logloss"],
            "tuned_embedding_params": res.best_metrics["embedding_params"], "best_params": res.best_params,
            "wall_seconds": time.perf_counter() - t}


def summary(records: list[dict]) -> list[dict]:
    out = []
    for key in dict.fromkeys((r["dataset"], r["model"]) for r in records):
        rs = [r for r in records if (r["dataset"], r["model"]) == key]
        gain = [r["tuned_test_auc"] - r["default_test_auc"] for r in rs]
        out.append({"dataset": key[0], "model": key[1], "seeds": [r["seed"] for r in rs],
                    "default_test_auc": mean_sd([r["default_test_auc"] for r in rs]),
                    "tuned_test_auc": mean_sd([r["tuned_test_auc"] for r in rs]),
                    "gain": mean_sd(gain), "tuned_valid_auc": mean_sd([r["tuned_valid_auc"] for r in rs])})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["tune", "auto", "compact", "table"])
    p.add_argument("--datasets", default="ml100k")
    p.add_argument("--models", default="deepfm,dcnv2")
    p.add_argument("--seeds", default="2026,2027,2028")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--budget", default="20m")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True, help="the JSON to write (tune, auto) or to read (table)")
    p.add_argument("--tuned", type=Path, nargs="*", default=[],
                   help="table: the tune JSONs to compare auto with (the later wins for one dataset, seed, model)")
    p.add_argument("--also", type=Path, nargs="*", default=[], help="table: more auto JSONs whose runs join --out's")
    p.add_argument("--work", type=Path, default=WORK, help="the work folder of the tunes or auto runs")
    a = p.parse_args()
    if a.mode == "table":
        doc = json.loads(a.out.read_text())
        doc["records"] += [r for more in a.also for r in json.loads(more.read_text())["records"]]
        print(table(doc, [json.loads(t.read_text()) for t in a.tuned], a.work))
        return
    if a.mode == "compact":  # add the compact candidates to the finished auto runs of --out, in place
        doc = json.loads(a.out.read_text())
        doc["compact_command"] = "python " + " ".join(sys.argv)
        for rec in doc["records"]:
            add_compact(rec, a.work)
            write_text_atomic(a.out, json.dumps(doc, indent=2))
        return
    seeds = [int(s) for s in a.seeds.split(",")]
    records: list[dict] = []
    doc = {"date": dt.date.today().isoformat(), "command": "python " + " ".join(sys.argv),
           "machine": machine(a.threads), "mode": a.mode, "records": records}
    for dataset in a.datasets.split(","):
        for seed in seeds:
            if a.mode == "tune":
                for model in a.models.split(","):
                    records.append(tune_cell(dataset, model, seed, a.trials, a.threads, a.work))
                    doc["summary"] = summary(records)
                    write_text_atomic(a.out, json.dumps(doc, indent=2))
            else:
                records.append(auto_cell(dataset, seed, a.budget, a.threads, a.work))
                write_text_atomic(a.out, json.dumps(doc, indent=2))


def auto_cell(dataset: str, seed: int, budget: str, threads: int, work: Path = WORK) -> dict:
    from recnas.experiment.auto import parse_duration, run_auto

    t = time.perf_counter()
    res = run_auto(DATA / dataset, work / "auto" / f"{dataset}-{seed}-{budget}", time_budget_s=parse_duration(budget),
                   seed=seed, threads=threads, cache_dir=work / "cache",
                   log=lambda m: print(f"  [auto {dataset} {seed}] {m}", flush=True))
    return {"dataset": dataset, "seed": seed, "budget": budget, "wall_seconds": time.perf_counter() - t,
            "chosen": res.chosen, "leaderboard": res.leaderboard}


def added_rows(rec: dict) -> list[dict]:
    """The candidates trained after an auto run (`compact`; `narrowed` in JSONs written before it was renamed)."""
    return rec.get("added") or ([rec["narrowed"]] if rec.get("narrowed") else [])


def add_compact(rec: dict, work: Path) -> None:
    """Add the compact candidates an auto run lacks (it was made before auto trained them), and the choice with them.

    They train as auto trains them, but with no deadline, in the run's folder where auto itself would put them (a
    finished one is read, not trained again); the run's own clock is left as it was.
    """
    from recnas.experiment.auto import Clock, base_config, choose, train_compact
    from recnas.experiment.run import load_splits

    folder = work / "auto" / f"{rec['dataset']}-{rec['seed']}-{rec['budget']}"
    plan = json.loads((folder / "auto.json").read_text())
    args = plan["args"]
    cfg = base_config(args["data"], args["seed"], args["threads"], work / "cache", args["overrides"])
    schema = load_splits(cfg, lambda _m: None).ds.schema
    rows = train_compact(cfg, folder, schema, int(args["max_ep_fraction"] * plan["full_width_ep"]),
                         lambda _left: None, Clock(folder / "added_clock.json"),
                         lambda m: print(f"  [{folder.name}] {m}", flush=True))
    have = {r["candidate"] for r in rec["leaderboard"]}
    rec["added"] = [r for r in rows if r["candidate"] not in have]
    for r in rec["added"]:
        r["ep_fraction"] = r["embedding_params"] / plan["full_width_ep"]
    rec.pop("narrowed", None)
    rec.pop("chosen_with_narrowed", None)
    rec["chosen_with_added"] = choose([*rec["leaderboard"], *rec["added"]], args["max_ep_fraction"])
    print(f"{folder.name}: added {[(r['candidate'], round(r['valid_auc'], 4)) for r in rec['added']]}; chosen "
          f"{rec['chosen_with_added']['candidate']}")


def tuned_wall(auto_dir: Path) -> float | None:
    """Seconds of the auto run's own tuned DeepFM training (its best trial's wall time): the unit of auto's time."""
    best = auto_dir / "tune" / "deepfm" / "best.json"
    if not best.is_file():
        return None
    folder = Path(json.loads(best.read_text())["folder"])
    return json.loads((folder / "metrics.json").read_text())["wall_seconds"]


def table(auto_doc: dict, tune_docs: list[dict], work: Path) -> str:
    """Markdown: per auto run, every leaderboard row, then the chosen model against the best tuned zoo model."""
    tuned = {(r["dataset"], r["seed"], r["model"]): r for d in tune_docs for r in d["records"]}
    lines = []
    paired: dict[str, list[dict]] = {}  # dataset -> per seed: chosen against the best tuned zoo model
    for rec in auto_doc["records"]:
        ds, seed = rec["dataset"], rec["seed"]
        lines += [f"**{ds}, seed {seed}, budget {rec['budget']}** (wall {rec['wall_seconds'] / 60:.1f} min)", "",
                  "| candidate | valid AUC | test AUC | test logloss | EP | EP share | FLOPs/row | seconds |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rec["leaderboard"]:
            lines.append(leaderboard_line(r, " (chosen)" if r["chosen"] else ""))
        with_added = rec.get("chosen_with_added") or rec.get("chosen_with_narrowed")
        for r in added_rows(rec):
            chosen = with_added["candidate"] == r["candidate"]
            lines.append(leaderboard_line(r, ", trained after the run" + (" (chosen with it)" if chosen else "")))
        zoo = [tuned[k] for k in tuned if k[:2] == (ds, seed)]
        if zoo:
            best = max(zoo, key=lambda r: r["tuned_valid_auc"])
            c = rec["chosen"]
            unit = tuned_wall(work / "auto" / f"{ds}-{seed}-{rec['budget']}")
            units = f"{rec['wall_seconds'] / unit:.1f}" if unit else "n/a"
            lines += ["", f"Chosen {c['candidate']}: test AUC {c['test_auc']:.4f} against the best tuned zoo model "
                      f"of `recnas tune` ({best['model']}, {best['trials']} trials, chosen on valid): "
                      f"{best['tuned_test_auc']:.4f} (difference {c['test_auc'] - best['tuned_test_auc']:+.4f}); "
                      f"EP {c['embedding_params']:,} = {c['embedding_params'] / best['tuned_embedding_params']:.1%} "
                      f"of that model's; auto's wall time = {units} trainings of its own tuned DeepFM."]
            for c, what in ((rec["chosen"], "as run"), (with_added, "with the candidates trained after it")):
                if c:
                    paired.setdefault(f"{ds}, {rec['budget']}, {what}", []).append({
                        "seed": seed, "chosen": c["candidate"], "auto": c["test_auc"], "zoo": best["tuned_test_auc"],
                        "zoo_model": best["model"], "ep_share": c["embedding_params"] / best["tuned_embedding_params"],
                        "units": rec["wall_seconds"] / unit if unit else None})
        lines.append("")
    return "\n".join(lines + summary_table(paired))


def leaderboard_line(r: dict, note: str) -> str:
    """One markdown row of a leaderboard candidate (FLOPs "-" where the row has none)."""
    flops = f"{r['flops_per_row'] / 1e6:.2f} M" if r.get("flops_per_row") else "-"
    return (f"| {r['candidate']}{note} | {r['valid_auc']:.4f} | {r['test_auc']:.4f} | {r['test_logloss']:.4f} | "
            f"{r['embedding_params']:,} | {r['ep_fraction']:.1%} | {flops} | {r['train_seconds']:.0f} |")


def summary_table(paired: dict[str, list[dict]]) -> list[str]:
    """Markdown: per dataset, the chosen models' test AUC against the best tuned zoo model's, paired by seed."""
    if not paired:
        return []
    lines = ["| dataset, budget, candidates | seeds | chosen | auto test AUC | best tuned zoo (model) | "
             "auto minus zoo, paired | EP share of that model | wall in tuned DeepFM trainings |",
             "|---|---|---|---|---|---|---|---|"]
    for ds, rows in paired.items():
        auto, zoo = mean_sd([r["auto"] for r in rows]), mean_sd([r["zoo"] for r in rows])
        gap = mean_sd([r["auto"] - r["zoo"] for r in rows])
        units = [r["units"] for r in rows if r["units"] is not None]
        units_text = f"{statistics.fmean(units):.1f}" if units else "n/a"
        lines.append(f"| {ds} | {', '.join(str(r['seed']) for r in rows)} | "
                     f"{', '.join(r['chosen'] for r in rows)} | {auto[0]:.4f} ± {auto[1]:.4f} | "
                     f"{zoo[0]:.4f} ± {zoo[1]:.4f} ({', '.join(sorted({r['zoo_model'] for r in rows}))}) | "
                     f"{gap[0]:+.4f} ± {gap[1]:.4f} | {statistics.fmean(r['ep_share'] for r in rows):.1%} | "
                     f"{units_text} |")
    return lines


if __name__ == "__main__":
    main()
