"""`recnas search` and `recnas retrain`: prepare -> search -> retrain (+ baseline) -> report, in one run folder.

    runs/<name>/config.yaml, schema.json        the resolved config and the fitted schema
    runs/<name>/search/arch.json                the architecture found (method, sample, fingerprint, dims or
                                                interactions), history.jsonl (one record per search epoch)
    runs/<name>/retrain/                        the searched architecture trained from scratch (a `recnas train`
                                                run folder plus arch.json, so `recnas predict` loads it)
    runs/<name>/baseline/                       the unsearched model with the same settings
    runs/<name>/control/                        NIS / ESAPN with search.control: the random layout / policy
                                                at the searched EP, retrained the same way
    runs/<name>/report.json, report.html        what was found and how it compares

Every stage is idempotent on the folder: a stage whose output exists is skipped, and a killed search resumes
from `search/checkpoint.pt` and ends with the same arch.json as an uninterrupted one. Order rule at retrain
and load time: freeze the architecture first, then build (or load) the weights.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recnas.data.batches import BatchIterator
from recnas.data.schema import Schema
from recnas.errors import ConfigError, DataError
from recnas.experiment.config import ExperimentConfig
from recnas.experiment.run import Splits, fit_and_score, load_config_file, load_splits, set_seed, train_arrays
from recnas.experiment.sampled_search import (
    SAMPLED_METHODS,
    build_sampled_retrain_model,
    build_sampled_supernet,
    check_embedding_model,
    control_arch,
    full_dim,
    sampled_search_stage,
)
from recnas.fileio import write_text_atomic
from recnas.nn.models import MODELS, CTRModel, build_model
from recnas.search.grda import c_for_threshold
from recnas.search.oneshot import OneShotStrategy, export_probs, export_sample
from recnas.space import Space
from recnas.space.autodim import AutoDimEmbedding, ProjectedEmbedding, sample_ep
from recnas.space.autofis import AutoFIS
from recnas.train import Trainer

AUTOFIS_MODELS = ("fm", "deepfm")
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "autofis": {"mode": "one_level", "arch_optimizer": "grda", "arch_lr": 1.0, "warmup_epochs": 0},
    "autodim": {"mode": "bi_level", "arch_optimizer": "adam", "arch_lr": 0.03, "warmup_epochs": 2},
}


def resolved_search(cfg: ExperimentConfig) -> dict[str, Any]:
    """The search settings with the method defaults filled in."""
    s = cfg.search.model_dump()
    if cfg.search.method in SAMPLED_METHODS:
        check_embedding_model(cfg)
        return s
    if cfg.search.method == "autodim":
        cls = MODELS.get(cfg.model.name.lower())
        if cls is not None and (cls.field_aware or not cls.has_embedding):
            raise ConfigError(f"AutoDim gives each field one embedding vector; {cfg.model.name!r} "
                              f"{'keeps several per id (field-aware)' if cls.field_aware else 'has no embeddings'}; "
                              "search another model (e.g. deepfm, fm, widedeep, dcnv2)")
        if cfg.search.max_ep is not None and cfg.search.max_ep_fraction is not None:
            raise ConfigError("give search.max_ep or search.max_ep_fraction, not both")
        if cfg.search.fill_budget and cfg.search.max_ep is None and cfg.search.max_ep_fraction is None:
            raise ConfigError("search.fill_budget grows the found sizes up to a budget; set search.max_ep or "
                              "search.max_ep_fraction too")
    elif cfg.model.name not in AUTOFIS_MODELS:
        raise ConfigError(f"AutoFIS searches fm or deepfm (model.name), not {cfg.model.name!r}")
    for key, value in METHOD_DEFAULTS[cfg.search.method].items():
        if s[key] is None:
            s[key] = value
    if s["warmup_epochs"] >= s["epochs"]:
        raise ConfigError(f"search.warmup_epochs ({s['warmup_epochs']}) must be below search.epochs ({s['epochs']})")
    return s


def common_dim(cfg: ExperimentConfig) -> int:
    """AutoDim's interaction dimension: `search.common_dim`, else the largest candidate."""
    return int(cfg.search.common_dim or max(cfg.search.candidates))


def _model_kwargs(cfg: ExperimentConfig) -> dict[str, Any]:
    return {"sparse": cfg.trainer.sparse, **cfg.model.build_kwargs()}


def build_search_model(cfg: ExperimentConfig, schema: Schema) -> CTRModel:
    """The supernet: AutoFIS (gated FM/DeepFM) or the configured zoo model with an AutoDim embedding."""
    resolved_search(cfg)  # refuses a model the method cannot search
    if cfg.search.method in SAMPLED_METHODS:
        return build_sampled_supernet(cfg, schema)
    kw = _model_kwargs(cfg)
    kw["sparse"] = False  # architecture steps need dense gradients
    if cfg.search.method == "autofis":
        return AutoFIS(schema, deep=cfg.model.name == "deepfm", retrain_gate_init=cfg.search.retrain_gate_init, **kw)
    dim = common_dim(cfg)
    kw["embedding_dim"] = dim
    model = build_model(cfg.model.name, schema, **kw)
    model.embedding = AutoDimEmbedding(schema, cfg.search.candidates, dim, **cfg.model.encoding_kwargs(),
                                       lift_gamma=cfg.search.lift_gamma,
                                       max_ep=cfg.search.max_ep, max_ep_fraction=cfg.search.max_ep_fraction,
                                       fill_budget=cfg.search.fill_budget)
    return model


def build_searched_model(cfg: ExperimentConfig, schema: Schema, arch: dict[str, Any]) -> CTRModel:
    """The retrain model of `arch` (fresh weights): AutoFM/AutoDeepFM, or the zoo model with the found dims."""
    kw = _model_kwargs(cfg)
    method = arch.get("method")
    if method == "autofis":
        return AutoFIS(schema, deep=arch["model"] == "deepfm", pairs=arch["interactions"],
                       retrain_gate_init=cfg.search.retrain_gate_init, **kw)
    if method == "autodim":
        dim = int(arch["common_dim"])
        kw["embedding_dim"] = dim
        model = build_model(arch["model"], schema, **kw)
        model.embedding = ProjectedEmbedding(schema, arch["dims"], dim, **cfg.model.encoding_kwargs(),
                                             lift_gamma=arch["lift_gamma"],
                                             sparse=cfg.trainer.sparse)
        return model
    if method in SAMPLED_METHODS:
        return build_sampled_retrain_model(cfg, schema, arch)
    raise DataError(f"arch.json names method {method!r}; expected autofis, autodim, nis or esapn")


def baseline_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """The unsearched model with the same settings.

    For AutoDim every field gets the common dimension (by default the largest candidate), for ESAPN the
    largest candidate size, for NIS `model.embedding_dim`: the full dimension the found EP is measured against.
    """
    base = cfg.model_copy(deep=True)
    if cfg.search.method == "autodim":
        base.model.embedding_dim = common_dim(cfg)
    elif cfg.search.method in SAMPLED_METHODS:
        base.model.embedding_dim = full_dim(cfg)
    return base


def read_arch(path: Path) -> dict[str, Any]:
    """Load an arch.json with a clear error."""
    try:
        arch = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read the architecture ({e}); run `recnas search` again") from None
    for key in ("method", "sample", "space_fingerprint"):
        if key not in arch:
            raise DataError(f"{path}: no {key!r} key; is this an arch.json written by `recnas search`?")
    return arch


def _search_batches(cfg: ExperimentConfig, splits: Splits) -> BatchIterator:
    """Full batches only: a small remainder batch would be the noisiest step before every export."""
    size = cfg.search.batch_size or splits.train.batch_size
    arrays = train_arrays(splits.ds, cfg.data.max_train_rows)
    return BatchIterator(arrays, size, shuffle=True, seed=cfg.seed, drop_last=len(arrays["y"]) >= size)


def search_stage(cfg: ExperimentConfig, splits: Splits, search_dir: Path,
                 log: Callable[[str], None] | None = None, fit_hooks: tuple = ()) -> dict[str, Any]:
    """Run the search and write search/arch.json (resumes from a checkpoint).

    AutoFIS and AutoDim train their supernet with the one-shot strategy; NIS and ESAPN are sample-based.
    """
    s = resolved_search(cfg)
    if cfg.search.method in SAMPLED_METHODS:
        arch = sampled_search_stage(cfg, splits, search_dir, log)
        write_text_atomic(search_dir / "arch.json", json.dumps(arch, indent=2))
        return arch
    set_seed(cfg.seed, cfg.threads)
    model = build_search_model(cfg, splits.ds.schema)
    train = _search_batches(cfg, splits)
    planned = max((s["epochs"] - s["warmup_epochs"]) * len(train), 1)
    grda_c = s["grda_c"] if s["grda_c"] is not None else c_for_threshold(
        s["grda_threshold"], s["arch_lr"], s["grda_mu"], planned)
    tau_decay = (max(s["tau_start"] - s["tau_end"], 0.0) / planned if s["tau_decay"] == "auto"
                 else float(s["tau_decay"]))
    n_valid = len(splits.ds.splits["valid"]["y"])
    valid = splits.ds.batches("valid", train.batch_size, shuffle=True, seed=cfg.seed,
                              drop_last=n_valid >= train.batch_size)
    strategy = OneShotStrategy(
        s["mode"], s["arch_optimizer"], lr=s["arch_lr"], grda_c=grda_c, grda_mu=s["grda_mu"],
        warmup_epochs=s["warmup_epochs"], tau_start=s["tau_start"], tau_decay=tau_decay, tau_min=s["tau_min"],
        memory_lambda=s["memory_lambda"] if cfg.search.method == "autodim" else 0.0,
        valid=valid if s["mode"] == "bi_level" else None, history_path=search_dir / "history.jsonl")
    update: dict[str, Any] = {"epochs": s["epochs"], "patience": s["epochs"], "reduce_lr_factor": 1.0,
                              "restore_best": False, "sparse": False}
    if s["lr"] is not None:
        update["lr"] = s["lr"]
    if s["embedding_l2"] is not None:
        update["embedding_l2"] = s["embedding_l2"]
    tcfg = cfg.trainer.model_copy(update=update)
    search_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = search_dir / "checkpoint.pt"
    log = log or (lambda _m: None)
    log(f"searching with {cfg.search.method} ({s['mode']}, {s['arch_optimizer']}) for {s['epochs']} epochs")
    Trainer(tcfg, log=log).fit(model, train, splits.valid, hooks=[strategy, *fit_hooks], checkpoint=checkpoint)
    sample = export_sample(model)
    arch: dict[str, Any] = {
        "method": cfg.search.method, "model": cfg.model.name, "sample": sample,
        "space_fingerprint": Space.collect(model).fingerprint(), "probs": export_probs(model),
        "search_epochs": s["epochs"], "arch_steps": strategy.arch_steps, "grda_c": grda_c, "tau_decay": tau_decay,
        "search_seconds": strategy.history[-1]["seconds"] if strategy.history else 0.0,
        "valid_auc": strategy.history[-1]["metrics"].get("valid_auc") if strategy.history else None,
    }
    if isinstance(model, AutoFIS):
        arch["interactions"] = model.kept_pairs(sample)
        arch["gates"] = model.interactions.gates()
        arch["num_pairs"] = len(arch["gates"])
    else:
        block = model.embedding
        assert isinstance(block, AutoDimEmbedding)
        arch["dims"] = block.chosen_dims(sample)
        arch.update(common_dim=block.common_dim, candidates=list(block.candidates), lift_gamma=block.lift_gamma,
                    max_ep=block.max_ep, fill_budget=block.fill_budget,
                    field_rows=block.rows, ep=sample_ep(block.rows, arch["dims"]),
                    full_ep=block.full_ep)
    write_text_atomic(search_dir / "arch.json", json.dumps(arch, indent=2))
    checkpoint.unlink(missing_ok=True)
    return arch


def retrain_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """`cfg` with the retrain's own embedding L2 (`search.retrain_embedding_l2`) when one is set."""
    if cfg.search.retrain_embedding_l2 is None:
        return cfg
    out = cfg.model_copy(deep=True)
    out.trainer.embedding_l2 = cfg.search.retrain_embedding_l2
    return out


def retrain_stage(cfg: ExperimentConfig, splits: Splits, arch: dict[str, Any], retrain_dir: Path,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the found architecture from scratch with `cfg.trainer`; writes a complete run folder."""
    cfg = retrain_config(cfg)
    set_seed(cfg.seed, cfg.threads)
    model = build_searched_model(cfg, splits.ds.schema, arch)  # the architecture first, then fresh weights
    retrain_dir.mkdir(parents=True, exist_ok=True)
    (retrain_dir / "arch.json").write_text(json.dumps(arch, indent=2))
    return fit_and_score(cfg, model, splits, retrain_dir, log, extra={"method": arch["method"], "searched": True})


def baseline_stage(cfg: ExperimentConfig, splits: Splits, baseline_dir: Path,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the unsearched model with the same settings."""
    base = baseline_config(cfg)
    set_seed(base.seed, base.threads)
    model = build_model(base.model.name, splits.ds.schema, **_model_kwargs(base))
    return fit_and_score(base, model, splits, baseline_dir, log, extra={"searched": False})


def default_search_dir(cfg: ExperimentConfig) -> Path:
    """runs/<name or method-model-dataset-time>."""
    name = cfg.name or (f"{cfg.search.method}-{cfg.model.name}-{Path(cfg.data.path or 'data').name}-"
                        f"{time.strftime('%Y%m%d-%H%M%S')}")
    return Path("runs") / name.replace("+", "plus")


def _settings(raw: dict[str, Any]) -> dict[str, Any]:
    """A config without what does not change results.

    That is the progress bar, and the data path and cache folder as spelled (the data itself is checked by its
    cache key).
    """
    raw = json.loads(json.dumps(raw))
    raw.get("trainer", {}).pop("progress", None)
    raw.get("data", {}).pop("path", None)
    raw.get("data", {}).pop("cache_dir", None)
    return raw


def _saved_config(path: Path, run_dir: Path) -> dict[str, Any]:
    """A run folder's config.yaml, read through the current config model.

    So a key added since (whose default keeps the old behaviour) does not make an unchanged run look different.
    """
    try:
        return load_config_file(path).model_dump(mode="json")
    except ConfigError as e:
        raise ConfigError(f"{run_dir} holds a run whose config this version of recnas cannot read ({e}); pass a "
                          "new --out (or delete the folder) to start another search") from None


def _claim_folder(run_dir: Path, cfg: ExperimentConfig, data_key: str) -> None:
    """Write config.yaml and the data's cache key, or check that an existing run used the same of both.

    A resumed run must change neither.
    """
    resolved = cfg.model_dump(mode="json")
    text = yaml.safe_dump(resolved, sort_keys=False)
    path, key_path = run_dir / "config.yaml", run_dir / "data_key.txt"
    if path.is_file() and _settings(_saved_config(path, run_dir)) != _settings(resolved):
        raise ConfigError(f"{run_dir} holds a run with a different config; pass a new --out (or delete the folder) "
                          "to start another search")
    if key_path.is_file() and key_path.read_text().strip() != data_key:
        raise ConfigError(f"{run_dir} holds a run on different data (the files under {cfg.data.path} changed); "
                          "pass a new --out (or delete the folder) to search again")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)  # a kill mid-write must not leave a config.yaml a resume cannot read
    write_text_atomic(key_path, data_key + "\n")


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


def run_search(cfg: ExperimentConfig, out: str | Path | None = None, log: Callable[[str], None] | None = None,
               fit_hooks: tuple = ()) -> SearchRun:
    """Prepare -> search -> retrain -> baseline -> report; stages already done in `out` are skipped."""
    from recnas.experiment.report import write_report

    resolved_search(cfg)  # fail on bad search settings before any work
    run_dir = Path(out) if out is not None else default_search_dir(cfg)
    splits = load_splits(cfg, log)
    _claim_folder(run_dir, cfg, splits.ds.path.name)
    splits.ds.schema.save(run_dir)
    arch = _read_json(run_dir / "search" / "arch.json")
    if arch is None:
        arch = search_stage(cfg, splits, run_dir / "search", log, fit_hooks)
    retrain = _read_json(run_dir / "retrain" / "metrics.json")
    if retrain is None:
        retrain = retrain_stage(cfg, splits, arch, run_dir / "retrain", log)
    baseline = _read_json(run_dir / "baseline" / "metrics.json")
    if cfg.search.baseline and baseline is None:
        baseline = baseline_stage(cfg, splits, run_dir / "baseline", log)
    if cfg.search.control and cfg.search.method in SAMPLED_METHODS and \
            _read_json(run_dir / "control" / "metrics.json") is None:
        control = _read_json(run_dir / "control" / "arch.json") or control_arch(cfg, splits, arch,
                                                                                 run_dir / "control", log)
        retrain_stage(cfg, splits, control, run_dir / "control", log)
    report = write_report(run_dir)
    return SearchRun(run_dir, arch, retrain, baseline, report)


def run_retrain(run_dir: str | Path, log: Callable[[str], None] | None = None) -> SearchRun:
    """Re-run the retrain stage alone from `search/arch.json` (then refresh the report)."""
    from recnas.experiment.report import write_report

    run_dir = Path(run_dir)
    arch_path = run_dir / "search" / "arch.json"
    if not arch_path.is_file():
        raise DataError(f"{run_dir}: no search/arch.json; run `recnas search` first (or finish it)")
    cfg = load_config_file(run_dir / "config.yaml")
    arch = read_arch(arch_path)
    splits = load_splits(cfg, log)
    retrain = retrain_stage(cfg, splits, arch, run_dir / "retrain", log)
    report = write_report(run_dir)
    return SearchRun(run_dir, arch, retrain, _read_json(run_dir / "baseline" / "metrics.json"), report)
