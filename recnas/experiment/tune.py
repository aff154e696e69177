"""`recnas tune`: hyper-parameter search for any zoo model, on Optuna.

Why Optuna: its ask/tell interface runs each trial through our own trainer (checkpoints, resumption, the run
folder), its study lives in one SQLite file (a killed tune resumes from it), and its TPE sampler and median
pruner need no cluster. Each trial trains `cfg` with the drawn values in `<out>/trials/<params hash>/`; a trial
whose valid AUC after an epoch (from the third) is below the median of earlier trials at that epoch is pruned. A
killed trial is re-queued with the same values, so its folder's checkpoint resumes it. The best trial's config is
`best.yaml`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recnas.errors import ConfigError, RecnasError, describe_validation_error
from recnas.experiment.config import ExperimentConfig, apply_overrides
from recnas.experiment.folder import run_folder_lock
from recnas.experiment.run import run_train
from recnas.fileio import write_text_atomic
from recnas.train.hooks import Hook

DEFAULT_SPACE = Path(__file__).with_name("tune_space.yaml")
# Optuna's defaults (10 random trials, pruning from epoch 2) made an 8-trial tune of DeepFM on frappe_full a random
# search whose slow-starting low-lr trials were pruned after one or two epochs (5 of 8), so it ended at the default
# (bench/log/2026-12-06-issue19-auto.md): TPE models after 5 trials, and no trial is pruned before its 3rd epoch.
TPE_RANDOM_TRIALS = 5
PRUNE_AFTER_EPOCHS = 3  # Optuna prunes from the step equal to n_warmup_steps: epoch 3
Log = Callable[[str], None]


class ParamSpec(BaseModel):
    """How one config key is drawn: a float or int range (optionally log-scaled) or a list of choices."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical"] = Field(description="float / int range, or categorical choices")
    low: float | None = Field(None, description="lower end of a range")
    high: float | None = Field(None, description="upper end of a range")
    log: bool = Field(False, description="draw the range on a log scale")
    choices: list[Any] | None = Field(None, description="the values of a categorical parameter")
    start: list[Any] = Field(default_factory=list, description="values tried first: trial k (after trial 0, the "
                             "config's own values) takes this key's k-th start value; keys without one, or with "
                             "null there, keep trial 0's")

    @model_validator(mode="after")
    def _complete(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty choices list")
        elif self.low is None or self.high is None or not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"a {self.type} parameter needs low < high (and low > 0 with log)")
        outside = [v for v in self.start if v is not None and not self.draws(v)]
        if outside:
            raise ValueError(f"start value(s) {outside} are not values this parameter can draw")
        return self

    def draws(self, value: Any) -> bool:
        """Whether `value` is one this parameter can draw."""
        if self.type == "categorical":
            return value in (self.choices or [])
        return isinstance(value, int | float) and not isinstance(value, bool) and self.low <= value <= self.high

    def stored(self, value: Any) -> Any:
        """`value` as Optuna stores it for this parameter (categorical values as JSON text)."""
        if self.type == "categorical":
            return json.dumps(value)
        return int(value) if self.type == "int" else float(value)


def load_space(path: str | Path | None = None) -> dict[str, ParamSpec]:
    """The search space of a YAML file (default: the shipped `tune_space.yaml`), each key checked on a config."""
    path = Path(path) if path is not None else DEFAULT_SPACE
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not a readable YAML search space ({e.__class__.__name__})") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: a search space maps config keys (e.g. trainer.lr) to {{type, low, high}}")
    space = {}
    for key, spec in raw.items():
        try:
            space[str(key)] = ParamSpec.model_validate(spec)
        except ValidationError as e:
            raise ConfigError(describe_validation_error(e, f"{path}: {key}")) from None
    return space


def suggest(trial: Any, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Draw every parameter of `space` for an Optuna trial (categorical values kept as JSON text when lists)."""
    out: dict[str, Any] = {}
    for key, p in space.items():
        if p.type == "float":
            out[key] = trial.suggest_float(key, p.low, p.high, log=p.log)
        elif p.type == "int":
            out[key] = trial.suggest_int(key, int(p.low), int(p.high), log=p.log)
        else:
            texts = [json.dumps(c) for c in p.choices or []]
            out[key] = json.loads(trial.suggest_categorical(key, texts))
    return out


def trial_config(cfg: ExperimentConfig, params: dict[str, Any]) -> ExperimentConfig:
    """`cfg` with the drawn values set, validated (a key the config does not have is a ConfigError naming it)."""
    raw = apply_overrides(cfg.model_dump(mode="json"), [f"{k}={json.dumps(v)}" for k, v in params.items()])
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, "the tune search space")) from None


def params_key(params: dict[str, Any]) -> str:
    """A short stable name of a set of drawn values (the trial's folder)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


class PruneOnValidAUC(Hook):
    """Reports each epoch's valid AUC to the trial and stops the fit when Optuna's pruner says so."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.pruned = False

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        """Report, then raise Optuna's TrialPruned when the trial trails the median at this epoch."""
        import optuna

        auc = metrics.get("valid_auc")
        if auc is None:
            return
        self.trial.report(float(auc), epoch)
        if self.trial.should_prune():
            self.pruned = True
            raise optuna.TrialPruned(f"valid AUC {auc:.4f} at epoch {epoch} trails the median")


@dataclass
class TuneResult:
    """A finished tune: its folder, the best trial's values and metrics, and every trial's row."""

    path: Path
    best_params: dict[str, Any]
    best_metrics: dict[str, Any]
    trials: list[dict[str, Any]]


def default_params(cfg: ExperimentConfig, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """The values `cfg` already has for the keys of `space`, where the space can draw them (as Optuna stores them).

    Trial 0 of a new study runs them, so a tuned model is never worse on the validation split than the untuned one.
    """
    raw = cfg.model_dump(mode="json")
    out: dict[str, Any] = {}
    for key, p in space.items():
        node: Any = raw
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and p.draws(node):
            out[key] = p.stored(node)
    return out


def start_params(cfg: ExperimentConfig, space: dict[str, ParamSpec]) -> list[dict[str, Any]]:
    """The first trials of a new study: `cfg`'s own values, then each row of the space's `start` values over them.

    A row equal to an earlier one is dropped (a config that already has a start value does not run it twice).
    """
    first = default_params(cfg, space)
    rows = [first]
    for k in range(max((len(p.start) for p in space.values()), default=0)):
        row = {**first, **{key: p.stored(p.start[k]) for key, p in space.items()
                            if k < len(p.start) and p.start[k] is not None}}
        if row not in rows:
            rows.append(row)
    return rows


def study_url(out: Path) -> str:
    """The storage address of the Optuna study a tune keeps in `out`."""
    return f"sqlite:///{out / 'study.db'}"


def _study(cfg: ExperimentConfig, out: Path, worker: int = 0) -> Any:
    """The tune's Optuna study in `out/study.db` (created or loaded); each parallel worker seeds its own sampler."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name="tune", storage=study_url(out), load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=cfg.seed + worker, n_startup_trials=TPE_RANDOM_TRIALS),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=PRUNE_AFTER_EPOCHS))


def run_tune(cfg: ExperimentConfig, out: str | Path, trials: int, space: dict[str, ParamSpec] | None = None,
             log: Log | None = None, jobs: int = 1, hooks: Sequence[Hook] = ()) -> TuneResult:
    """Run `trials` finished (completed or pruned) trials of `cfg` over `space`; resumes a killed tune in `out`.

    Trial 0 runs `cfg`'s own values, the next trials the space's `start` values (`start_params`). With `jobs` > 1,
    that many processes draw and train trials side by side on one study, each with `cfg.threads // jobs` threads
    (results then depend on timing).
    `hooks` join every trial's fit (e.g. a deadline).
    """
    from optuna.trial import TrialState

    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    log = log or (lambda _m: None)
    space = space or load_space()
    first = {k: (p.choices[0] if p.type == "categorical" else p.low) for k, p in space.items()}
    trial_config(cfg, first)  # a key the config does not have fails before any training
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with run_folder_lock(out, log):
        study = _study(cfg, out)
        if not study.trials:
            for params in start_params(cfg, space):
                study.enqueue_trial(params)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # killed: run its values again
            study.enqueue_trial(t.params, skip_if_exists=False)
            study.tell(t.number, state=TrialState.FAIL)
            log(f"trial {t.number} was killed; its values run again (resuming from its checkpoint)")
        write_text_atomic(out / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        write_text_atomic(out / "space.json", json.dumps({k: v.model_dump() for k, v in space.items()}, indent=2))
        if jobs == 1:
            trial_loop(study, cfg, out, trials, space, log, hooks)
        else:
            _parallel(cfg, out, trials, space, jobs, log)
        return _write_results(study, cfg, out, space)


def _parallel(cfg: ExperimentConfig, out: Path, trials: int, space: dict[str, ParamSpec], jobs: int,
              log: Log) -> None:
    """`jobs` worker processes run `trial_loop` on the same study; a worker that fails is an error naming it."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # a fresh interpreter: no torch threads or locks inherited
    threads = max(1, cfg.threads // jobs)
    args = [(cfg.model_dump(mode="json"), str(out), trials, {k: v.model_dump() for k, v in space.items()}, w, threads)
            for w in range(jobs)]
    log(f"{jobs} trials at a time, {threads} thread(s) each")
    with ctx.Pool(jobs) as pool:
        for line in pool.starmap(_worker, args):
            if line:
                raise RecnasError(line)


def _worker(raw: dict[str, Any], out: str, trials: int, raw_space: dict[str, Any], worker: int,
            threads: int) -> str | None:
    """One parallel tune worker (in its own process); returns an error line instead of raising across processes."""
    try:
        cfg = ExperimentConfig.model_validate(raw)
        cfg.threads = threads
        space = {k: ParamSpec.model_validate(v) for k, v in raw_space.items()}
        trial_loop(_study(cfg, Path(out), worker), cfg, Path(out), trials, space, print)
    except RecnasError as e:
        return f"tune worker {worker}: {e}"
    return None


def trial_loop(study: Any, cfg: ExperimentConfig, out: Path, trials: int, space: dict[str, ParamSpec], log: Log,
               hooks: Sequence[Hook] = ()) -> None:
    """Ask, train and tell trials until `trials` are finished or running (those of other workers count)."""
    import optuna
    from optuna.trial import TrialState

    # The count reads the database itself: the study's own storage caches trials per process and never fetches one
    # that another worker created before this process's newest, so it missed running trials (5 trials for 4).
    db = optuna.storages.RDBStorage(study_url(out))
    study_id = db.get_study_id_from_name("tune")
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    started = (*finished, TrialState.RUNNING)
    while True:
        if any(getattr(h, "expired", False) for h in hooks):
            done = len(db.get_all_trials(study_id, deepcopy=False, states=finished))
            log(f"the time budget is spent: {done} of {trials} trials ran")
            return
        with ask_lock(out):  # count and ask as one step: two workers seeing 3 of 4 must not both start a 4th
            if len(db.get_all_trials(study_id, deepcopy=False, states=started)) >= trials:
                return
            trial = study.ask()
        params = suggest(trial, space)
        tcfg = trial_config(cfg, params)
        tcfg.trainer.progress = False
        hook = PruneOnValidAUC(trial)
        folder = out / "trials" / params_key(params)
        try:
            res = run_train(tcfg, folder, log=lambda _m: None, hooks=[hook, *hooks])
        except optuna.TrialPruned as e:
            study.tell(trial, state=TrialState.PRUNED)
            log(f"trial {trial.number}: pruned ({e}); {params}")
            continue
        except RecnasError as e:  # a value that cannot train (e.g. a width the model refuses) fails the trial
            study.tell(trial, state=TrialState.FAIL)
            log(f"trial {trial.number}: failed ({e}); {params}")
            continue
        trial.set_user_attr("folder", str(folder))
        trial.set_user_attr("test_auc", res.metrics["test_auc"])
        study.tell(trial, res.metrics["valid_auc"])
        log(f"trial {trial.number}: valid AUC {res.metrics['valid_auc']:.4f}; {params}")


@contextmanager
def ask_lock(out: Path) -> Iterator[None]:
    """An exclusive lock on `out`/ask.lock across the processes of one tune (`--jobs`), released on exit or death."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ask.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _decoded(params: dict[str, Any], space: dict[str, ParamSpec]) -> dict[str, Any]:
    return {k: json.loads(v) if space[k].type == "categorical" else v for k, v in params.items() if k in space}


def _write_results(study: Any, cfg: ExperimentConfig, out: Path, space: dict[str, ParamSpec]) -> TuneResult:
    """trials.csv (every trial), best.yaml (the best trial's whole config) and best.json."""
    from optuna.trial import TrialState

    rows = [{"trial": t.number, "state": t.state.name, "valid_auc": t.value,
             "test_auc": t.user_attrs.get("test_auc"), **_decoded(t.params, space)} for t in study.trials]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    text = io.StringIO()
    writer = csv.DictWriter(text, keys, lineterminator="\n")  # quotes a list value such as [400, 400, 400]
    writer.writeheader()
    writer.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows)
    write_text_atomic(out / "trials.csv", text.getvalue())
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not done:
        raise ConfigError(f"{out}: no trial finished (all pruned or failed); widen the space or add trials")
    best = max(done, key=lambda t: t.value)
    params = _decoded(best.params, space)
    best_cfg = trial_config(cfg, params)
    write_text_atomic(out / "best.yaml", yaml.safe_dump(best_cfg.model_dump(mode="json"), sort_keys=False))
    metrics = json.loads((Path(best.user_attrs["folder"]) / "metrics.json").read_text())
    write_text_atomic(out / "best.json", json.dumps({"trial": best.number, "params": params,
                                                      "valid_auc": best.value, "test_auc": metrics["test_auc"],
                                                      "folder": best.user_attrs["folder"]}, indent=2))
    return TuneResult(out, params, metrics, rows)


__all__ = ["ParamSpec", "PruneOnValidAUC", "TuneResult", "default_params", "load_space", "run_tune", "start_params",
           "trial_loop"]
