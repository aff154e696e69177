"""`recnas tune`: trials over a YAML space, pruning on valid AUC, best.yaml, and a killed tune that resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from recnas.errors import ConfigError
from recnas.experiment.config import load_config
from recnas.experiment.tune import PruneOnValidAUC, load_space, run_tune, start_params
from recnas.train.hooks import Hook

SMALL = ["threads=1", "model.name=deepfm", "model.mlp=[16]", "trainer.epochs=2", "trainer.batch_size=512",
         "trainer.progress=false"]
SPACE = ("trainer.lr: {type: float, low: 1.0e-4, high: 3.0e-2, log: true}\n"
         "model.embedding_dim: {type: categorical, choices: [4, 8]}\n"
         "model.mlp: {type: categorical, choices: [[16], [16, 8]]}\n")


def config(synth_dir: Path, cache: Path, *extra: str):  # noqa: ANN201
    return load_config(None, [*SMALL, f"data.path={synth_dir}", f"data.cache_dir={cache}", *extra])


def space(tmp_path: Path) -> dict:
    (tmp_path / "space.yaml").write_text(SPACE)
    return load_space(tmp_path / "space.yaml")


def test_tune_finishes_its_trials_and_writes_the_best_config(synth_dir: Path, tmp_path: Path) -> None:
    res = run_tune(config(synth_dir, tmp_path / "cache"), tmp_path / "tune", 4, space(tmp_path))
    rows = res.trials
    assert len(rows) == 4 and {r["state"] for r in rows} <= {"COMPLETE", "PRUNED"}
    done = [r for r in rows if r["state"] == "COMPLETE"]
    best = max(done, key=lambda r: r["valid_auc"])
    assert res.best_metrics["valid_auc"] == pytest.approx(best["valid_auc"])
    cfg = load_config(tmp_path / "tune" / "best.yaml")  # a config `recnas train` takes as it is
    assert cfg.trainer.lr == pytest.approx(best["trainer.lr"])
    assert cfg.model.embedding_dim == best["model.embedding_dim"]
    assert (tmp_path / "tune" / "trials.csv").read_text().count("\n") == 5
    import csv

    with open(tmp_path / "tune" / "trials.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4 and all(len(r) == len(table[0]) and None not in r for r in table)
    assert len({json.dumps(r["trainer.lr"]) for r in rows}) == 4  # TPE drew four different values


def test_the_default_space_loads_and_a_bad_space_is_a_clear_error(synth_dir: Path, tmp_path: Path) -> None:
    assert {"trainer.lr", "trainer.embedding_l2", "model.embedding_dim"} <= set(load_space())
    (tmp_path / "bad.yaml").write_text("trainer.lr: {type: float, low: 1.0, high: 0.1}\n")
    with pytest.raises(ConfigError, match="trainer.lr"):
        load_space(tmp_path / "bad.yaml")
    (tmp_path / "unknown.yaml").write_text("trainer.nope: {type: float, low: 0.1, high: 1.0}\n")
    with pytest.raises(ConfigError, match="nope"):
        run_tune(config(synth_dir, tmp_path / "cache"), tmp_path / "t", 2, load_space(tmp_path / "unknown.yaml"))
    assert not (tmp_path / "t" / "trials").exists()  # refused before any training


def test_the_prune_hook_stops_a_trial_that_trails() -> None:
    import optuna

    class Trial:
        def __init__(self, prune: bool) -> None:
            self.prune, self.reported = prune, []

        def report(self, value: float, step: int) -> None:
            self.reported.append((step, value))

        def should_prune(self) -> bool:
            return self.prune

    keep = PruneOnValidAUC(Trial(False))
    keep.on_epoch_end(None, 1, {"valid_auc": 0.7})
    assert keep.trial.reported == [(1, 0.7)] and not keep.pruned
    cut = PruneOnValidAUC(Trial(True))
    with pytest.raises(optuna.TrialPruned):
        cut.on_epoch_end(None, 1, {"valid_auc": 0.5})
    assert cut.pruned


class KillAtEpoch(Hook):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, metrics) -> None:  # noqa: ANN001
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_a_killed_tune_resumes_and_finishes_the_same_number_of_trials(synth_dir: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import recnas.experiment.tune as tune

    real = tune.run_train
    calls = {"n": 0}

    def killed_in_second_trial(cfg, out, log=None, hooks=()):  # noqa: ANN001, ANN202
        calls["n"] += 1
        extra = [KillAtEpoch(1)] if calls["n"] == 2 else []
        return real(cfg, out, log=log, hooks=[*hooks, *extra])

    monkeypatch.setattr(tune, "run_train", killed_in_second_trial)
    cfg = config(synth_dir, tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        run_tune(cfg, tmp_path / "tune", 3, space(tmp_path))
    monkeypatch.setattr(tune, "run_train", real)
    lines: list[str] = []
    res = run_tune(cfg, tmp_path / "tune", 3, space(tmp_path), log=lines.append)
    assert any("was killed" in ln for ln in lines)
    finished = [r for r in res.trials if r["state"] in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3
    killed = next(r for r in res.trials if r["state"] == "FAIL")
    rerun = [r for r in finished if r["trainer.lr"] == killed["trainer.lr"]]
    assert len(rerun) == 1  # the killed trial's values ran again
    assert yaml.safe_load((tmp_path / "tune" / "best.yaml").read_text())["trainer"]["epochs"] == 2


def test_tune_cli(synth_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from recnas.experiment.cli import app

    (tmp_path / "space.yaml").write_text(SPACE)
    sets = [x for o in [*SMALL, f"data.cache_dir={tmp_path / 'cache'}"] for x in ("--set", o)]
    res = CliRunner().invoke(app, ["tune", "--data", str(synth_dir), "--out", str(tmp_path / "t"), "--trials", "2",
                                   "--space", str(tmp_path / "space.yaml"), "--quiet", *sets])
    assert res.exit_code == 0, res.output
    assert "best of 2 trials" in res.output and (tmp_path / "t" / "best.yaml").is_file()


def test_trial_zero_runs_the_configs_own_values_so_tuning_never_ends_below_them(synth_dir: Path,
                                                                                tmp_path: Path) -> None:
    cfg = config(synth_dir, tmp_path / "cache", "trainer.lr=0.003", "model.embedding_dim=8")
    res = run_tune(cfg, tmp_path / "tune", 2, space(tmp_path))
    first = res.trials[0]
    assert first["trainer.lr"] == pytest.approx(0.003) and first["model.embedding_dim"] == 8
    assert first["model.mlp"] == [16]
    assert res.best_metrics["valid_auc"] >= first["valid_auc"]


def test_two_jobs_share_one_study_and_finish_the_trials(synth_dir: Path, tmp_path: Path) -> None:
    cfg = config(synth_dir, tmp_path / "cache", "threads=2")
    res = run_tune(cfg, tmp_path / "tune", 4, space(tmp_path), jobs=2)
    assert len(res.trials) == 4 and {r["state"] for r in res.trials} <= {"COMPLETE", "PRUNED"}
    folders = list((tmp_path / "tune" / "trials").iterdir())
    assert len(folders) == 4
    threads = {yaml.safe_load((f / "config.yaml").read_text())["threads"] for f in folders}
    assert threads == {1}  # the cores are split between the jobs


def test_the_space_start_values_run_right_after_the_default(synth_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(
        SPACE.replace("choices: [4, 8]}", "choices: [4, 8], start: [8, 4]}")
        .replace("choices: [[16], [16, 8]]}", "choices: [[16], [16, 8]], start: [[16, 8]]}"))
    cfg = config(synth_dir, tmp_path / "cache", "model.embedding_dim=4")
    res = run_tune(cfg, tmp_path / "tune", 3, load_space(tmp_path / "space.yaml"))
    got = [(r["model.embedding_dim"], r["model.mlp"], r["trainer.lr"]) for r in sorted(res.trials,
                                                                                         key=lambda r: r["trial"])]
    # trial 0: the config; trial 1: both keys' first start values; trial 2 (8 -> 4, mlp as trial 0) equals trial 0,
    # so it is dropped and TPE draws trial 2 (its lr is new)
    assert got[0] == (4, [16], pytest.approx(1e-3)) and got[1] == (8, [16, 8], pytest.approx(1e-3))
    assert got[2][2] != pytest.approx(1e-3)
    (tmp_path / "bad.yaml").write_text("model.embedding_dim: {type: categorical, choices: [4, 8], start: [16]}\n")
    with pytest.raises(ConfigError, match="start value"):
        load_space(tmp_path / "bad.yaml")


def test_a_null_start_value_keeps_trial_zeros_value(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(
        "model.embedding_norm: {type: categorical, choices: [false, true], start: [true, true]}\n"
        "model.embedding_dim: {type: categorical, choices: [4, 8, 32], start: [null, 32]}\n"
        "trainer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true, start: [null, 5.0e-3]}\n")
    cfg = load_config(None, ["model.embedding_dim=8", "trainer.lr=0.001"])
    rows = [{k: json.loads(v) if isinstance(v, str) else v for k, v in r.items()}
            for r in start_params(cfg, load_space(tmp_path / "space.yaml"))]
    assert rows == [{"model.embedding_norm": False, "model.embedding_dim": 8, "trainer.lr": 0.001},
                    {"model.embedding_norm": True, "model.embedding_dim": 8, "trainer.lr": 0.001},
                    {"model.embedding_norm": True, "model.embedding_dim": 32, "trainer.lr": 0.005}]
