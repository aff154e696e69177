"""The `recnas` command line (Typer). Errors on bad input print one line, never a traceback."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from recnas.errors import ConfigError, RecnasError

app = typer.Typer(help="recnas: AutoML for recommender (CTR) models.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Inspect and prepare datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)



def _print_version(value: bool) -> None:
    if value:
        import recnas

        console.print(recnas.__version__)
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    """recnas: AutoML for recommender (CTR) models."""


FormatOpt = Annotated[
    str | None, typer.Option("--format", help="csv, parquet, libfm, criteo or avazu (default: detected)")
]
LabelOpt = Annotated[str | None, typer.Option("--label", help="label column (default: schema.yaml's, else detected "
                                                               "by name); sets data.label")]
PositiveOpt = Annotated[list[str] | None, typer.Option(
    "--positive", help="label value meaning positive, for a text label (repeat for several); sets data.positive")]
FieldsOpt = Annotated[str | None, typer.Option("--fields", help="comma-separated field names (e.g. for libFM)")]
BadRowOpt = Annotated[str, typer.Option("--on-bad-row", help="error (stop) or skip (drop and count) malformed rows")]


def _data_overrides(label: str | None, positive: list[str] | None) -> list[str]:
    """`--set` lines for --label and --positive (JSON-quoted, so a value such as `>50K` or `yes` stays text)."""
    out = [f"data.label={json.dumps(label)}"] if label is not None else []
    return out + ([f"data.positive={json.dumps(list(positive))}"] if positive else [])


def _source(path: Path, fmt: str | None, label: str | None, fields: str | None,  # noqa: ANN202
            positive: list[str] | None = None):
    from recnas.data.infer import sniff_format
    from recnas.data.schema import SourceFormat
    from recnas.data.source import open_dataset

    source_fmt = None
    if fmt is not None:
        sniffed = sniff_format(path) if path.is_file() else SourceFormat()
        if sniffed.kind == fmt:
            source_fmt = sniffed
        else:
            delimiter = "\t" if fmt == "criteo" else ","
            source_fmt = SourceFormat(kind=fmt, delimiter=delimiter, header=fmt not in ("criteo", "libfm"))
    names = [s.strip() for s in fields.split(",")] if fields else None
    return open_dataset(path, fmt=source_fmt, label=label, field_names=names, positive=positive)


@data_app.command("inspect")
def inspect_cmd(
    path: Annotated[Path, typer.Argument(help="dataset folder or data file")],
    fmt: FormatOpt = None, label: LabelOpt = None, fields: FieldsOpt = None, on_bad_row: BadRowOpt = "error",
    positive: PositiveOpt = None,
) -> None:
    """Print the (given or inferred) schema and a per-field summary of the train split."""
    from recnas.data.inspect import summarize

    source = _source(path, fmt, label, fields, positive)
    s = summarize(source, on_bad_row=on_bad_row)
    for note in s.notes:
        console.print(note)
    console.print(f"format: {s.schema.format.kind}; label: {s.schema.label}; {len(s.schema.fields)} fields "
                  f"({len(s.schema.categorical)} categorical, {len(s.schema.numerical)} numerical, "
                  f"{len(s.schema.multi_categorical)} multi-valued)")
    splits = Table(title="splits")
    for col in ("split", "rows", "positives", "positive rate", "skipped rows", "file"):
        splits.add_column(col)
    for name, info in s.splits.items():
        splits.add_row(name, f"{info['rows']:,}", f"{info['positives']:,}", f"{info['positive_rate']:.4f}",
                       str(info["skipped"]), info["path"])
    console.print(splits)
    table = Table(title=f"fields (statistics of {source.train.name})")
    for col in ("field", "type", "cardinality", "missing", "top values", "notes"):
        table.add_column(col)
    for f in s.fields:
        top = ", ".join(f"{t} ({share:.1%})" for t, share in f.top)
        card = "-" if f.cardinality is None else f"{f.cardinality:,}"
        table.add_row(f.name, f.type, card, f"{f.missing_rate:.1%}", top, f.extra)
    console.print(table)


@data_app.command("prepare")
def prepare_cmd(
    path: Annotated[Path, typer.Argument(help="dataset folder (train/valid/test [+ schema.yaml]) or data file")],
    cache_dir: Annotated[
        Path | None, typer.Option(help="cache root (default $RECNAS_CACHE_DIR or ~/.cache/recnas)")
    ] = None,
    force: Annotated[bool, typer.Option(help="re-encode even when a valid cache exists")] = False,
    fmt: FormatOpt = None, label: LabelOpt = None, fields: FieldsOpt = None, on_bad_row: BadRowOpt = "error",
    positive: PositiveOpt = None,
) -> None:
    """Encode the dataset once into memory-mappable arrays (a no-op when already prepared)."""
    from recnas.data.cache import prepare

    source = _source(path, fmt, label, fields, positive)
    for note in source.notes:
        console.print(note)
    t0 = time.perf_counter()
    ds = prepare(source, cache_dir, on_bad_row=on_bad_row, force=force, log=console.print)
    dt = time.perf_counter() - t0
    verb = "reused (no-op)" if ds.reused else "prepared"
    console.print(f"{verb}: {ds.path} in {dt:.2f} s")
    for split in ds.splits:
        info = ds.manifest["splits"][split]
        rate = info["positives"] / max(info["rows"], 1)
        console.print(f"  {split}: {info['rows']:,} rows, positive rate {rate:.4f}")


@app.command("synth")
def synth_cmd(
    out: Annotated[Path, typer.Option(help="output dataset folder")],
    rows: Annotated[int, typer.Option(help="total rows (split 80/10/10)")] = 100_000,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    cardinalities: Annotated[
        str | None, typer.Option(help="categorical cardinalities, e.g. 2000,1500,500,100,40,12,200,30")
    ] = None,
    numerical: Annotated[int, typer.Option(help="numerical fields (n1 has the U-shaped effect)")] = 2,
    multi: Annotated[int, typer.Option(help="multi-valued fields")] = 1,
    noise: Annotated[int, typer.Option(help="categorical fields with no signal (the last ones)")] = 2,
    interactions: Annotated[
        str | None, typer.Option(help="planted pairs as a*b:rank, comma-separated, e.g. c1*c2:8,c5*c6:2")
    ] = None,
    third_order: Annotated[bool, typer.Option(help="also plant a third-order interaction")] = False,
    file_format: Annotated[str, typer.Option("--file-format", help="csv or parquet")] = "csv",
    profile: Annotated[str, typer.Option(help="default: the demo's fields, built in memory; criteo: 13 counts and "
                                         "26 categorical fields of Criteo's cardinalities, written block by block "
                                         "in bounded memory at any --rows (the field options above do not apply)")
                       ] = "default",
    max_cardinality: Annotated[int | None, typer.Option(help="criteo profile: cap every field's ids")] = None,
) -> None:
    """Write a synthetic dataset with a planted truth (truth.json) to OUT."""
    from recnas.data.synthetic import DEFAULT_CARDINALITIES, Interaction, SynthConfig, write_synthetic

    if profile not in ("default", "criteo"):
        raise ConfigError(f"--profile {profile!r}: expected default or criteo")
    if profile == "criteo":
        from recnas.data.scale_synth import ScaleConfig, write_scale_synthetic

        t0 = time.perf_counter()
        truth = write_scale_synthetic(out, ScaleConfig(rows=rows, seed=seed, max_cardinality=max_cardinality),
                                      log=console.print)
        console.print(f"wrote {out} ({rows:,} rows: {truth['rows']}) in {time.perf_counter() - t0:.1f} s; "
                      f"Bayes test AUC {truth['bayes_test_auc']:.4f} (first {truth['bayes_rows']:,} test rows)")
        return

    cards = list(DEFAULT_CARDINALITIES)
    if cardinalities:
        try:
            cards = [int(c) for c in cardinalities.split(",")]
        except ValueError:
            raise ConfigError(f"--cardinalities {cardinalities!r}: expected integers separated by commas") from None
    planted = None
    if interactions:
        planted = []
        for item in interactions.split(","):
            try:
                pair, rank = item.split(":")
                planted.append(Interaction(pair.split("*"), int(rank)))
            except ValueError:
                raise ConfigError(f"--interactions item {item!r}: expected a*b:rank (or a*b*c:rank)") from None
    cfg = SynthConfig(rows=rows, seed=seed, cat_cardinalities=cards, n_numerical=numerical, n_multi=multi,
                      n_noise_cat=noise, interactions=planted, third_order=third_order, file_format=file_format)
    t0 = time.perf_counter()
    truth = write_synthetic(out, cfg)
    console.print(f"wrote {out} ({rows:,} rows: {truth['rows']}) in {time.perf_counter() - t0:.1f} s")
    for fields_, rank in zip(truth["interactions"], truth["interaction_ranks"], strict=True):
        console.print(f"  planted interaction {' x '.join(fields_)} (rank {rank})")
    noise, u_shaped = ", ".join(truth["noise_fields"]), ", ".join(truth["nonlinear_numerical_fields"])
    console.print(f"  noise fields: {noise}; U-shaped: {u_shaped}")
    console.print(f"  positive rate {truth['positive_rate']:.3f}; Bayes-optimal test AUC {truth['bayes_test_auc']:.4f}")


NprocOpt = Annotated[int, typer.Option(
    help="data-parallel processes on this machine (torchrun --standalone); the batch size stays the global one")]


def _data_parallel(nproc: int, what: str) -> bool:
    """Launch this command as a job of `nproc` processes (True: done here), or join the job that launched it."""
    from recnas.train import distributed

    if distributed.launched():
        distributed.init_from_env()
        return False
    if nproc == 1:
        return False
    from recnas.experiment.launch import launch_local, strip_option

    code = launch_local(nproc, strip_option(sys.argv[1:], "--nproc"), what)
    if code:
        sys.stdout.flush()
        os._exit(code)
    return True


def _say(text: str) -> None:
    """Print on rank 0 only (every rank of a data-parallel job runs the same command)."""
    from recnas.train import distributed

    if distributed.is_main():
        console.print(text)


@app.command("train")
def train_cmd(
    config: Annotated[
        Path | None, typer.Argument(help="YAML config (optional when --data and --model are given)")
    ] = None,
    data: Annotated[str | None, typer.Option(help="dataset folder (sets data.path)")] = None,
    model: Annotated[str | None, typer.Option(help="zoo model name (sets model.name); see `recnas models`")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/<model>-<dataset>-<time>)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a config key, e.g. --set trainer.lr=1e-3")
    ] = None,
    numerical_encoder: Annotated[str | None, typer.Option(
        help="numerical encoder of every numerical field (sets model.numerical_encoder): auto, scalar, "
             "bucket_equal_width, bucket_equal_freq, log_square, levels or autodis")] = None,
    label: LabelOpt = None,
    positive: PositiveOpt = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar and no per-epoch lines")] = False,
    force: Annotated[bool, typer.Option(help="replace a run of another config in --out (a killed run of the same "
                                             "config resumes without it)")] = False,
    nproc: NprocOpt = 1,
) -> None:
    """Train a zoo model with early stopping on valid AUC; writes config, schema, weights and metrics.

    A killed run resumes from its last finished epoch when the same command is run again.
    """
    from recnas.experiment.config import load_config
    from recnas.experiment.run import run_train

    if _data_parallel(nproc, "train"):
        return

    overrides = list(set_ or []) + _data_overrides(label, positive)
    if numerical_encoder is not None:
        overrides.append(f"model.numerical_encoder={numerical_encoder}")
    cfg = load_config(config, overrides)
    if data is not None:  # set as given, not parsed as YAML (a folder may be called `2024` or `yes`)
        cfg.data.path = data
    if model is not None:
        cfg.model.name = model
    if quiet:
        cfg.trainer.progress = False
    res = run_train(cfg, out, log=(lambda _m: None) if quiet else console.print, force=force)
    m = res.metrics
    _say(f"run: {res.path}")
    _say(f"test AUC {m['test_auc']:.4f}, test logloss {m['test_logloss']:.4f} "
                  f"(valid AUC {m['valid_auc']:.4f}, "
                  f"best epoch {m['best_epoch']} of {m['epochs']}); {m['params']:,} parameters, "
                  f"{m['embedding_params']:,} embedding parameters; {m['train_samples_per_s']:,.0f} train samples/s")
    if m.get("autodis"):
        _say(f"AutoDis soft buckets p(h|x): {m['autodis']['json']} (plot {m['autodis']['plot']})")


@app.command("tune")
def tune_cmd(
    config: Annotated[Path | None, typer.Argument(help="YAML config (optional with --data and --model)")] = None,
    data: Annotated[str | None, typer.Option(help="dataset folder (sets data.path)")] = None,
    model: Annotated[str | None, typer.Option(help="zoo model name (sets model.name)")] = None,
    out: Annotated[Path, typer.Option(help="tune folder (a killed tune resumes from it)")] = Path("runs/tune"),
    trials: Annotated[int, typer.Option(help="trials to finish (completed or pruned)")] = 20,
    space: Annotated[Path | None, typer.Option(help="search space YAML (default: the shipped tune_space.yaml)")] = None,
    jobs: Annotated[int, typer.Option(help="trials trained side by side, in as many processes")] = 1,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config key")] = None,
    quiet: Annotated[bool, typer.Option(help="no line per trial")] = False,
) -> None:
    """Tune a zoo model's trainer and model settings (Optuna TPE, median pruning on valid AUC); writes best.yaml."""
    from recnas.experiment.config import load_config
    from recnas.experiment.tune import load_space, run_tune

    cfg = load_config(config, list(set_ or []))
    if data is not None:
        cfg.data.path = data
    if model is not None:
        cfg.model.name = model
    res = run_tune(cfg, out, trials, load_space(space), log=(lambda _m: None) if quiet else console.print, jobs=jobs)
    m = res.best_metrics
    console.print(f"best of {len(res.trials)} trials: valid AUC {m['valid_auc']:.4f}, test AUC {m['test_auc']:.4f}; "
                  f"{res.best_params}", markup=False)
    console.print(f"config: {res.path / 'best.yaml'} (train it with `recnas train {res.path / 'best.yaml'}`)")


@app.command("auto")
def auto_cmd(
    data: Annotated[str, typer.Option(help="dataset folder (train, valid and test files)")],
    out: Annotated[Path, typer.Option(help="auto folder (a killed run resumes from it)")] = Path("runs/auto"),
    max_ep_fraction: Annotated[float, typer.Option(help="memory budget: the chosen model's embedding parameters "
                                                        "as a fraction of the tuned full-width DeepFM's")] = 0.3,
    time_budget: Annotated[str, typer.Option(help="wall time for everything: 30m, 2h, 1h30m, 90s")] = "1h",
    seed: Annotated[int, typer.Option(help="seed of every candidate")] = 2026,
    threads: Annotated[int, typer.Option(help="torch threads")] = 2,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config key of every candidate")] = None,
    quiet: Annotated[bool, typer.Option(help="only the result")] = False,
) -> None:
    """Tune the zoo, run the searches that fit the data, choose the best model under the memory budget."""
    from recnas.experiment.auto import parse_duration, run_auto

    res = run_auto(data, out, max_ep_fraction, parse_duration(time_budget), seed, threads,
                   overrides=list(set_ or []),
                   log=(lambda _m: None) if quiet else (lambda m: console.print(m, markup=False)))  # "[nis] ..."
    c = res.chosen
    console.print(f"chosen: {c['candidate']}: test AUC {c['test_auc']:.4f} (valid {c['valid_auc']:.4f}), "
                  f"{c['embedding_params']:,} embedding parameters ({c['ep_fraction']:.1%} of the tuned DeepFM)",
                  markup=False)
    console.print(f"model: {res.path / 'model'}; leaderboard: {res.path / 'leaderboard.csv'}; "
                  f"front: {res.path / 'pareto.png'}", markup=False)


def _load_planted(run_dir: Path) -> dict | None:
    """The report's planted-against-found view (synthetic data with a truth.json), if it has one."""
    try:
        return json.loads((run_dir / "report.json").read_text()).get("planted")
    except (OSError, json.JSONDecodeError):
        return None


def _print_search(res, warnings: bool = True) -> None:  # noqa: ANN001
    arch, m, b = res.arch, res.retrain, res.baseline
    from recnas.experiment.run import load_config_file
    from recnas.methods import get_method

    method = get_method(arch["method"])(load_config_file(res.path / "config.yaml"))
    for line in method.summary(arch):
        console.print(line)
    from recnas.experiment.planted import summary_lines

    planted = _load_planted(res.path)
    for line in summary_lines(planted) if planted else []:
        console.print(line, markup=False)
    for line in method.warnings(arch) if warnings else []:  # else the run's log printed them
        console.print(f"warning: {line}", markup=False)
    console.print(f"searched {arch['method']}-{arch['model']}: test AUC {m['test_auc']:.4f}, logloss "
                  f"{m['test_logloss']:.4f}, {m['embedding_params']:,} embedding parameters")
    if b is not None:
        console.print(f"baseline {b['model']}: test AUC {b['test_auc']:.4f}, logloss {b['test_logloss']:.4f}, "
                      f"{b['embedding_params']:,} embedding parameters")
    control = res.path / "control" / "metrics.json"
    if control.is_file():
        c = json.loads(control.read_text())
        console.print(f"random control at the same EP: test AUC {c['test_auc']:.4f}, logloss {c['test_logloss']:.4f}, "
                      f"{c['embedding_params']:,} embedding parameters")
    console.print(f"run: {res.path}")
    console.print(f"report: {res.report}")


@app.command("search")
def search_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config with a search section (e.g. configs/autofis_synth.yaml)")],
    data: Annotated[str | None, typer.Option(help="dataset folder (sets data.path)")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/<method>-<model>-<dataset>-<time>); "
                                            "an unfinished one is resumed")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a config key, e.g. --set search.epochs=4")
    ] = None,
    label: LabelOpt = None,
    positive: PositiveOpt = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar and no per-epoch lines")] = False,
    nproc: NprocOpt = 1,
) -> None:
    """Search an architecture (`recnas methods` lists the methods), retrain it, train the baseline, write the report."""
    from recnas.experiment.config import load_config
    from recnas.experiment.search import run_search
    from recnas.train import distributed

    if _data_parallel(nproc, "search"):
        return

    cfg = load_config(config, list(set_ or []) + _data_overrides(label, positive))
    if data is not None:
        cfg.data.path = data
    if quiet:
        cfg.trainer.progress = False
    res = run_search(cfg, out, log=(lambda _m: None) if quiet else console.print)
    if distributed.is_main():
        _print_search(res, warnings=quiet)


@app.command("retrain")
def retrain_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by `recnas search`")],
    quiet: Annotated[bool, typer.Option(help="no per-epoch lines")] = False,
) -> None:
    """Re-run the retrain stage alone from the run's search/arch.json, then refresh the report."""
    from recnas.experiment.search import run_retrain

    _print_search(run_retrain(run_dir, log=(lambda _m: None) if quiet else console.print))


@app.command("report")
def report_cmd(run_dir: Annotated[Path, typer.Argument(help="a run folder written by `recnas search`")]) -> None:
    """Rebuild report.json and report.html from a search run folder."""
    from recnas.experiment.report import write_report

    console.print(f"report: {write_report(run_dir)}")


@app.command("models")
def models_cmd() -> None:
    """List the model zoo with the paper each model comes from."""
    from recnas.nn.models import MODELS, ZOO

    table = Table(title="model zoo")
    for col in ("name", "equal dims", "paper"):
        table.add_column(col)
    for name in ZOO:
        cls = MODELS[name]
        table.add_row(name, "yes" if cls.needs_equal_dims else "no", cls.paper)
    console.print(table)


@app.command("methods")
def methods_cmd() -> None:
    """List the registered search methods with what each decides and its paper."""
    from recnas.methods import METHODS, load_builtin_methods

    load_builtin_methods()
    table = Table(title="search methods (search.method)")
    for col in ("name", "decides", "paper"):
        table.add_column(col)
    for name in sorted(METHODS):
        cls = METHODS[name]
        table.add_row(name, cls.decides, cls.paper)
    console.print(table)


@app.command("predict")
def predict_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by `recnas train` (or its export)")],
    data: Annotated[Path, typer.Argument(help="a data file in the training layout (or a folder: its test split)")],
    out: Annotated[Path | None, typer.Option(help="scores CSV (default RUN_DIR/predictions.csv)")] = None,
    engine: Annotated[str, typer.Option(help="torch (the run's weights) or onnx (its `recnas export`: "
                                              "preprocess.json + onnxruntime, no torch)")] = "torch",
) -> None:
    """Score DATA with a trained run; unseen categories go to the OOV id and are counted."""
    out = out or run_dir / "predictions.csv"
    if engine == "torch":
        from recnas.experiment.run import predict_file

        summary, report = predict_file(run_dir, data, out)
    elif engine == "onnx":
        from recnas.serving import predict_onnx

        summary, report = predict_onnx(run_dir, data, out)
    else:
        raise ConfigError(f"--engine must be torch or onnx, got {engine!r}")
    console.print(f"wrote {summary['out']} ({summary['rows']:,} scores for {summary['path']})")
    unseen = {k: v for k, v in report.oov.items() if v}
    if unseen:
        console.print("unseen values -> OOV id: " + ", ".join(f"{k} {v:,}" for k, v in unseen.items()))
    if "auc" in summary:
        console.print(f"AUC {summary['auc']:.4f}, logloss {summary['logloss']:.4f}")


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by `recnas train`, or a search run (its "
                                                 "retrain/)")],
    out: Annotated[Path | None, typer.Option(help="output folder (default: the model's folder /export)")] = None,
) -> None:
    """Export a trained model as model.onnx + preprocess.json, scored by onnxruntime (`predict --engine onnx`)."""
    from recnas.experiment.export import export_run

    s = export_run(run_dir, out)
    console.print(f"wrote {s['model_onnx']} ({s['bytes']:,} bytes; {s['embedding_params']:,} embedding parameters) "
                  f"and preprocess.json; onnxruntime matches torch within {s['max_abs_diff']:.1e} on "
                  f"{s['probe_rows']} probe rows")


@app.command("version")
def version_cmd() -> None:
    """Print the recnas version."""
    import recnas

    console.print(recnas.__version__)


def _click_exceptions():  # noqa: ANN202
    """Click's exception classes (typer vendors click from 0.29 on)."""
    try:
        from typer._click import exceptions
    except ImportError:  # an older typer on the standalone click package
        from click import exceptions  # type: ignore[no-redef]
    return exceptions


def main() -> None:
    """Console entry point: run the app, turning recnas and usage errors into one `error:` line each."""
    click_errors = _click_exceptions()
    message = None
    in_job = int(os.environ.get("WORLD_SIZE", "1")) > 1  # a rank of a data-parallel job (torchrun, --nproc)
    if in_job:  # c10d's C++ log lines (a refused connection, with its stack) would bury the one error line
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    try:
        code = app(standalone_mode=False)
        if in_job:
            from recnas.train import distributed

            distributed.shutdown()
        if isinstance(code, int) and code:
            sys.exit(code)
    except RecnasError as e:
        message = str(e)
    except RuntimeError as e:  # a collective that lost a rank (killed, or failed with its own error line)
        if not in_job:
            raise
        message = (f"lost contact with the other ranks of the data-parallel job "
                   f"({(str(e).splitlines() or [type(e).__name__])[0][:160]})")
    except click_errors.NoArgsIsHelpError as e:  # `recnas` or `recnas data` alone: the help, as before
        e.show()
        sys.exit(e.exit_code)
    except click_errors.UsageError as e:  # an unknown option, a missing argument: the same form as every error
        where = e.ctx.command_path if e.ctx is not None else "recnas"
        message = f"{e.format_message()} (see `{where} --help`)"
    except click_errors.ClickException as e:
        message = e.format_message()
    except typer.Abort:
        message = "aborted"
    if message is not None:
        rank = os.environ.get("RANK", "0") if in_job else "0"
        print(f"{'' if rank == '0' else f'rank {rank}: '}error: {message}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # Leave without interpreter teardown: a pyarrow reader thread interrupted by the error can make the C++
        # runtime abort during teardown (about 1 exit in 15), turning a clean exit 2 into a crash.
        os._exit(2)


if __name__ == "__main__":
    main()
