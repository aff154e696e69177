from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from recnas.experiment.cli import app

runner = CliRunner()


def test_synth_inspect_prepare(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    res = runner.invoke(app, ["synth", "--out", str(out), "--rows", "2000", "--seed", "4"])
    assert res.exit_code == 0, res.output
    assert "Bayes-optimal test AUC" in res.output
    truth = json.loads((out / "truth.json").read_text())
    assert truth["rows"] == {"train": 1600, "valid": 200, "test": 200}

    res = runner.invoke(app, ["data", "inspect", str(out)])
    assert res.exit_code == 0, res.output
    assert "8 categorical, 2 numerical, 1 multi-valued" in res.output
    assert "1,600" in res.output

    cache = tmp_path / "cache"
    res = runner.invoke(app, ["data", "prepare", str(out), "--cache-dir", str(cache)])
    assert res.exit_code == 0, res.output
    assert "prepared:" in res.output
    res = runner.invoke(app, ["data", "prepare", str(out), "--cache-dir", str(cache)])
    assert "reused (no-op)" in res.output


def test_synth_knobs(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    res = runner.invoke(app, ["synth", "--out", str(out), "--rows", "500", "--cardinalities", "50,40,30,20,10,5,5",
                              "--interactions", "c1*c3:4", "--numerical", "3", "--multi", "0"])
    assert res.exit_code == 0, res.output
    truth = json.loads((out / "truth.json").read_text())
    assert truth["interactions"] == [["c1", "c3"]] and truth["interaction_ranks"] == [4]
    assert set(truth["cardinalities"]) == {f"c{i}" for i in range(1, 8)}


def test_libfm_field_names_option(tmp_path: Path) -> None:
    p = tmp_path / "d.libfm"
    p.write_text("1 3:1 10:1\n-1 4:1 12:1\n")
    res = runner.invoke(app, ["data", "inspect", str(p), "--fields", "user,item"])
    assert res.exit_code == 0, res.output
    assert "user" in res.output and "item" in res.output
