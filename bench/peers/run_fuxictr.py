"""FuxiCTR 2.3.10 worker of the peer comparison (runs in the peers venv).

FuxiCTR's own pipeline end to end: CSV -> parquet through `FeatureProcessor` + `build_dataset` (Ray Data),
`RankDataLoader(data_format="csv")`, which gives the `ParquetDataLoader` (a global Ray `random_shuffle` each
epoch), and `BaseModel.fit` with `monitor: AUC`, `early_stop_patience`, `reduce_lr_on_plateau` and its default
gradient clipping (max norm 10). The model classes are rewritten in `fuxictr_models.py` (the wheel has no model
zoo). `train_epoch`, `eval_step` and `checkpoint_and_earlystop` are wrapped only to time and record them:
training time = sum of `train_epoch` - sum of `eval_step` (validation + checkpoint).

The encoded parquet files are cached under the spec's `cache` folder, one dataset per (data folder,
max_train_rows); a subsampled train CSV is written to a temporary folder outside the repository.

    python bench/peers/run_fuxictr.py --spec '{...}' --out result.json
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import base_versions, csv_header, parse_worker_args, seed_all, set_threads, write_result


def dataset_key(data: Path, max_rows: int | None) -> str:
    parts = [str(data.resolve()), str(max_rows)]
    for split in ("train", "valid", "test"):
        st = (data / f"{split}.csv").stat()
        parts += [str(st.st_size), str(int(st.st_mtime))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def build(spec: dict, fields: list[str], label: str) -> tuple[str, Path, dict, float, bool]:
    """Run (or reuse) FuxiCTR's CSV -> parquet build: dataset_id, its folder, the split paths, seconds, reused."""
    from fuxictr.preprocess import FeatureProcessor, build_dataset

    data = Path(spec["data"])
    max_rows = spec.get("max_train_rows")
    dataset_id = f"{data.name}_{dataset_key(data, max_rows)}"
    root = Path(spec["cache"]) / "fuxictr"
    ddir = root / dataset_id
    done = ddir / "build.done"
    if ddir.exists() and not done.exists():
        shutil.rmtree(ddir)  # a build that died half-way: FuxiCTR would skip it for its feature_map.json alone
    reused = done.exists()
    tmp = None
    train_csv = data / "train.csv"
    if max_rows is not None and not done.exists():
        tmp = Path(tempfile.mkdtemp(prefix="recnas_peers_"))
        train_csv = tmp / "train.csv"
        with open(data / "train.csv", encoding="utf-8") as src, open(train_csv, "w", encoding="utf-8") as dst:
            dst.writelines(itertools.islice(src, max_rows + 1))
    feature_cols = [{"name": fields, "active": True, "dtype": "str", "type": "categorical"}]
    label_col = {"name": label, "dtype": "float"}
    t = time.perf_counter()
    processor = FeatureProcessor(feature_cols=feature_cols, label_col=label_col, dataset_id=dataset_id,
                                 data_root=str(root))
    train, valid, test = build_dataset(feature_encoder=processor, train_data=str(train_csv),
                                       valid_data=str(data / "valid.csv"), test_data=str(data / "test.csv"),
                                       data_format="csv")
    seconds = time.perf_counter() - t
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    done.write_text("ok\n")
    return dataset_id, ddir, {"train": train, "valid": valid, "test": test}, seconds, reused


def model_params(spec: dict, run_dir: Path) -> dict:
    params = {
        "model_root": str(run_dir / "ckpt"), "verbose": 0, "gpu": -1, "task": "binary_classification",
        "loss": "binary_crossentropy", "metrics": ["logloss", "AUC"], "optimizer": "adam", "monitor": "AUC",
        "monitor_mode": "max", "save_best_only": True, "early_stop_patience": spec["patience"],
        "reduce_lr_on_plateau": True, "eval_steps": None, "learning_rate": spec["lr"],
        "embedding_dim": spec["embedding_dim"], "batch_size": spec["batch_size"], "seed": spec["seed"],
    }
    l2 = float(spec["embedding_l2"])
    if spec["model"] == "deepfm":
        params.update(hidden_units=spec["mlp"], hidden_activations="relu", net_dropout=spec["dropout"],
                      batch_norm=False, embedding_regularizer=l2, net_regularizer=0)
    elif spec["model"] == "dcnv2":
        params.update(model_structure="parallel", use_low_rank_mixture=False, parallel_dnn_hidden_units=spec["mlp"],
                      stacked_dnn_hidden_units=[], dnn_activations="relu", num_cross_layers=spec["cross_layers"],
                      net_dropout=spec["dropout"], batch_norm=False, embedding_regularizer=l2, net_regularizer=0)
    elif spec["model"] == "fm":
        params.update(regularizer=l2)  # FuxiCTR's FM has one regularizer (tables and its scalar bias)
    else:
        raise SystemExit(f"unknown model {spec['model']}")
    return params


def main() -> None:
    spec, out = parse_worker_args()
    set_threads(spec["threads"])
    logging.basicConfig(level=logging.WARNING)
    import fuxictr
    import ray
    from fuxictr.features import FeatureMap
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from fuxictr.pytorch.torch_utils import seed_everything
    from fuxictr_models import MODELS

    seed_all(spec["seed"])
    seed_everything(seed=spec["seed"])
    data = Path(spec["data"])
    label, *fields = csv_header(data / "train.csv")
    dataset_id, ddir, paths, prep_s, prep_reused = build(spec, fields, label)
    run_dir = Path(spec["run_dir"])
    params = model_params(spec, run_dir)
    feature_map = FeatureMap(dataset_id, str(ddir))
    feature_map.load(str(ddir / "feature_map.json"), params)
    model = MODELS[spec["model"]](feature_map, **params)
    os.makedirs(model.model_dir, exist_ok=True)  # fit's first checkpoint fails without it (PEERS.md)
    loader = {"batch_size": spec["batch_size"], "data_format": "csv", "num_workers": spec.get("fuxictr_num_workers", 3)}
    train_gen, valid_gen = RankDataLoader(feature_map, stage="train", train_data=paths["train"],
                                          valid_data=paths["valid"], shuffle=True, **loader)

    timing = {"train_epoch": 0.0, "eval_step": 0.0, "epochs": 0}
    history: list[dict] = []
    train_epoch, eval_step, checkpoint = model.train_epoch, model.eval_step, model.checkpoint_and_earlystop

    def timed_train_epoch(gen) -> None:  # noqa: ANN001
        t = time.perf_counter()
        train_epoch(gen)
        timing["train_epoch"] += time.perf_counter() - t
        timing["epochs"] += 1

    def timed_eval_step() -> None:
        t = time.perf_counter()
        eval_step()
        timing["eval_step"] += time.perf_counter() - t

    def recorded_checkpoint(logs, min_delta=1e-6) -> None:  # noqa: ANN001
        lr = model.optimizer.param_groups[0]["lr"]
        before = model._best_metric
        checkpoint(logs, min_delta=min_delta)
        history.append({"epoch": timing["epochs"] + 1, "valid_auc": float(logs["AUC"]), "lr": lr,
                        "improved": model._best_metric != before})

    model.train_epoch, model.eval_step, model.checkpoint_and_earlystop = (timed_train_epoch, timed_eval_step,
                                                                          recorded_checkpoint)
    model.fit(train_gen, epochs=spec["epochs"], validation_data=valid_gen, max_gradient_norm=10.0)
    test_gen = RankDataLoader(feature_map, stage="test", test_data=paths["test"], shuffle=False, **loader)
    t = time.perf_counter()
    test = model.evaluate(test_gen)
    test_s = time.perf_counter() - t
    train_s = timing["train_epoch"] - timing["eval_step"]
    n = train_gen.num_samples
    emb = sum(p.numel() for name, p in model.named_parameters() if "embedding_layer" in name)
    result = {
        "epochs": timing["epochs"], "train_seconds": train_s, "eval_seconds": timing["eval_step"],
        "valid_auc": float(model._best_metric), "history": history,
        "test_auc": float(test["AUC"]), "test_logloss": float(test["logloss"]), "test_seconds": test_s,
        "train_rows": n, "train_samples_per_s": n * timing["epochs"] / train_s, "preprocess_seconds": prep_s,
        "preprocess_reused": prep_reused,
        "params": sum(p.numel() for p in model.parameters()), "embedding_params": emb,
        "vocab_sizes": {f: feature_map.features[f]["vocab_size"] for f in fields},
        "versions": {**base_versions(), "lib": "fuxictr", "fuxictr": fuxictr.__version__, "ray": ray.__version__},
        "notes": "BaseModel.fit as shipped: Ray ParquetDataLoader, clip_grad_norm 10, embedding_regularizer "
                 f"{params.get('embedding_regularizer', params.get('regularizer'))}, "
                 f"num_workers {loader['num_workers']}",
    }
    shutil.rmtree(run_dir / "ckpt", ignore_errors=True)
    write_result(out, result)
    ray.shutdown()


if __name__ == "__main__":
    main()
