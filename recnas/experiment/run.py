"""`recnas train` and `recnas predict`: a run folder that holds everything needed to reuse a model.

`runs/<name>/` = config.yaml (resolved), schema.json + vocab/ (fitted state), model.safetensors,
metrics.json, train_log.jsonl. Loading never unpickles (safetensors + JSON/YAML/Arrow).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from pydantic import ValidationError

import recnas
from recnas.data.batches import BatchIterator
from recnas.data.cache import prepare
from recnas.data.processor import EncodeReport
from recnas.data.schema import Schema
from recnas.data.source import open_dataset, with_hash_buckets, with_min_count
from recnas.data.splits import Splits, train_arrays
from recnas.errors import ConfigError, DataError, describe_validation_error
from recnas.experiment.config import ExperimentConfig
from recnas.experiment.distill import distilled_targets
from recnas.experiment.folder import claim_folder, make_run_dir, run_folder_lock
from recnas.experiment.numerical_report import write_autodis_report
from recnas.fileio import write_atomic, write_jsonl_atomic, write_text_atomic
from recnas.methods.base import model_kwargs
from recnas.nn.embedding import numerical_kinds
from recnas.nn.frozen import build_frozen
from recnas.nn.models import CTRModel, build_model
from recnas.scoring import data_file, score_file
from recnas.train import Trainer, binary_metrics, count_params, distributed, predict_logits
from recnas.train.hooks import Hook
from recnas.train.seed import set_seed

CHECKPOINT = "checkpoint.pt"


def versions() -> dict[str, str]:
    """Versions written next to every result."""
    import pyarrow
    import sklearn

    return {"recnas": recnas.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "pyarrow": pyarrow.__version__, "sklearn": sklearn.__version__, "python": platform.python_version()}


def default_run_dir(cfg: ExperimentConfig) -> Path:
    """runs/<name or model-dataset-time>."""
    name = cfg.name or f"{cfg.model.name}-{Path(cfg.data.path or 'data').name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path("runs") / name.replace("+", "plus")


@dataclass
class RunResult:
    """A finished training run."""

    path: Path
    metrics: dict[str, Any]
    model: CTRModel


def load_splits(cfg: ExperimentConfig, log: Callable[[str], None] | None = None,
                batch_size: int | None = None) -> Splits:
    """Prepare (or reuse the cache of) `cfg.data.path` and build train/valid/test batches."""
    if cfg.data.path is None:
        raise ConfigError("data.path is not set; pass --data DIR or set it in the config")
    source = open_dataset(cfg.data.path, label=cfg.data.label, positive=cfg.data.positive)
    if cfg.data.hash_buckets:
        source = dataclasses.replace(source, schema=with_hash_buckets(source.schema, cfg.data.hash_buckets))
    if cfg.data.min_count:
        source = dataclasses.replace(source, schema=with_min_count(source.schema, cfg.data.min_count))
    ds = prepare(source, cfg.data.cache_dir, on_bad_row=cfg.data.on_bad_row, log=log)
    for split in ("train", "valid", "test"):
        if split not in ds.splits:
            raise DataError(f"{cfg.data.path}: no {split} split; a dataset folder needs train, valid and test files")
    for split in ("train", "test"):  # valid: the trainer checks it when it monitors AUC
        y = ds.splits[split]["y"]
        if len(y) and float(y.min()) == float(y.max()):
            raise DataError(f"{cfg.data.path}: every label of the {split} split is {float(y.min()):g}; a click model "
                            f"needs clicks and non-clicks in train (and in test, for its AUC); check the label column")
    tcfg = cfg.trainer
    rows = distilled_targets(cfg, train_arrays(ds, cfg.lab.max_train_rows))  # labels, or blended with a teacher's
    train = BatchIterator(rows, batch_size or tcfg.batch_size, shuffle=True,
                          seed=cfg.seed, shuffle_window=cfg.data.shuffle_window, shuffle_block=cfg.data.shuffle_block)
    return Splits(ds, train, ds.batches("valid", tcfg.eval_batch_size, shuffle=False),
                  ds.batches("test", tcfg.eval_batch_size, shuffle=False))


def fit_and_score(cfg: ExperimentConfig, model: CTRModel, splits: Splits, run_dir: Path,
                  log: Callable[[str], None] | None = None, extra: dict[str, Any] | None = None,
                  hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Train `model` with `cfg.trainer`, score test and write a complete run folder; returns metrics.json.

    The folder holds config.yaml, schema.json + vocab/, model.safetensors, train_log.jsonl, metrics.json
    (and whatever the caller wrote before, e.g. the arch.json of a searched model). In a data-parallel job every
    rank trains and scores, and rank 0 alone writes.
    """
    log = log or (lambda _m: None)
    main = distributed.is_main()
    if main:
        make_run_dir(run_dir)
        write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        splits.ds.schema.save(run_dir)
    log(f"training {cfg.model.name} on {splits.train.n:,} rows ({count_params(model):,} parameters)")
    encoders = numerical_kinds(splits.ds.schema, cfg.model.numerical_encoder)
    if encoders:  # what `auto` chose per field is part of the result, so say it
        log("numerical encoders: " + ", ".join(f"{f}={k}" for f, k in encoders.items()))
    t_wall = time.perf_counter()
    checkpoint = run_dir / CHECKPOINT  # every epoch: a killed fit resumes from its last finished epoch
    result = Trainer(cfg.trainer, log=log).fit(model, splits.train, splits.valid, hooks=hooks, checkpoint=checkpoint)
    t0 = time.perf_counter()
    y_test, logits = predict_logits(model, splits.test)
    infer_s = time.perf_counter() - t0
    test_metrics = binary_metrics(y_test, logits, "test")
    from safetensors.torch import save_file

    if main:
        weights = {k: v.contiguous() for k, v in model.state_dict().items()}
        write_atomic(run_dir / "model.safetensors", lambda tmp: save_file(weights, str(tmp)))
        write_jsonl_atomic(run_dir / "train_log.jsonl", result.history)
    metrics = {
        "model": cfg.model.name,
        "dataset": str(cfg.data.path),
        "valid_auc": result.best_valid.get("auc", float("nan")),
        "valid_logloss": result.best_valid.get("logloss", float("nan")),
        "test_auc": test_metrics["auc"],
        "test_logloss": test_metrics["logloss"],
        "params": count_params(model),
        "embedding_params": model.embedding_params(),
        "train_samples_per_s": result.train_samples_per_s,
        "infer_samples_per_s": len(y_test) / infer_s if infer_s > 0 else 0.0,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "train_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
        "wall_seconds": time.perf_counter() - t_wall,
        "train_rows": splits.train.n,
        "seed": cfg.seed,
        "threads": cfg.threads,
        "processes": distributed.world()[1],
        "cache": str(splits.ds.path),
        "versions": versions(),
        "numerical_encoders": encoders,
        **(extra or {}),
    }
    if not main:
        return metrics
    autodis = write_autodis_report(model, run_dir)
    if autodis is not None:
        metrics["autodis"] = autodis
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    checkpoint.unlink(missing_ok=True)
    return metrics


def run_train(cfg: ExperimentConfig, out: str | Path | None = None,
              log: Callable[[str], None] | None = None, force: bool = False, hooks: Sequence[Hook] = ()) -> RunResult:
    """Prepare the data, train `cfg.model` with early stopping on valid AUC, score test, write the run folder.

    The folder is held by this process alone. A killed run started again with the same config resumes from its
    last finished epoch and ends as an uninterrupted one; a finished one is returned as it is; a folder holding a
    run of another config or data is refused, unless `force` clears it first.
    """
    run_dir = Path(out) if out is not None else default_run_dir(cfg)
    if not distributed.is_main():
        log = None
    with run_folder_lock(run_dir, log):
        set_seed(cfg.seed, cfg.threads)
        splits = load_splits(cfg, log)

        def claim() -> bool:  # rank 0's part: the folder is this run's; True when it is finished
            if force:
                clear_run(run_dir)
            claim_folder(run_dir, cfg, splits.ds.path.name, "train another model (or pass --force to replace it)")
            return (run_dir / "metrics.json").is_file() and (run_dir / "model.safetensors").is_file()

        if distributed.main_first(claim):
            if log is not None:
                log(f"{run_dir} already holds this run, finished; pass --force to train it again")
            return RunResult(run_dir, json.loads((run_dir / "metrics.json").read_text()), load_run(run_dir)[2])
        model = build_model(cfg.model.name, splits.ds.schema, **model_kwargs(cfg))
        metrics = fit_and_score(cfg, model, splits, run_dir, log, hooks=hooks)
        return RunResult(run_dir, metrics, model)


RUN_FILES = ("config.yaml", "data_key.txt", CHECKPOINT, "model.safetensors", "metrics.json", "train_log.jsonl",
             "predictions.csv")


def clear_run(run_dir: Path) -> None:
    """Delete what `recnas train` wrote in `run_dir` (nothing else), so the folder can take another run."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)


def load_config_file(path: Path) -> ExperimentConfig:
    """The resolved config a run folder holds (written by recnas), with a clear error when it is damaged."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError) as e:
        raise ConfigError(f"{path}: not a config recnas wrote ({e.__class__.__name__}); run again") from None
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:  # an empty file, or a key this version does not know: name it
        raise ConfigError(f"{describe_validation_error(e, str(path))} (not a config this version of recnas wrote); "
                          "run again") from None


def model_folder(run_dir: Path) -> Path:
    """The folder holding the weights: `run_dir` itself (`recnas train`) or its `retrain/` (`recnas search`)."""
    if (run_dir / "model.safetensors").is_file():
        return run_dir
    if (run_dir / "retrain" / "model.safetensors").is_file():
        return run_dir / "retrain"
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such folder; pass a run folder written by `recnas train` or `recnas search`")
    raise DataError(f"{run_dir}: no model.safetensors here or in {run_dir / 'retrain'}; pass a folder written by "
                    "`recnas train`, or a search run whose retrain has finished (`recnas retrain`)")


def load_run(run_dir: str | Path) -> tuple[ExperimentConfig, Schema, CTRModel]:
    """Rebuild a trained model from its run folder, or a search run's retrain/.

    Config -> architecture (frozen parts first), then the safetensors weights.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    run_dir = model_folder(Path(run_dir))
    for name in ("config.yaml", "schema.json", "model.safetensors"):
        if not (run_dir / name).is_file():
            raise DataError(f"{run_dir}: missing {name}; is this a folder written by `recnas train`?")
    cfg = load_config_file(run_dir / "config.yaml")
    schema = Schema.load(run_dir)
    parts = {}
    if (run_dir / "frozen.json").is_file():  # a retrained searched model: its frozen parts first, then the weights
        try:
            specs = json.loads((run_dir / "frozen.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"{run_dir / 'frozen.json'}: cannot read the frozen architecture ({e}); run "
                            "`recnas retrain` again") from None
        encoding = {**cfg.model.encoding_kwargs(), "sparse": cfg.trainer.sparse}
        parts = {slot: build_frozen(spec, schema, encoding) for slot, spec in specs.items()}
    model = build_model(cfg.model.name, schema, **model_kwargs(cfg), **parts)
    weights_path = run_dir / "model.safetensors"
    try:
        weights = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        reason = (str(e).splitlines() or ["damaged"])[0][:120]
        raise DataError(f"{weights_path}: not a readable weights file ({reason}); it is truncated or damaged: "
                        "train again") from None
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise DataError(f"{weights_path}: the weights {bad[0]!r} hold NaN or infinite values ({len(bad)} tensors); "
                        "the file is damaged or the training diverged: train again")
    try:
        model.load_state_dict(weights)
    except (RuntimeError, OSError) as e:
        raise DataError(f"{weights_path}: the weights do not fit the model of config.yaml "
                        f"({str(e).splitlines()[0]}); train again") from None
    model.eval()
    return cfg, schema, model


def predict_file(run_dir: str | Path, data: str | Path, out: str | Path,
                 batch_size: int = 16384) -> tuple[dict[str, Any], EncodeReport]:
    """Score a data file (or a folder's test split) with a trained run; writes `out` as CSV (score[, label]).

    CSV/Parquet files may lack the label column (new data to score); then no metrics are computed.
    """
    out = Path(out)
    if out.is_dir():
        raise DataError(f"{out}: is a folder; pass a file path for the scores (e.g. {out / 'predictions.csv'})")
    cfg, schema, model = load_run(run_dir)
    torch.set_num_threads(cfg.threads)

    def scorer(arrays: dict[str, np.ndarray]) -> np.ndarray:
        return predict_logits(model, BatchIterator(arrays, batch_size, shuffle=False))[1]

    return score_file(schema, data_file(data, schema), scorer, out)
