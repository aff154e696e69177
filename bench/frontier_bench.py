"""Memory frontier (issue 19, point 3): test AUC at EP budgets of the full-width DeepFM, searches against baselines.

For each budget (a fraction of the full-width DeepFM's embedding parameters, counted the way `recnas auto` counts
them: the parts no search shrinks stay in the budget) every registered embedding-size search runs as `recnas auto`
plans it (`recnas.experiment.budget.search_plans`): with the settings its `auto_settings` gives for that budget, on
every id's row where its smallest model fits, else on the data whose rare ids share one row (the smallest of the
shared tail's floors where it fits); its retrain is scored. Beside them, the simple baselines a user would try first:
- `uniform`: one smaller width for every field (the largest that fits; none below width 1);
- `tiered`: frequency tiers by hand, the most frequent share of each field's ids at the full width and the rest at
  width 1 (at width 0 when width 1 alone is over the budget), the share chosen to fill the budget;
- `hashed`: every id field with more ids than B hashed into B buckets (`data.hash_buckets`), at the full width, B
  the largest that fits; the first-order weights shrink with it, so it can meet budgets the others cannot;
- `floored_uniform`: the control of the searches below one float per id: their data (the floor the budget asks
  for, `recnas.experiment.budget.data_floor`) with one width for every field, the widest that fits;
- `lifted_uniform`: the searches' data (the floor they run from) at one width for every field, the widest that
  fits, trained through AutoDim's retrain module (`ProjectedEmbedding`: a per-field linear lift to the full width
  and a batch norm): what the allocation adds over the module that carries it;
- `shared_tail`: `recnas auto`'s shared-tail candidate (`recnas.experiment.compact`): the ids seen fewer than m
  times in train share the OOV row (`data.min_count`), m the smallest of 2, 3, 5, 10 at which the full width fits
  (narrowed at m = 10 where none does); it shrinks the first-order weights too.
Every run takes the library's defaults (DeepFM, width 10), nothing chosen per dataset. Test AUC is reported. A
budget below what the first-order weights alone store (one float per id: 1/11 of DeepFM's EP at width 10) cannot
be met by any variant and is recorded as such.

    .venv/bin/python bench/frontier_bench.py --dataset bookcrossing --fractions 0.05,0.1,0.3,1 \
        --variants uniform,tiered,hashed,autodim,nis,esapn,joint --seeds 2026,2027,2028 --threads 1 \
        --out bench/results/frontier_bookcrossing.json
    .venv/bin/python bench/frontier_bench.py --out bench/results/frontier_bookcrossing.json --table

Finished runs are kept as records under --work; a killed run resumes, and two invocations side by side (each
--threads 1) share the queue through claim files. `--data DIR` runs on any prepared folder (a smoke run on
`recnas synth` data, say).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_bench import library_config, mean_sd, run_queue, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "derived"
BASELINES = ("uniform", "tiered", "hashed", "shared_tail", "floored_uniform", "lifted_uniform")


def hash_plan(schema: Any, buckets: int) -> dict[str, int]:
    """{field: buckets} for every categorical field of the fitted `schema` with more ids than `buckets`."""
    from recnas.data.vocab import N_RESERVED

    return {f.name: buckets for f in schema.categorical if f.cardinality - N_RESERVED > buckets}


def hashed_buckets(cfg: Any, schema: Any, budget_ep: int) -> dict[str, int] | None:
    """`hash_plan` at B, the largest bucket count whose model fits `budget_ep`."""
    import dataclasses

    from recnas.data.hashing import HashedVocabulary
    from recnas.data.vocab import N_RESERVED
    from recnas.methods.base import model_kwargs
    from recnas.nn.models import build_model

    def ep(b: int) -> int:
        hashed = hash_plan(schema, b)
        fields = [dataclasses.replace(f, hash_buckets=b, vocab=HashedVocabulary.from_bucket_counts(np.zeros(b)))
                  if f.name in hashed else f for f in schema.fields]
        return build_model(cfg.model.name, schema.replace_fields(fields), **model_kwargs(cfg)).embedding_params()

    lo, hi = 2, max(f.cardinality - N_RESERVED for f in schema.categorical)
    if ep(lo) > budget_ep:
        return None
    while lo < hi:  # the largest b with ep(b) <= budget (ep grows with b)
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ep(mid) <= budget_ep else (lo, mid - 1)
    return hash_plan(schema, lo)


def tiered_widths(schema: Any, dim: int, table_floats: int) -> tuple[dict[str, np.ndarray], float, int]:
    """Per-id widths of every categorical field: the head share at `dim`, the rest at 1 (or 0), filling the tables.

    Ids come by descending train count after the reserved ones (padding, OOV), which take the tail width.
    Returns (widths, head share, tail width).
    """
    from recnas.data.vocab import N_RESERVED

    cards = {f.name: f.cardinality for f in schema.categorical}
    rows = sum(cards.values())
    tail = 1 if rows <= table_floats else 0
    head = float(np.clip((table_floats - tail * rows) / max(rows * (dim - tail), 1), 0.0, 1.0))
    widths = {}
    for name, n in cards.items():
        real = n - N_RESERVED
        w = np.full(n, tail, dtype=np.int64)
        w[N_RESERVED:N_RESERVED + int(head * real)] = dim
        widths[name] = w
    return widths, head, tail


def one_width_at(cfg: Any, schema: Any, max_total: int, floor: int) -> tuple[Any, int] | None:
    """(config, width): `cfg` on the data at `floor` with every field at the widest width that fits; None if none."""
    from recnas.experiment.compact import schema_at_floor, shared_tail_config, widest_within

    width = widest_within(cfg, schema_at_floor(schema, floor), max_total)
    return None if width is None else (shared_tail_config(cfg, schema, floor, width), width)


def run_baseline(variant: str, cfg: Any, splits: Any, fraction: float, folder: Path,
                 record_of: Callable[[str], dict[str, Any]]) -> dict[str, Any] | None:
    """Train a baseline (`BASELINES`) at the budget; None when the variant cannot meet it.

    `record_of(variant)` is another cell of the same budget and seed (`lifted_uniform` reads auto's compact ones).
    """
    from recnas.experiment.budget import searched_budget
    from recnas.experiment.compact import shared_tail, shared_tail_config, widest_within
    from recnas.experiment.run import fit_and_score, run_train
    from recnas.methods.base import model_kwargs
    from recnas.nn.mixed_width import MixedWidthEmbedding
    from recnas.nn.models import build_model
    from recnas.train.seed import set_seed

    schema = splits.ds.schema
    if variant == "hashed":  # checked first: the budget may be below what the unhashed first-order weights store
        plan = hashed_buckets(cfg, schema, int(fraction * searched_budget(cfg, schema, 1.0)[0]))
        if plan is None:
            return None
        c = cfg.model_copy(deep=True)
        c.data.hash_buckets = plan
        m = run_train(c, folder, log=lambda _m: None).metrics
        b = next(iter(plan.values()), None)
        return {**m, "setting": f"{', '.join(plan)} hashed into {b:,} buckets" if plan else "nothing hashed"}
    if variant == "floored_uniform":  # the searches' data (the floor the budget asks for), one width for all
        from recnas.experiment.budget import data_floor, full_ep

        max_total = int(fraction * full_ep(cfg, schema))
        floor = data_floor(cfg, schema, max_total)
        at = one_width_at(cfg, schema, max_total, floor)
        if at is None:
            return None
        c, width = at
        m = run_train(c, folder, log=lambda _m: None).metrics
        return {**m, "setting": f"ids seen < {floor} times shared, width {width}"}
    if variant == "lifted_uniform":  # the searches' data, one width, through AutoDim's retrain module
        from recnas.experiment.budget import data_floor, full_ep
        from recnas.experiment.run import load_splits
        from recnas.nn.embedding import embedded_field_names
        from recnas.nn.projected import ProjectedEmbedding

        max_total = int(fraction * full_ep(cfg, schema))
        floor = max(data_floor(cfg, schema, max_total), start_floor(cfg, schema, fraction, record_of))
        fitted = one_width_at(cfg, schema, max_total, floor)
        if fitted is None:
            return None
        c, width = fitted
        at = load_splits(c)
        set_seed(c.seed, c.threads)
        kw = model_kwargs(c)
        names = embedded_field_names(at.ds.schema, c.model.numerical_encoder)
        emb = ProjectedEmbedding(at.ds.schema, dict.fromkeys(names, width), cfg.model.embedding_dim,
                                 sparse=kw["sparse"], **c.model.encoding_kwargs())
        m = fit_and_score(c, build_model(c.model.name, at.ds.schema, embedding=emb, **kw), at, folder)
        shared = f"ids seen < {floor} times shared, " if floor > 1 else ""
        return {**m, "setting": f"{shared}width {width} lifted to {cfg.model.embedding_dim} (AutoDim's retrain "
                                "module)"}
    if variant == "shared_tail":
        tail = shared_tail(cfg, schema, int(fraction * searched_budget(cfg, schema, 1.0)[0]))
        if tail is None:
            return None
        m = run_train(shared_tail_config(cfg, schema, *tail), folder, log=lambda _m: None).metrics
        return {**m, "setting": f"ids seen < {tail[0]} times shared, width {tail[1]}"}
    full_ep, table_floats = searched_budget(cfg, schema, fraction)
    if table_floats < len(schema.categorical):  # the first-order weights of every id alone are over the budget
        return None
    if variant == "uniform":
        d = widest_within(cfg, schema, int(fraction * full_ep))
        if d is None:
            return None
        c = cfg.model_copy(deep=True)
        c.model.embedding_dim = d
        m = run_train(c, folder, log=lambda _m: None).metrics
        return {**m, "setting": f"width {d}"}
    widths, head, tail = tiered_widths(schema, cfg.model.embedding_dim, table_floats)
    set_seed(cfg.seed, cfg.threads)
    kw = model_kwargs(cfg)
    emb = MixedWidthEmbedding(schema, widths, cfg.model.embedding_dim, sparse=kw["sparse"],
                              **cfg.model.encoding_kwargs())
    model = build_model(cfg.model.name, schema, embedding=emb, **kw)
    m = fit_and_score(cfg, model, splits, folder)
    return {**m, "setting": f"head {head:.1%} of each field's ids at width {cfg.model.embedding_dim}, rest at {tail}"}


# `recnas auto`'s compact candidates (recnas.experiment.compact) of the default DeepFM, as this bench's variants
COMPACT_VARIANTS = {"narrowed": "uniform", "shared_tail": "shared_tail", "floored": "floored_uniform"}


def start_floor(cfg: Any, schema: Any, fraction: float, record_of: Callable[[str], dict[str, Any]]) -> int:
    """The floor `recnas auto` would run the searches from: that of its best compact candidate on validation.

    The candidates are this bench's baseline variants (`COMPACT_VARIANTS`); their records of the same budget and
    seed are read (waited for while another invocation trains them).
    """
    from recnas.experiment.auto import search_floor
    from recnas.experiment.budget import full_ep
    from recnas.experiment.compact import compact_candidates

    rows = []
    for cand in compact_candidates(cfg, schema, int(fraction * full_ep(cfg, schema))):
        rec = record_of(COMPACT_VARIANTS[cand.folder])
        if not rec["fits"] or f", {rec['setting']})" not in cand.name:  # the same model as auto's candidate
            raise SystemExit(f"the {COMPACT_VARIANTS[cand.folder]} record ({rec.get('setting')}) is not auto's "
                             f"candidate {cand.name}")
        rows.append({"valid_auc": rec["valid_auc"], "floor": cand.floor})
    return search_floor(rows)


def run_method(method: str, cfg: Any, schema: Any, fraction: float, folder: Path,
               record_of: Callable[[str], dict[str, Any]]) -> dict[str, Any] | None:
    """The search `method` as `recnas auto` plans it at the budget, and its retrain; None when auto leaves it out.

    The plan (`recnas.experiment.budget.search_plans`) is the method's auto settings at the smallest floor where
    its smallest model fits: every id its row where it can, else the rare ids sharing one; never below the floor
    of auto's best compact candidate on validation (`start_floor`). A budget below the method's smallest model is
    its ConfigError (as `recnas auto` leaves it out).
    """
    from recnas.experiment.budget import full_ep, search_plans
    from recnas.experiment.config import ExperimentConfig, apply_overrides
    from recnas.experiment.search import run_search

    floor = start_floor(cfg, schema, fraction, record_of)
    plan = search_plans(cfg, schema, int(fraction * full_ep(cfg, schema)), start_floor=floor).get(method)
    if plan is None:
        return None
    raw = apply_overrides({**plan.config.model_dump(mode="json"), "search": {}},
                          [f"search.method={method}", *plan.settings, "search.baseline=false"])
    res = run_search(ExperimentConfig.model_validate(raw), folder, log=lambda _m: None)
    return {**res.retrain, "setting": " ".join(([f"data.min_count={plan.floor}"] if plan.floor > 1 else [])
                                               + plan.settings)}


def run_one(data: Path, variant: str, fraction: float, seed: int, threads: int, work: Path) -> dict[str, Any]:
    """One cell: the variant at the budget on one seed (a record saying so when it cannot meet the budget)."""
    from recnas.errors import ConfigError
    from recnas.experiment.budget import searched_budget
    from recnas.experiment.run import load_splits

    cfg = library_config(data, seed, threads, work)
    splits = load_splits(cfg)
    full_ep, _ = searched_budget(cfg, splits.ds.schema, 1.0)
    rec = {"dataset": data.name, "variant": variant, "fraction": fraction, "seed": seed, "full_ep": full_ep}
    folder = work / "runs" / f"{data.name}-{variant}-{fraction:g}-{seed}"
    t = time.perf_counter()
    try:
        record_of = lambda other: wait_for_record(work, data, other, fraction, seed)  # noqa: E731
        if variant in BASELINES:
            m = run_baseline(variant, cfg, splits, fraction, folder, record_of)
        else:
            m = run_method(variant, cfg, splits.ds.schema, fraction, folder, record_of)
    except ConfigError as e:  # below the smallest model (of every variant, or of the method)
        return {**rec, "fits": False, "why": str(e), "wall_seconds": time.perf_counter() - t}
    rec["wall_seconds"] = time.perf_counter() - t
    if m is None:
        return {**rec, "fits": False, "why": f"{variant} cannot meet {fraction:.0%} of {full_ep:,}"}
    return {**rec, "fits": True, "setting": m["setting"], "valid_auc": m["valid_auc"], "test_auc": m["test_auc"],
            "test_logloss": m["test_logloss"], "embedding_params": m["embedding_params"],
            "ep_share": m["embedding_params"] / full_ep}


def record_path(work: Path, data: Path, variant: str, fraction: float, seed: int) -> Path:
    return work / "records" / f"{data.name}-{variant}-{fraction:g}-{seed}.json"


def wait_for_record(work: Path, data: Path, variant: str, fraction: float, seed: int) -> dict[str, Any]:
    """The record of another cell, waited for while it is claimed (being trained by another invocation)."""
    path = record_path(work, data, variant, fraction, seed)
    while not path.exists():
        if not path.with_suffix(".claim").exists():
            raise SystemExit(f"a search at {fraction:g} needs the {variant} cell of seed {seed} first (auto chooses "
                             f"the searches' floor on it): list {variant} before the searches in --variants")
        time.sleep(15)
    return json.loads(path.read_text())


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every missing cell, shared with other invocations through claim files; then every record."""

    def say(job: tuple, r: dict) -> str:
        what = f"test {r['test_auc']:.4f} at {r['ep_share']:.1%}" if r["fits"] else "does not fit"
        what += "" if not r["fits"] or within_budget(r) else " (over the budget)"
        return f"{args.data.name} {job[0]} {job[1]:g} {job[2]}: {what} ({r['wall_seconds']:.0f} s)"

    jobs = [(v, f, s) for s in args.seeds for f in args.fractions for v in args.variants]
    return run_queue(jobs, lambda job: record_path(args.work, args.data, *job),
                     lambda job: run_one(args.data, *job, args.threads, args.work), say)


def within_budget(record: dict[str, Any]) -> bool:
    """Whether a run met its budget: it fitted, and its model stores no more than the budget (0.5% slack)."""
    return bool(record["fits"]) and record["ep_share"] <= record["fraction"] * 1.005


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant and budget: test AUC mean ± sd and the EP share, over the seeds that met the budget.

    A search whose retrained model stores more than the budget did not meet it (`over`: its EP shares).
    """
    out = []
    for key in dict.fromkeys((r["variant"], r["fraction"]) for r in records):
        rs = [r for r in records if (r["variant"], r["fraction"]) == key and within_budget(r)]
        over = [r["ep_share"] for r in records if (r["variant"], r["fraction"]) == key and r["fits"]
                and not within_budget(r)]
        row: dict[str, Any] = {"variant": key[0], "fraction": key[1], "seeds": len(rs), "over": over}
        if rs:
            row.update({"test_auc": list(mean_sd(rs, "test_auc")), "valid_auc": list(mean_sd(rs, "valid_auc")),
                        "ep_share": mean_sd(rs, "ep_share")[0], "setting": rs[0]["setting"]})
        out.append(row)
    return out


def table(summary: list[dict[str, Any]]) -> str:
    fractions = sorted({s["fraction"] for s in summary})
    variants = list(dict.fromkeys(s["variant"] for s in summary))
    cell = {(s["variant"], s["fraction"]): s for s in summary}
    lines = ["| variant | " + " | ".join(f"budget {f:.0%}" for f in fractions) + " |",
             "|---|" + "---|" * len(fractions)]
    for v in variants:
        cols = []
        for f in fractions:
            s = cell.get((v, f))
            if s is None or not s["seeds"]:
                over = s.get("over") if s else None
                cols.append("not run" if s is None else
                            f"over it ({', '.join(f'{e:.1%}' for e in over)})" if over else "cannot meet it")
            else:
                cols.append(f"{s['test_auc'][0]:.4f} ± {s['test_auc'][1]:.4f} ({s['ep_share']:.1%})")
        lines.append(f"| {v} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="bookcrossing", help="a folder of ../shared/data/derived")
    p.add_argument("--data", type=Path, default=None, help="any prepared data folder instead of --dataset")
    p.add_argument("--fractions", default="0.05,0.1,0.3,1")
    p.add_argument("--variants", default="uniform,tiered,hashed,autodim,nis,esapn,joint")
    p.add_argument("--seeds", default="2026,2027,2028")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "frontier")
    p.add_argument("--out", type=Path, default=None, help="default bench/results/frontier_<dataset>.json")
    p.add_argument("--table", action="store_true", help="print the table of --out and stop")
    args = p.parse_args()
    args.data = args.data or DATA / args.dataset
    args.out = args.out or ROOT / "bench" / "results" / f"frontier_{args.data.name}.json"
    if args.table:
        print(table(json.loads(args.out.read_text())["summary"]))
        return
    args.fractions = [float(f) for f in args.fractions.split(",")]
    args.variants = args.variants.split(",")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(args.threads)
    records = run_all(args)
    summary = summarize(records)
    write_results(args.out, args.threads, records, summary)
    print(table(summary))


if __name__ == "__main__":
    main()
