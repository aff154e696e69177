"""Run folders: kill -9 resumes byte-identically, one process at a time, other configs refused, no bad scores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from recnas.errors import ConfigError
from recnas.experiment.cli import app
from recnas.experiment.folder import RunFolderBusy, run_folder_lock

runner = CliRunner()
SMALL = ["--set", "model.mlp=[32]", "--set", "model.embedding_dim=8", "--set", "trainer.batch_size=256",
         "--set", "trainer.patience=10", "--quiet"]
SAME = ("valid_auc", "test_auc", "test_logloss", "epochs", "best_epoch")


def _train_cmd(synth_dir: Path, out: Path, cache: Path, epochs: int = 6) -> list[str]:
    return [sys.executable, "-m", "recnas", "train", "--data", str(synth_dir), "--model", "deepfm", "--out", str(out),
            "--set", f"data.cache_dir={cache}", "--set", f"trainer.epochs={epochs}", *SMALL]


def _checkpoint_epoch(path: Path) -> int:
    import torch

    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - being written
        return 0


def test_a_train_killed_with_sigkill_resumes_and_ends_byte_identical(synth_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    whole = tmp_path / "whole"
    subprocess.run(_train_cmd(synth_dir, whole, cache), check=True, capture_output=True)
    killed = tmp_path / "killed"
    for at_epoch in (2, 4):  # two kills, each after a different finished epoch
        proc = subprocess.Popen(_train_cmd(synth_dir, killed, cache), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while _checkpoint_epoch(killed / "checkpoint.pt") < at_epoch and proc.poll() is None:
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (killed / "metrics.json").exists(), "the run finished before the kill: make it longer"
    res = subprocess.run(_train_cmd(synth_dir, killed, cache), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (killed / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (whole, killed))
    assert {k: a[k] for k in SAME} == {k: b[k] for k in SAME}
    assert (killed / "train_log.jsonl").read_text().count("\n") == (whole / "train_log.jsonl").read_text().count("\n")
    assert not (killed / "checkpoint.pt").exists()


def test_a_finished_train_is_kept_another_config_refused_and_force_replaces(synth_dir: Path, tmp_path: Path) -> None:
    base = ["train", "--data", str(synth_dir), "--model", "fm", "--out", str(tmp_path / "run"),
            "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", "trainer.epochs=1", *SMALL]
    assert runner.invoke(app, base).exit_code == 0
    weights = (tmp_path / "run" / "model.safetensors").read_bytes()
    again = runner.invoke(app, base)
    assert again.exit_code == 0 and (tmp_path / "run" / "model.safetensors").read_bytes() == weights
    other = runner.invoke(app, [*base, "--set", "trainer.lr=0.01"])
    assert other.exit_code != 0 and isinstance(other.exception, ConfigError)
    assert "holds a run with a different config" in str(other.exception) and "--force" in str(other.exception)
    forced = runner.invoke(app, [*base, "--set", "trainer.lr=0.01", "--force"])
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "run" / "model.safetensors").read_bytes() != weights


def test_out_that_is_a_file_is_a_clear_error(synth_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    for cmd in (["train", "--data", str(synth_dir), "--model", "fm"],
                ["search", str(Path(__file__).resolve().parents[2] / "configs" / "autofis_synth.yaml"),
                 "--data", str(synth_dir)]):
        res = runner.invoke(app, [*cmd, "--out", str(tmp_path / "afile"), "--quiet"])
        assert isinstance(res.exception, ConfigError), res.exception
        assert "afile" in str(res.exception) and "not a folder" in str(res.exception)


HOLD = """
import sys, time
from pathlib import Path
from recnas.experiment.folder import run_folder_lock
with run_folder_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_process_on_a_folder_fails_at_once_and_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        with pytest.raises(RunFolderBusy, match=rf"is in use by pid {holder.pid} on .*started .*another --out"):
            with run_folder_lock(run_dir):
                pass
        assert time.perf_counter() - t0 < 1.0  # at once, not after a wait
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    said: list[str] = []
    with run_folder_lock(run_dir, said.append):  # the kill released the lock: taken over, and said so
        pass
    assert said and f"pid {holder.pid}" in said[0] and "no longer running" in said[0]
    said.clear()
    with run_folder_lock(run_dir, said.append):  # a clean end leaves no holder behind
        pass
    assert not said


@pytest.fixture(scope="module")
def trained(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pred") / "run"
    res = runner.invoke(app, ["train", "--data", str(synth_dir), "--model", "fm", "--out", str(out), "--set",
                              f"data.cache_dir={out.parent / 'cache'}", "--set", "trainer.epochs=1", *SMALL])
    assert res.exit_code == 0, res.output
    return out


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage", ["truncated", "garbage", "nan"])
def test_damaged_weights_are_one_clear_error_and_no_scores_are_written(
        trained: Path, synth_dir: Path, tmp_path: Path, damage: str) -> None:
    run = _copy_run(trained, tmp_path / "run")
    weights = run / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:300])
    elif damage == "garbage":
        weights.write_bytes(b"\x00" * 64)
    else:
        tensors = load_file(str(weights))
        name = next(k for k, v in tensors.items() if v.is_floating_point())
        tensors[name][0] = float("nan")
        save_file(tensors, str(weights))
    for data in (synth_dir / "test.csv", synth_dir):  # a file with labels, a folder's test split
        res = runner.invoke(app, ["predict", str(run), str(data), "--out", str(tmp_path / "scores.csv")])
        assert res.exit_code != 0
        msg = str(res.exception)
        assert "model.safetensors" in msg and "train again" in msg, msg
        assert not (tmp_path / "scores.csv").exists()


def test_a_predict_output_that_is_a_folder_is_a_clear_error(trained: Path, synth_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["predict", str(trained), str(synth_dir / "test.csv"), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "is a folder" in str(res.exception) and "file path" in str(res.exception)
