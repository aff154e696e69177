"""`recnas auto`: from a dataset to the best model under a memory budget, within a time budget.

    <out>/tune/<model>/         `recnas tune` of each zoo candidate (trial 0: the zoo default)
    <out>/narrowed/             the best tuned zoo model at the widest embedding within the memory budget
    <out>/shared_tail/          ... with the ids seen fewer than m times in train sharing one row (long-tailed data)
    <out>/floored/              ... at the smallest such m where not even width 1 fits otherwise, the widest width there
    <out>/search/<method>/      each registered search that fits the data, a `recnas search` folder whose model and
                                trainer settings are the tuned DeepFM's (baseline and searched model: one tuning)
    <out>/leaderboard.csv/.json every candidate: valid and test AUC and logloss, EP, FLOPs per row, seconds
    <out>/pareto.png            valid AUC against EP, the non-dominated candidates joined, the chosen one marked
    <out>/model/                the chosen candidate's run folder (`recnas predict` and `recnas export` take it)
    <out>/auto.json             the plan, the budget spent and the choice

The time budget is spent by stages (tuning, then searches); every fit of a stage stops when the stage's share is
spent, and the seconds spent are saved as they pass, so a killed run resumes with the budget that was left. The
choice is the best valid AUC among candidates whose EP is at most `max_ep_fraction` of the tuned full-width
DeepFM's. The runner knows no method by name: each method says if and how it runs (`SearchMethod.auto_settings`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recnas.errors import ConfigError, DataError, RecnasError
from recnas.experiment.budget import SearchPlan, search_plans, searched_budget
from recnas.experiment.compact import compact_candidates
from recnas.experiment.config import ExperimentConfig, apply_overrides, load_config
from recnas.experiment.folder import run_folder_lock
from recnas.experiment.run import load_run, load_splits, run_train
from recnas.experiment.tune import ParamSpec, load_space, run_tune, study_url, trial_config
from recnas.fileio import write_text_atomic
from recnas.train.hooks import Hook

Log = Callable[[str], None]
ZOO_CANDIDATES = ("deepfm", "dcnv2")  # the strongest zoo models on frappe_full and ml100k (bench/README.md)
SEARCH_MODEL = "deepfm"  # the searches' model: it has a pairwise slot and takes any embedding
TUNE_SHARE = 0.45  # of the time budget: tuning the zoo candidates; the searches get as much; the rest is slack
SEARCH_SHARE = 0.45
SEARCH_PART = 0.6  # of a search's share: the search itself; its retrain gets the rest
ANNEAL_EPOCHS = 2.0  # a deadline-bound fit runs its last this many epochs at the reduced lr (budgeted training)
MIN_EPOCHS_PER_FIT = 3  # a stage share below this many epochs of the default model is too short to train
MIN_FITS_PER_SEARCH = 2.0  # a search and its retrain each need about one default training: fund fewer, not less
PROBE_STEPS = 8
PER_EPOCH = ("epoch=", "step=")  # a search's per-epoch lines: in its run folder (train_log.jsonl), not auto's log


def parse_duration(text: str) -> float:
    """Seconds of a duration such as 90s, 30m, 2h or 1h30m (a bare number is minutes)."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text) * 60
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", text)
    if not parts or re.sub(r"\s", "", text) != "".join(f"{n}{u}" for n, u in parts):
        raise ConfigError(f"--time-budget {text!r}: write a duration such as 30m, 2h, 1h30m or 90s")
    seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"--time-budget {text!r}: the budget must be more than zero")
    return seconds


class Clock:
    """Seconds spent by this auto run, across kills: what earlier sessions spent (saved) plus this session's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.before = float(json.loads(path.read_text())["spent_seconds"]) if path.is_file() else 0.0
        self.start = time.monotonic()

    def spent(self) -> float:
        """Seconds spent so far."""
        return self.before + time.monotonic() - self.start

    def save(self) -> None:
        """Persist the seconds spent (a resumed run starts from them)."""
        write_text_atomic(self.path, json.dumps({"spent_seconds": round(self.spent(), 3)}))


class Deadline(Hook):
    """Ends a fit when the clock passes `until` (seconds spent); saves the clock after every epoch.

    A fit the deadline will cut before its lr was ever reduced would end at the full lr, short of what the lower lr
    gives in one or two epochs (+0.01-0.02 valid AUC on bookcrossing). So when fewer than `anneal_epochs` epochs of
    this fit are left and no lr cut has happened, the lr is cut once, as a bad epoch would (0 turns it off).
    """

    def __init__(self, clock: Clock, until: float, anneal_epochs: float = ANNEAL_EPOCHS) -> None:
        self.clock = clock
        self.until = until
        self.anneal_epochs = anneal_epochs
        self._epoch_started: float | None = None  # clock time the current epoch of this fit began

    @property
    def expired(self) -> bool:
        """Whether the stage's share of the budget is spent."""
        return self.clock.spent() >= self.until

    def on_fit_start(self, trainer: Any, model: Any) -> None:
        """Start timing this fit's epochs (a stage's deadline joins several fits in turn)."""
        self._epoch_started = self.clock.spent()

    def after_step(self, trainer: Any, batch: Any, step: int) -> None:
        """Stop the fit once the share is spent (the epoch ends with its validation, as any stopped fit)."""
        if self.expired:
            trainer.stop = True

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        """Save the seconds spent (a kill loses at most one epoch of accounting); cut the lr before the end."""
        self.clock.save()
        now = self.clock.spent()
        if self._epoch_started is not None and self.anneal_epochs > 0 and not trainer.stop \
                and not trainer.lr_reduced and self.until - now < self.anneal_epochs * (now - self._epoch_started):
            trainer.reduce_lr()
            trainer.log(f"lr cut to {trainer.optimizers[0].param_groups[0]['lr']:.3g}: fewer than "
                        f"{self.anneal_epochs:g} epochs are left before the time budget ends this fit")
        self._epoch_started = now


@dataclass
class AutoResult:
    """A finished `recnas auto`: the chosen candidate's row, every row, and the folders."""

    path: Path
    chosen: dict[str, Any]
    leaderboard: list[dict[str, Any]]


def base_config(data: str | Path, seed: int, threads: int, cache_dir: str | Path | None,
                overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The zoo defaults on `data` (plus `overrides`): what every candidate starts from."""
    extra = [f"data.cache_dir={cache_dir}"] if cache_dir is not None else []
    return load_config(None, [f"data.path={data}", f"seed={seed}", f"threads={threads}", "trainer.progress=false",
                              *extra, *overrides])


def auto_space(has_numerical: bool) -> dict[str, ParamSpec]:
    """The shipped tune space, plus the numerical encoder (auto or AutoDis) where the data has numerical fields."""
    space = load_space()
    if has_numerical:
        space["model.numerical_encoder"] = ParamSpec(type="categorical", choices=["auto", "autodis"])
    return space


def check_data(cfg: ExperimentConfig, log: Log) -> Any:
    """The prepared splits, refused with a clear error when there is no categorical field to build tables for."""
    splits = load_splits(cfg, log)
    schema = splits.ds.schema
    if not schema.categorical and not schema.multi_categorical:
        fields = ", ".join(f"{f.name} ({f.type.value})" for f in schema.fields) or "none"
        raise DataError(f"{cfg.data.path}: recnas auto searches embedding tables, and this data has no categorical "
                        f"field (its fields: {fields}); declare id columns as categorical in schema.yaml, or tune a "
                        "model on numerical fields alone with `recnas tune --model deepfm`")
    return splits


def probe_seconds_per_epoch(cfg: ExperimentConfig, splits: Any) -> float:
    """Seconds one training epoch of the default model takes here, timed on a few batches."""
    import torch

    from recnas.methods.base import model_kwargs
    from recnas.nn.models import build_model

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model.name, splits.ds.schema, **model_kwargs(cfg))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.trainer.lr)
    batches = iter(splits.train.iter_epoch(0))
    n = min(PROBE_STEPS, len(splits.train))
    t0 = time.perf_counter()
    for _ in range(n):
        batch = next(batches)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), batch.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    per_batch = (time.perf_counter() - t0) / max(n, 1)
    return per_batch * len(splits.train) * 1.15  # plus validation


def run_auto(data: str | Path, out: str | Path, max_ep_fraction: float = 0.3, time_budget_s: float = 3600.0,
             seed: int = 2026, threads: int = 2, cache_dir: str | Path | None = None,
             overrides: Sequence[str] = (), log: Log | None = None) -> AutoResult:
    """Tune the zoo candidates, run the searches that fit, retrain them with the tuned settings, choose, report.

    A killed run started again with the same arguments resumes: finished tunes and searches are kept, and the
    budget left is what the earlier sessions did not spend.
    """
    log = log or (lambda _m: None)
    if not 0 < max_ep_fraction <= 1:
        raise ConfigError(f"--max-ep-fraction must be in (0, 1], got {max_ep_fraction}")
    if time_budget_s <= 0:
        raise ConfigError("--time-budget must be more than zero")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with run_folder_lock(out, log):
        return _run_auto(Path(data), out, max_ep_fraction, time_budget_s, seed, threads, cache_dir, overrides, log)


def _run_auto(data: Path, out: Path, max_ep_fraction: float, budget: float, seed: int, threads: int,
              cache_dir: str | Path | None, overrides: Sequence[str], log: Log) -> AutoResult:
    cfg = base_config(data, seed, threads, cache_dir, overrides)
    plan_path = out / "auto.json"
    args = {"data": str(data), "max_ep_fraction": max_ep_fraction, "seed": seed, "threads": threads,
            "overrides": list(overrides)}  # what a resume must keep; the time budget may grow or shrink
    plan = json.loads(plan_path.read_text()) if plan_path.is_file() else {}
    if plan and plan.get("args") != args:
        raise ConfigError(f"{out} holds a recnas auto run with other arguments ({plan.get('args')}); pass a new --out "
                          "(or the same arguments to resume it)")
    clock = Clock(out / "clock.json")
    splits = check_data(cfg, log)
    schema = splits.ds.schema
    if "epoch_seconds" not in plan:
        plan = {"args": args, "epoch_seconds": probe_seconds_per_epoch(cfg, splits)}
        write_text_atomic(plan_path, json.dumps(plan, indent=2))
    need = MIN_EPOCHS_PER_FIT * plan["epoch_seconds"] * len(ZOO_CANDIDATES) / TUNE_SHARE
    if budget < need:
        raise ConfigError(f"--time-budget {budget:.0f}s is shorter than one trial: one epoch of {cfg.model.name} on "
                          f"{splits.train.n:,} rows takes about {plan['epoch_seconds']:.0f}s here, and auto needs "
                          f"{MIN_EPOCHS_PER_FIT} epochs per zoo candidate in its tuning share; pass --time-budget "
                          f"{max(1, int(need * 1.5 / 60) + 1)}m or more")
    searched_budget(cfg, schema, max_ep_fraction)  # a memory budget no search can meet fails before any tuning
    log(f"time budget {budget / 60:.1f} min ({clock.spent() / 60:.1f} spent before); memory budget "
        f"{max_ep_fraction:.0%} of the tuned DeepFM's embedding parameters")
    space = auto_space(bool(schema.numerical))
    rows: list[dict[str, Any]] = []
    # 1. tune the zoo candidates, each in an equal share of the tuning budget
    tune_end = TUNE_SHARE * budget
    for i, name in enumerate(ZOO_CANDIDATES):
        share = (tune_end - clock.spent()) / (len(ZOO_CANDIDATES) - i)
        deadline = Deadline(clock, clock.spent() + max(share, 0.0))
        tcfg = cfg.model_copy(deep=True)
        tcfg.model.name = name
        log(f"tuning {name} ({max(share, 0) / 60:.1f} min)")
        res = run_tune(tcfg, out / "tune" / name, 10_000, space, log=lambda m, n=name: log(f"  [{n}] {m}"),
                       hooks=[deadline])
        clock.save()
        rows.extend(tune_rows(name, out / "tune" / name))
        ran = sum(t["state"] in ("COMPLETE", "PRUNED") for t in res.trials)  # not the enqueued ones left waiting
        log(f"  {name}: best valid AUC {res.best_metrics['valid_auc']:.4f} in {ran} trials")
    # 2. the searches that fit, with the tuned DeepFM's settings, each in an equal share of what is left
    search_cfg = cfg.model_copy(deep=True)
    search_cfg.model.name = SEARCH_MODEL
    tuned_cfg = trial_config(search_cfg, json.loads((out / "tune" / SEARCH_MODEL / "best.json").read_text())["params"])
    full_ep, _ = searched_budget(tuned_cfg, schema, max_ep_fraction)
    plans = search_plans(tuned_cfg, schema, int(max_ep_fraction * full_ep))
    log(f"searches that fit this data: {plan_names(plans)}")
    search_end = (TUNE_SHARE + SEARCH_SHARE) * budget
    fit_s = next((r["train_seconds"] for r in rows if r["candidate"] == f"{SEARCH_MODEL} (default)"),
                 10 * plan["epoch_seconds"])
    names = list(plans)
    # the best tuned zoo model made to fit without a search (the user's first tries under a memory budget): one
    # training each, before the searches, each in the share one more search would get
    compact = train_compact(cfg, out, schema, int(max_ep_fraction * full_ep),
                            lambda left: clock.spent() + (search_end - clock.spent()) / (len(names) + left), clock, log)
    rows += compact
    floor = search_floor(compact)
    if floor > 1:  # the searches run on the data of the best compact candidate, whose rare ids share one row
        plans = search_plans(tuned_cfg, schema, int(max_ep_fraction * full_ep), start_floor=floor)
        log(f"the best compact candidate shares the ids seen fewer than {floor} times; the searches run on that "
            f"data: {plan_names(plans)}")
        for name in names:
            if name not in plans:
                log(f"  {name}: skipped, it does not fit the data at that floor")
        names = list(plans)
    for i, name in enumerate(names):
        folder = out / "search" / name
        finished = (folder / "retrain" / "metrics.json").is_file()
        # fund as many of the rest as get MIN_FITS_PER_SEARCH default trainings each (time a finished search left
        # unspent goes to the next); the first search always runs
        funded = funded_searches(names[i:], search_end - clock.spent(), fit_s)
        if not finished and i > 0 and search_end - clock.spent() < MIN_FITS_PER_SEARCH * fit_s:
            log(f"  {name}: skipped, the time left is under {MIN_FITS_PER_SEARCH:g} trainings of {fit_s:.0f}s")
            continue
        share = (search_end - clock.spent()) / len(funded)
        now = clock.spent()  # the search gets 60% of its share, its retrain the rest
        row = run_one_search(plans[name], name, folder, Deadline(clock, now + SEARCH_PART * share),
                             Deadline(clock, now + share), log)
        clock.save()
        if row is not None:
            rows.append(row)
    # 3. leaderboard, Pareto front, choice
    for row in rows:
        row["ep_fraction"] = row["embedding_params"] / full_ep if row.get("embedding_params") else None
    add_flops(rows, cfg, splits)
    chosen = choose(rows, max_ep_fraction)
    mark_pareto(rows)
    write_leaderboard(out, rows, chosen)
    clock.save()
    if chosen is None:
        small = min((r for r in rows if r.get("ep_fraction") is not None), key=lambda r: r["ep_fraction"])
        raise ConfigError(f"no candidate fits the memory budget ({max_ep_fraction:.0%} of {full_ep:,} embedding "
                          f"parameters): the smallest, {small['candidate']}, stores {small['ep_fraction']:.1%}; pass "
                          f"--max-ep-fraction {small['ep_fraction'] + 0.005:.2f} or more (the leaderboard is in "
                          f"{out / 'leaderboard.csv'})")
    model_dir = out / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.copytree(chosen["folder"], model_dir, ignore=shutil.ignore_patterns("*.lock", "checkpoint.pt"))
    plan.update({"time_budget_seconds": budget, "spent_seconds": clock.spent(), "chosen": chosen["candidate"],
                 "model": str(model_dir),
                 "full_width_ep": full_ep, "methods": list(plans)})
    write_text_atomic(plan_path, json.dumps(plan, indent=2))
    log(f"chosen: {chosen['candidate']}: valid AUC {chosen['valid_auc']:.4f}, test AUC {chosen['test_auc']:.4f}, "
        f"EP {chosen['ep_fraction']:.1%} of the tuned DeepFM; {clock.spent() / 60:.1f} of {budget / 60:.1f} min")
    return AutoResult(out, chosen, rows)


def train_compact(cfg: ExperimentConfig, out: Path, schema: Any, max_total_ep: int,
                  share_end: Callable[[int], float | None], clock: Clock, log: Log) -> list[dict[str, Any]]:
    """Train the compact candidates (`recnas.experiment.compact`) of the best tuned zoo model; their leaderboard rows.

    Each trains in `out/<its folder>` until `share_end(k)`, the clock time by which it should stop when k of them
    (it included) are left (None: no deadline, for a bench adding them to a finished run). A training that fails is
    logged and left out, as a failed search is.
    """
    tuned = {name: json.loads((out / "tune" / name / "best.json").read_text()) for name in ZOO_CANDIDATES}
    name = max(tuned, key=lambda n: tuned[n]["valid_auc"])
    best = trial_config(cfg, {"model.name": name, **tuned[name]["params"]})
    candidates = compact_candidates(best, schema, max_total_ep)
    rows = []
    for i, cand in enumerate(candidates):
        end = share_end(len(candidates) - i)
        log(f"training {cand.name}")
        try:
            res = run_train(cand.config, out / cand.folder, log=lambda _m: None,
                            hooks=[Deadline(clock, end)] if end is not None else [])
        except RecnasError as e:
            log(f"  {cand.name}: failed ({e}); left out")
            continue
        finally:
            clock.save()
        log(f"  {cand.name}: valid AUC {res.metrics['valid_auc']:.4f}")
        rows.append({**candidate_row(cand.name, "zoo", out / cand.folder, res.metrics,
                                     float(res.metrics["train_seconds"])), "floor": cand.floor})
    return rows


def plan_names(plans: dict[str, SearchPlan]) -> str:
    """The planned searches for the log, each with the data it runs on where that is not every id's row."""
    return ", ".join(f"{n} ({p.label})" if p.label else n for n, p in plans.items()) or "none"


def search_floor(compact: list[dict[str, Any]]) -> int:
    """The floor the searches run from: that of the compact candidate with the best valid AUC (1 where none ran).

    Where sharing the rare ids beats every other way to fit on validation, the searches allocate on that data too,
    instead of spending the budget on rows the best candidate showed to be worth less than the floats they take.
    """
    return int(max(compact, key=lambda r: r["valid_auc"])["floor"]) if compact else 1


def funded_searches(methods: list[str], seconds: float, fit_seconds: float) -> list[str]:
    """The first methods (in rank order) that `seconds` can give `MIN_FITS_PER_SEARCH` trainings each; at least one."""
    return methods[: max(1, int(max(seconds, 0.0) // (MIN_FITS_PER_SEARCH * max(fit_seconds, 1e-9))))]


def run_one_search(plan: SearchPlan, method: str, folder: Path, search_deadline: Deadline,
                   retrain_deadline: Deadline, log: Log) -> dict[str, Any] | None:
    """One search and its retrain, each under its deadline; a search that fails is logged and left out."""
    from recnas.experiment.search import run_search

    raw = plan.config.model_dump(mode="json")
    raw["search"] = {}
    raw = apply_overrides(raw, [f"search.method={method}", *plan.settings, "search.baseline=false"])
    try:
        scfg = ExperimentConfig.model_validate(raw)
        log(f"searching with {method}")
        res = run_search(scfg, folder, log=lambda m: None if m.startswith(PER_EPOCH) else log(f"  [{method}] {m}"),
                         fit_hooks=[search_deadline],
                         retrain_hooks=[retrain_deadline])
    except RecnasError as e:
        log(f"  {method}: failed ({e}); left out")
        return None
    except ValueError as e:  # pydantic's validation error of a method's auto settings
        log(f"  {method}: its auto settings do not validate ({str(e).splitlines()[0]}); left out")
        return None
    m = res.retrain
    search_s = float(res.arch.get("search_seconds", 0.0) or 0.0)
    name = f"{method} (searched, {plan.label})" if plan.label else f"{method} (searched)"
    return candidate_row(name, "search", res.path / "retrain", m, seconds=search_s + float(m["train_seconds"]))


def candidate_row(name: str, kind: str, folder: Path, m: dict[str, Any], seconds: float) -> dict[str, Any]:
    """A leaderboard row from a run folder's metrics.json."""
    return {"candidate": name, "kind": kind, "valid_auc": m["valid_auc"], "valid_logloss": m["valid_logloss"],
            "test_auc": m["test_auc"], "test_logloss": m["test_logloss"], "embedding_params": m["embedding_params"],
            "params": m["params"], "train_seconds": round(seconds, 2), "folder": str(folder)}


def tune_rows(model: str, tune_dir: Path) -> list[dict[str, Any]]:
    """The zoo default (trial 0) and the tuned best of one tune folder, as leaderboard rows."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name="tune", storage=study_url(tune_dir))
    done = [t for t in study.trials if t.state == TrialState.COMPLETE and "folder" in t.user_attrs]
    seconds = sum(_metrics(Path(t.user_attrs["folder"])).get("train_seconds", 0.0) for t in done)
    best = json.loads((tune_dir / "best.json").read_text())
    rows = []
    first = min(done, key=lambda t: t.number, default=None)  # trial 0, or its re-run after a kill
    if first is not None:
        m = _metrics(Path(first.user_attrs["folder"]))
        rows.append(candidate_row(f"{model} (default)", "zoo", Path(first.user_attrs["folder"]), m,
                                  float(m["train_seconds"])))
    m = _metrics(Path(best["folder"]))
    rows.append(candidate_row(f"{model} (tuned)", "zoo", Path(best["folder"]), m, seconds))
    return rows


def _metrics(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "metrics.json").read_text())


def add_flops(rows: list[dict[str, Any]], cfg: ExperimentConfig, splits: Any) -> None:
    """FLOPs per scored row of every candidate, on a test batch encoded as that candidate reads the data.

    A candidate may read the data otherwise than auto does (the shared tail's `data.min_count` gives smaller tables),
    so each gets the test batch of its own data config (auto's `splits` where it is auto's).
    """
    from recnas.train.cost import flops_per_sample

    def encoding(c: ExperimentConfig) -> str:
        return json.dumps(c.data.model_dump(mode="json"), sort_keys=True)

    batches = {encoding(cfg): next(iter(splits.test))}
    for row in rows:
        try:
            run_cfg, _, model = load_run(row["folder"])
            key = encoding(run_cfg)
            if key not in batches:
                batches[key] = next(iter(load_splits(run_cfg).test))
            row["flops_per_row"] = flops_per_sample(model, batches[key])
        except RecnasError as e:
            row["flops_per_row"] = None
            row["error"] = str(e)


def choose(rows: list[dict[str, Any]], max_ep_fraction: float) -> dict[str, Any] | None:
    """The best valid AUC among rows within the memory budget (ties: the smaller EP), or None when none fits."""
    fit = [r for r in rows if r.get("ep_fraction") is not None and r["ep_fraction"] <= max_ep_fraction + 1e-9]
    return max(fit, key=lambda r: (r["valid_auc"], -r["embedding_params"])) if fit else None


def mark_pareto(rows: list[dict[str, Any]]) -> None:
    """`pareto`: True where no other row has at least the valid AUC at no more EP, and is better in one of them."""
    from recnas.train.metrics import non_dominated

    front = non_dominated([(r["embedding_params"], -r["valid_auc"]) for r in rows])
    for r, on_front in zip(rows, front, strict=True):
        r["pareto"] = on_front


LEADERBOARD_COLUMNS = ("candidate", "kind", "chosen", "pareto", "valid_auc", "valid_logloss", "test_auc",
                       "test_logloss", "embedding_params", "ep_fraction", "flops_per_row", "params", "train_seconds",
                       "folder")


def write_leaderboard(out: Path, rows: list[dict[str, Any]], chosen: dict[str, Any] | None) -> None:
    """leaderboard.csv and .json (best valid AUC first) and pareto.png."""
    for r in rows:
        r["chosen"] = r is chosen
    rows.sort(key=lambda r: -r["valid_auc"])
    text = io.StringIO()
    writer = csv.DictWriter(text, LEADERBOARD_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "leaderboard.csv", text.getvalue())
    write_text_atomic(out / "leaderboard.json", json.dumps(rows, indent=2))
    plot_pareto(out / "pareto.png", rows)


def plot_pareto(path: Path, rows: list[dict[str, Any]]) -> None:
    """Valid AUC against EP (log scale), the front joined, the chosen candidate ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(r["embedding_params"], r["valid_auc"], color="C1" if r["pareto"] else "C0", zorder=3)
        ax.annotate(r["candidate"], (r["embedding_params"], r["valid_auc"]), fontsize=7, xytext=(4, 2),
                    textcoords="offset points")
        if r.get("chosen"):
            ax.scatter(r["embedding_params"], r["valid_auc"], s=200, facecolors="none", edgecolors="C3", zorder=4)
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["embedding_params"])
    ax.plot([r["embedding_params"] for r in front], [r["valid_auc"] for r in front], color="C1", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("embedding parameters (EP)")
    ax.set_ylabel("valid AUC")
    ax.set_title("recnas auto: candidates (orange: Pareto front; ringed: chosen)")
    fig.tight_layout()
    from recnas.fileio import write_atomic

    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


__all__ = ["AutoResult", "Clock", "Deadline", "choose", "mark_pareto", "parse_duration", "run_auto"]
