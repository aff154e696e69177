"""The method conformance suite: every registered method, the toy of tests/methods/toy_method.py included.

Registering a method puts it here with no test edit: each runs search -> retrain -> baseline -> report through
`recnas search` on small synthetic data with its own `smoke` settings; its retrained folder is scored by
`recnas predict` importing nothing from the search layers, and, exported to ONNX, scores raw rows as torch does;
and a search killed right after a checkpoint, three times in a row, resumes to the arch.json of an uninterrupted
run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import recnas.checkpoint
from recnas.experiment.cli import app
from recnas.experiment.config import load_config
from recnas.experiment.search import run_search
from recnas.methods import METHODS, load_builtin_methods
from tests.export.parity import assert_onnx_matches_torch, hard_rows_csv
from tests.methods import toy_method  # noqa: F401  (registers the toy method: one file and its registration)

load_builtin_methods()
NAMES = sorted(METHODS)
COMMON = ["threads=1", "model.mlp=[16]", "trainer.epochs=2", "trainer.batch_size=512", "trainer.progress=false"]


def overrides(name: str, synth_dir: Path, cache: Path, *extra: str) -> list[str]:
    return [f"search.method={name}", *COMMON, *METHODS[name].smoke, f"data.path={synth_dir}",
            f"data.cache_dir={cache}", *extra]


def test_the_builtin_methods_and_the_toy_are_registered() -> None:
    assert {"autofis", "autodim", "nis", "esapn", "toy_dims"} <= set(NAMES)
    res = CliRunner().invoke(app, ["methods"])
    assert res.exit_code == 0 and all(n in res.output for n in ("autofis", "autodim", "nis", "esapn"))


@pytest.mark.parametrize("name", NAMES)
def test_search_retrain_report_and_predict(name: str, synth_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    sets = [x for o in overrides(name, synth_dir, tmp_path / "cache") for x in ("--set", o)]
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n")
    res = CliRunner().invoke(app, ["search", str(config), "--out", str(run), "--quiet", *sets])
    assert res.exit_code == 0, res.output
    arch = json.loads((run / "search" / "arch.json").read_text())
    assert arch["method"] == name and {"model", "sample", "space_fingerprint"} <= set(arch)
    retrain = json.loads((run / "retrain" / "metrics.json").read_text())
    baseline = json.loads((run / "baseline" / "metrics.json").read_text())
    assert 0 < retrain["test_auc"] < 1 and 0 < baseline["test_auc"] < 1
    report = json.loads((run / "report.json").read_text())
    assert report["method"] == name and report["results"]["searched"]["test_auc"] == retrain["test_auc"]
    assert (run / "report.html").stat().st_size > 1000
    warnings = report["warnings"]  # the method's warnings, printed by the CLI (this run is --quiet) and reported
    printed = " ".join(res.output.split())  # the console wraps long lines
    assert isinstance(warnings, list) and all(" ".join(f"warning: {w}".split()) in printed for w in warnings)
    # the retrained folder loads with recnas.nn alone, and scores the test split as the retrain did
    probe = ("import json, sys\n"
             "from recnas.experiment.run import predict_file\n"
             f"s, _ = predict_file({str(run / 'retrain')!r}, {str(synth_dir / 'test.csv')!r}, "
             f"{str(tmp_path / 'p.csv')!r})\n"
             "layers = sorted({m.split('.')[1] for m in sys.modules if m.startswith('recnas.')})\n"
             "print(json.dumps({'auc': s['auc'], 'layers': layers}))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    scored = json.loads(out.splitlines()[-1])
    assert not {"space", "search"} & set(scored["layers"]), scored["layers"]
    assert abs(scored["auc"] - retrain["test_auc"]) < 1e-6
    # exported, the retrained model scores raw rows (unseen, missing, empty values) through onnxruntime as torch does
    exported = assert_onnx_matches_torch(run, hard_rows_csv(synth_dir, tmp_path / "hard.csv"), tmp_path)
    assert exported["embedding_params"] == retrain["embedding_params"]


class Killed(BaseException):
    """What a kill -9 right after a checkpoint leaves: the checkpoint on disk, nothing after it."""


@pytest.mark.parametrize("name", NAMES)
def test_a_search_killed_after_each_of_three_checkpoints_resumes_to_the_same_arch(
        name: str, synth_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(None, overrides(name, synth_dir, tmp_path / "cache", "search.baseline=false"))
    whole = run_search(cfg, tmp_path / "whole").arch
    original = recnas.checkpoint.write_atomic
    saves = {"n": 0, "kill_at": 0}

    def save_then_die(path, write):  # noqa: ANN001, ANN202
        original(path, write)
        if path.parent.name != "search":  # the retrain's and baseline's checkpoints: tests/test_resume.py
            return
        saves["n"] += 1
        if saves["n"] == saves["kill_at"]:
            raise Killed

    monkeypatch.setattr(recnas.checkpoint, "write_atomic", save_then_die)
    kills = 0
    for _point in (1, 2, 3):  # each run dies right after its first checkpoint: three successive points
        saves["n"], saves["kill_at"] = 0, 1
        try:
            resumed = run_search(cfg, tmp_path / "killed").arch
            break  # fewer checkpoints than kill points: the search finished
        except Killed:
            kills += 1
            assert any((tmp_path / "killed" / "search").glob("checkpoint.pt"))
    else:
        saves["kill_at"] = 0
        resumed = run_search(cfg, tmp_path / "killed").arch
    if (tmp_path / "whole" / "search" / "history.jsonl").exists():  # a search that trains (the toy only draws)
        assert kills == 3, f"{name} checkpointed fewer than 3 times in its smoke run"
    assert resumed["sample"] == whole["sample"] and resumed["space_fingerprint"] == whole["space_fingerprint"]
    assert not (tmp_path / "killed" / "search" / "checkpoint.pt").exists()


@pytest.mark.parametrize("name", NAMES)
def test_the_method_runs_with_its_auto_settings_behind_an_embedding_norm(name: str, synth_dir: Path, prepared,  # noqa: ANN001
                                                                         tmp_path: Path) -> None:
    """What `recnas auto` asks of a method: its auto settings, on a tuned model (embedding norm, AutoDis)."""
    from recnas.experiment.run import load_run, predict_file

    full = sum(f.cardinality for f in prepared.schema.categorical) * 8
    settings = METHODS[name].auto_settings(prepared.schema, 8, full // 3)
    if settings is None:
        pytest.skip(f"{name} does not run in recnas auto on this data")
    cfg = load_config(None, overrides(name, synth_dir, tmp_path / "cache", "model.embedding_dim=8",
                                      "model.embedding_norm=true", "model.numerical_encoder=autodis",
                                      "search.baseline=false", *settings))
    res = run_search(cfg, tmp_path / "run")
    _, _, model = load_run(tmp_path / "run" / "retrain")
    assert model.embedding_params() == res.retrain["embedding_params"]
    summary, _ = predict_file(tmp_path / "run" / "retrain", synth_dir, tmp_path / "p.csv")
    assert abs(summary["auc"] - res.retrain["test_auc"]) < 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_a_budget_below_one_float_per_id_is_met_as_auto_plans_it_or_refused(name: str, synth_dir: Path,
                                                                          prepared, tmp_path: Path) -> None:  # noqa: ANN001
    """A budget below one float per id (the model with the ids seen once sharing a row, at width 2): the method runs
    as `recnas auto` plans it (on the synthetic ids' shared tail, which a budget this small needs) and meets it, or
    says it cannot, naming what to change; a retrained model over the budget would be silent garbage on a memory
    frontier."""
    from recnas.errors import ConfigError
    from recnas.experiment.budget import search_plans, searched_budget
    from recnas.experiment.compact import ep_at_width, schema_at_floor
    from recnas.experiment.config import ExperimentConfig, apply_overrides
    from recnas.methods.base import categorical_rows

    cfg = load_config(None, overrides(name, synth_dir, tmp_path / "cache", "model.embedding_dim=8",
                                      "search.baseline=false"))
    full_ep, tables = searched_budget(cfg, prepared.schema, 1.0)
    max_total_ep = ep_at_width(cfg, schema_at_floor(prepared.schema, 2), 2)
    assert max_total_ep < full_ep - tables + categorical_rows(prepared.schema)  # below one float per id
    plan = search_plans(cfg, prepared.schema, max_total_ep).get(name)
    if plan is None:  # refused before any training: `recnas auto` leaves the method out at this budget
        return
    assert all(v == plan.floor for v in plan.config.data.min_count.values())  # NIS can give rare ids no float: 1
    cfg = ExperimentConfig.model_validate(apply_overrides(plan.config.model_dump(mode="json"), plan.settings))
    try:
        res = run_search(cfg, tmp_path / "run")
    except ConfigError as e:
        assert "search." in str(e), str(e)  # names a key to change
        return
    assert res.retrain["embedding_params"] <= max_total_ep * 1.005
