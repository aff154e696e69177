"""`recnas search` and `recnas retrain`: prepare -> search -> retrain (+ baseline) -> report, in one run folder.

    runs/<name>/config.yaml, schema.json        the resolved config and the fitted schema
    runs/<name>/search/arch.json                the architecture found (method, model, sample, fingerprint and
                                                the method's own keys), history.jsonl (the search trace)
    runs/<name>/retrain/                        the searched architecture trained from scratch (a `recnas train`
                                                run folder plus arch.json and frozen.json, so `recnas predict`
                                                loads it with `recnas.nn` alone)
    runs/<name>/baseline/                       the unsearched model with the same settings
    runs/<name>/control/                        with lab.control (methods that have one): a random architecture
                                                at the searched EP, retrained the same way
    runs/<name>/report.json, report.html        what was found and how it compares

The runner knows no method by name: the method registry (`recnas.methods`) says how each stage is done.
Every stage is idempotent on the folder: a stage whose output exists is skipped, and a killed search resumes
from `search/checkpoint.pt` and ends with the same arch.json as an uninterrupted one. Order rule at retrain
and load time: freeze the architecture first, then build (or load) the weights.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recnas.errors import ConfigError, DataError
from recnas.experiment.config import ExperimentConfig
from recnas.experiment.folder import claim_folder, run_folder_lock
from recnas.experiment.run import Splits, fit_and_score, load_config_file, load_splits, set_seed
from recnas.fileio import write_text_atomic
from recnas.methods import SearchMethod, method_of
from recnas.methods.base import model_kwargs
from recnas.nn.models import build_model
from recnas.train import distributed
from recnas.train.hooks import Hook

Log = Callable[[str], None]


def _quiet(_m: str) -> None:
    pass


def read_arch(path: Path) -> dict[str, Any]:
    """Load an arch.json with a clear error."""
    try:
        arch = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read the architecture ({e}); run `recnas search` again") from None
    for key in ("method", "model", "sample", "space_fingerprint"):
        if key not in arch:
            raise DataError(f"{path}: no {key!r} key; is this an arch.json written by `recnas search`?")
    return arch


def search_stage(method: SearchMethod, splits: Splits, search_dir: Path, log: Log | None = None,
                 fit_hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Run the method's search and write search/arch.json (a killed search resumes from its checkpoint)."""
    cfg = method.cfg
    search_dir.mkdir(parents=True, exist_ok=True)
    found = method.search(splits, search_dir, log or _quiet, fit_hooks)
    arch = {"method": method.name, "model": cfg.model.name, **found}
    if distributed.active() and not distributed.same_on_every_rank((arch["sample"], arch.get("probs"))):
        raise ConfigError(f"{method.name}: the ranks of this data-parallel job ended the search with different "
                          "architectures; this is a bug in recnas, please report it")
    if distributed.is_main():
        write_text_atomic(search_dir / "arch.json", json.dumps(arch, indent=2))
        (search_dir / "checkpoint.pt").unlink(missing_ok=True)
    return arch


def retrain_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """The retrain's config: `retrain.*` over the trainer; no search section (the run folder is a plain model)."""
    out = cfg.model_copy(deep=True)
    if cfg.retrain.embedding_l2 is not None:
        out.trainer.embedding_l2 = cfg.retrain.embedding_l2
    out.search = None
    return out


def retrain_stage(method: SearchMethod, splits: Splits, arch: dict[str, Any], retrain_dir: Path,
                  log: Log | None = None, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Train the found architecture from scratch; writes a complete run folder with arch.json and frozen.json."""
    cfg = retrain_config(method.cfg)
    set_seed(cfg.seed, cfg.threads)
    model = method.retrain_model(splits.ds.schema, arch)  # the architecture first, then fresh weights
    if distributed.is_main():
        retrain_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(retrain_dir / "arch.json", json.dumps(arch, indent=2))
        write_text_atomic(retrain_dir / "frozen.json", json.dumps(model.frozen_spec(), indent=2))
    return fit_and_score(cfg, model, splits, retrain_dir, log, extra={"method": arch["method"], "searched": True},
                         hooks=hooks)


def baseline_stage(method: SearchMethod, splits: Splits, baseline_dir: Path, log: Log | None = None) -> dict[str, Any]:
    """Train the unsearched model with the same settings."""
    base = method.baseline_config()
    base.search = None
    set_seed(base.seed, base.threads)
    model = build_model(base.model.name, splits.ds.schema, **model_kwargs(base))
    return fit_and_score(base, model, splits, baseline_dir, log, extra={"searched": False})


def default_search_dir(cfg: ExperimentConfig) -> Path:
    """runs/<name or method-model-dataset-time>."""
    assert cfg.search is not None
    name = cfg.name or (f"{cfg.search.method}-{cfg.model.name}-{Path(cfg.data.path or 'data').name}-"
                        f"{time.strftime('%Y%m%d-%H%M%S')}")
    return Path("runs") / name.replace("+", "plus")


@dataclass
class SearchRun:
    """A finished `recnas search`."""

    path: Path
    arch: dict[str, Any]
    retrain: dict[str, Any]
    baseline: dict[str, Any] | None
    report: Path


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def run_search(cfg: ExperimentConfig, out: str | Path | None = None, log: Log | None = None,
               fit_hooks: Sequence[Hook] = (), retrain_hooks: Sequence[Hook] = ()) -> SearchRun:
    """Prepare -> search -> retrain -> baseline (-> control) -> report; stages already done in `out` are skipped.

    `fit_hooks` join the search's fit, `retrain_hooks` the retrain's (e.g. a deadline).
    """
    method = method_of(cfg)  # fails on bad search settings before any work
    if cfg.lab.control and type(method).control_arch is SearchMethod.control_arch:
        raise ConfigError(f"lab.control: {method.name} defines no random control; set lab.control=false")
    if distributed.active() and not method.data_parallel:
        raise ConfigError(f"search.method={method.name} does not run data-parallel (only the one-shot searches do); "
                          "run it with one process")
    if distributed.active() and cfg.lab.control:
        raise ConfigError("lab.control does not run data-parallel; set lab.control=false or run with one process")
    if not distributed.is_main():
        log = None
    run_dir = Path(out) if out is not None else default_search_dir(cfg)
    with run_folder_lock(run_dir, log):
        return _run_search(method, cfg, run_dir, log, fit_hooks, retrain_hooks)


def _run_search(method: SearchMethod, cfg: ExperimentConfig, run_dir: Path, log: Log | None,
                fit_hooks: Sequence[Hook], retrain_hooks: Sequence[Hook] = ()) -> SearchRun:
    from recnas.experiment.report import write_report

    splits = load_splits(cfg, log)

    def claim() -> tuple[dict[str, Any] | None, ...]:  # rank 0's part; what is done already, for every rank
        claim_folder(run_dir, cfg, splits.ds.path.name, "start another search")
        splits.ds.schema.save(run_dir)
        return tuple(_read_json(run_dir / f) for f in ("search/arch.json", "retrain/metrics.json",
                                                        "baseline/metrics.json"))

    arch, retrain, baseline = distributed.main_first(claim)
    if arch is None:
        arch = search_stage(method, splits, run_dir / "search", log, fit_hooks)
    if retrain is None:
        retrain = retrain_stage(method, splits, arch, run_dir / "retrain", log, retrain_hooks)
    if method.s.baseline and baseline is None:
        baseline = baseline_stage(method, splits, run_dir / "baseline", log)
    if cfg.lab.control and _read_json(run_dir / "control" / "metrics.json") is None:
        control = _read_json(run_dir / "control" / "arch.json")
        if control is None:
            control = {"method": method.name, "model": cfg.model.name,
                       **(method.control_arch(splits, arch, run_dir / "control", log or _quiet) or {})}
        retrain_stage(method, splits, control, run_dir / "control", log)
    report = distributed.main_first(lambda: write_report(run_dir))
    for line in method.warnings(arch):  # once per run, a resumed one included
        (log or _quiet)(f"warning: {line}")
    return SearchRun(run_dir, arch, retrain, baseline, report)


def run_retrain(run_dir: str | Path, log: Log | None = None) -> SearchRun:
    """Re-run the retrain stage alone from `search/arch.json` (then refresh the report)."""
    from recnas.experiment.report import write_report

    run_dir = Path(run_dir)
    arch_path = run_dir / "search" / "arch.json"
    if not arch_path.is_file():
        raise DataError(f"{run_dir}: no search/arch.json; run `recnas search` first (or finish it)")
    with run_folder_lock(run_dir, log):
        cfg = load_config_file(run_dir / "config.yaml")
        arch = read_arch(arch_path)
        splits = load_splits(cfg, log)
        retrain = retrain_stage(method_of(cfg), splits, arch, run_dir / "retrain", log)
        report = distributed.main_first(lambda: write_report(run_dir))
    return SearchRun(run_dir, arch, retrain, _read_json(run_dir / "baseline" / "metrics.json"), report)
