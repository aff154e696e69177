"""Numerical-encoder benchmark (issue 5): DeepFM with each numerical encoder, same setting, 3 seeds.

Datasets: ml100k (numerical fields age and release_year) and `synth_counts_1m`, 1M rows made by recnas's
generator in Criteo's shape (26 categorical fields with Criteo's cardinalities capped at 10,000, 13 numerical
fields of zero-inflated, log-normal counts whose effects are U-shaped, wavy, log-linear or nothing; two planted
pairs), written once under <work>/data. Setting: the search benchmark's DeepFM (dim 10, MLP 400-400-400, batch
4,096, Adam 1e-3, embedding L2 0.1 on the id tables, early stopping on valid AUC, patience 2, lr x0.1 on
plateau; on synth_counts_1m up to 12 epochs with a 0.001 plateau threshold); numerical encoders carry no L2.
Encoders: scalar, bucket_equal_width and bucket_equal_freq (20 buckets), log_square, autodis (defaults: H = 20, skip
form, tau = 1, weighted average, log1p input for skewed counts).

Each finished run is a record file under <work>/records/<dataset>/ (resumable; several copies started side by
side share the queue through claim files). Writes bench/results/numeric_<dataset>.json and, with --write-md, a
table in bench/log/unsorted.md.

    .venv/bin/python bench/numeric_bench.py [--datasets ml100k,synth_counts_1m] [--seeds 2026,2027,2028]
                                            [--encoders scalar,autodis] [--epochs 50] [--threads 1] [--write-md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import sys
import time
from pathlib import Path

from zoo_bench import claim, grouped, mean_sd

from recnas.fileio import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "derived"
SETTING = ["model.name=deepfm", "model.embedding_dim=10", "model.mlp=[400,400,400]", "trainer.batch_size=4096",
           "trainer.optimizer=adam", "trainer.lr=0.001", "trainer.embedding_l2=0.1", "trainer.patience=2",
           "trainer.reduce_lr_factor=0.1", "trainer.progress=false", "model.numerical_buckets=20"]
# On 800k train rows every run is still improving after 8 epochs at lr 1e-3, and a 10x lr cut then lifts valid AUC
# by ~0.01 (log_square seed 2026: 0.8629 -> 0.8754 at epoch 7, while the other encoders never plateaued): a plateau
# of 0.001 valid AUC counts as a bad epoch, so every encoder gets its lr cut when its own progress slows.
SYNTH_SETTING = ["trainer.min_delta=0.001"]
ENCODERS = ["scalar", "bucket_equal_width", "bucket_equal_freq", "log_square", "autodis"]
CRITEO_CARDS = [1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992,
                5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572]


def synth_counts(work: Path, rows: int = 1_000_000) -> Path:
    """The Criteo-shaped synthetic dataset (written once; its truth.json names each numerical field's effect)."""
    from recnas.data.synthetic import SynthConfig, write_synthetic

    out = work / "data" / "synth_counts_1m"
    if not (out / "truth.json").exists():
        cfg = SynthConfig(rows=rows, seed=0, cat_cardinalities=[min(c, 10_000) for c in CRITEO_CARDS],
                          n_numerical=13, numerical_kind="counts", n_multi=0, n_noise_cat=2, file_format="parquet")
        write_synthetic(out, cfg)
    return out


def dataset_path(name: str, work: Path) -> Path:
    return synth_counts(work) if name == "synth_counts_1m" else DATA / name


def run(dataset: str, encoder: str, seed: int, epochs: int, threads: int, work: Path) -> dict:
    from recnas.experiment.config import load_config
    from recnas.experiment.run import run_train

    extra = SYNTH_SETTING if dataset == "synth_counts_1m" else []
    cfg = load_config(None, [*SETTING, *extra, f"model.numerical_encoder={encoder}", f"seed={seed}",
                             f"threads={threads}",
                             f"trainer.epochs={epochs}", f"data.path={dataset_path(dataset, work)}",
                             f"data.cache_dir={work / 'cache'}"])
    t = time.perf_counter()
    res = run_train(cfg, work / "runs" / f"{dataset}-{encoder}-{seed}",
                    log=lambda m: print(f"  [{dataset} {encoder} {seed}] {m}", flush=True))
    m = res.metrics
    return {"dataset": dataset, "encoder": encoder, "seed": seed, "test_auc": m["test_auc"],
            "test_logloss": m["test_logloss"], "valid_auc": m["valid_auc"], "params": m["params"],
            "embedding_params": m["embedding_params"], "train_samples_per_s": m["train_samples_per_s"],
            "epochs": m["epochs"], "best_epoch": m["best_epoch"], "wall_seconds": time.perf_counter() - t,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for enc, rs in grouped(rows, "encoder").items():

        def stat(key: str, rs: list[dict] = rs) -> tuple[float, float]:
            return mean_sd(rs, key)

        out.append({"encoder": enc, "seeds": len(rs), "test_auc": stat("test_auc"),
                    "test_logloss": stat("test_logloss"), "valid_auc": stat("valid_auc"),
                    "params": rs[0]["params"], "embedding_params": rs[0]["embedding_params"],
                    "train_samples_per_s": stat("train_samples_per_s")[0], "epochs": stat("epochs")[0],
                    "per_seed": {r["seed"]: round(r["test_auc"], 4) for r in rs}})
    return out


def table(dataset: str, summary: list[dict]) -> str:
    lines = [f"### {dataset}", "", "| encoder | test AUC (mean ± sd) | test logloss | valid AUC | params | EP | "
             "train samples/s | epochs | per seed |", "|---|---|---|---|---|---|---|---|---|"]
    for s in sorted(summary, key=lambda s: -s["test_auc"][0]):
        seeds = ", ".join(f"{v:.4f}" for v in s["per_seed"].values())
        lines.append(f"| {s['encoder']} | {s['test_auc'][0]:.4f} ± {s['test_auc'][1]:.4f} | "
                     f"{s['test_logloss'][0]:.4f} | {s['valid_auc'][0]:.4f} | {s['params']:,} | "
                     f"{s['embedding_params']:,} | {s['train_samples_per_s']:,.0f} | {s['epochs']:.1f} | {seeds} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="ml100k,synth_counts_1m")
    ap.add_argument("--encoders", default=",".join(ENCODERS))
    ap.add_argument("--seeds", default="2026,2027,2028")
    ap.add_argument("--epochs", type=int, default=50, help="maximum epochs (early stopping usually ends sooner)")
    ap.add_argument("--synth-epochs", type=int, default=12, help="maximum epochs on synth_counts_1m (800k train rows)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default=str(ROOT / "bench" / "work" / "numeric"))
    ap.add_argument("--write-md", action="store_true")
    ap.add_argument("--tag", default="", help="suffix of the results file (numeric_<dataset><tag>.json)")
    args = ap.parse_args()
    work = Path(args.work)
    seeds = [int(s) for s in args.seeds.split(",")]
    encoders = args.encoders.split(",")
    md = []
    for dataset in args.datasets.split(","):
        records = work / "records" / dataset
        records.mkdir(parents=True, exist_ok=True)
        dataset_path(dataset, work)  # generate the synthetic data before workers race for it
        for seed in seeds:
            for enc in encoders:
                path = records / f"{enc}-{seed}.json"
                if path.exists() or not claim(path):
                    continue
                epochs = args.synth_epochs if dataset == "synth_counts_1m" else args.epochs
                row = run(dataset, enc, seed, epochs, args.threads, work)
                write_text_atomic(path, json.dumps(row, indent=2))
                path.with_suffix(".claim").unlink(missing_ok=True)
                print(f"{dataset} {enc} seed {seed}: test AUC {row['test_auc']:.4f}, "
                      f"logloss {row['test_logloss']:.4f}, {row['epochs']} epochs, {row['wall_seconds']:.0f} s",
                      flush=True)
        rows = [json.loads((records / f"{e}-{s}.json").read_text()) for s in seeds for e in encoders
                if (records / f"{e}-{s}.json").exists()]
        if len(rows) < len(seeds) * len(encoders):
            print(f"{dataset}: {len(rows)} of {len(seeds) * len(encoders)} runs done (others run elsewhere)")
            continue
        summary = summarize(rows)
        header = {"date": dt.date.today().isoformat(), "command": " ".join(sys.argv), "setting": SETTING,
                  "synth_setting": SYNTH_SETTING,
                  "machine": f"{platform.machine()}, {platform.python_version()}", "max_epochs": args.epochs,
                  "synth_epochs": args.synth_epochs, "threads": args.threads}
        out = ROOT / "bench" / "results" / f"numeric_{dataset}{args.tag}.json"
        write_text_atomic(out, json.dumps({**header, "summary": summary, "runs": rows}, indent=2))
        print(table(dataset, summary))
        md.append(table(dataset, summary))
    if args.write_md and md:
        import torch

        path = ROOT / "bench" / "log" / "unsorted.md"
        body = path.read_text() if path.exists() else "# Benchmarks\n"
        body += (f"\n## Numerical encoders (`bench/numeric_bench.py`)\n\n{dt.date.today().isoformat()}, "
                 f"`{' '.join(['python', *sys.argv])}`; {platform.machine()}, 2 cpus, "
                 f"Python {platform.python_version()}, "
                 f"torch {torch.__version__}, {args.threads} threads; DeepFM, seeds {args.seeds}, up to {args.epochs} "
                 f"epochs ({args.synth_epochs} on synth_counts_1m, with {', '.join(SYNTH_SETTING)}); "
                 f"setting: {', '.join(SETTING)}.\n\n" + "\n".join(md))
        write_text_atomic(path, body)

if __name__ == "__main__":
    main()
