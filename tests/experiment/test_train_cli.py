from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from recnas.experiment.cli import app

runner = CliRunner()
FAST = ["--set", "trainer.epochs=2", "--set", "model.mlp=[32]", "--set", "model.embedding_dim=8",
        "--set", "trainer.batch_size=512", "--quiet"]


def test_train_writes_a_complete_run_and_is_reproducible(synth_dir: Path, tmp_path: Path) -> None:
    cache = ["--set", f"data.cache_dir={tmp_path / 'cache'}"]
    runs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        res = runner.invoke(app, ["train", "--data", str(synth_dir), "--model", "deepfm", "--out", str(out),
                                  *FAST, *cache])
        assert res.exit_code == 0, res.output
        assert "test AUC" in res.output
        for name in ("config.yaml", "schema.json", "model.safetensors", "metrics.json", "train_log.jsonl"):
            assert (out / name).is_file(), name
        runs.append(json.loads((out / "metrics.json").read_text()))
    keys = ["valid_auc", "test_auc", "test_logloss", "params", "embedding_params", "train_samples_per_s",
            "epochs", "seed", "versions"]
    assert all(k in runs[0] for k in keys)
    from recnas.data.schema import Schema
    from recnas.nn.numerical import auto_kind

    numerical = Schema.load(tmp_path / "run0").numerical
    assert numerical and runs[0]["numerical_encoders"] == {f.name: auto_kind(f) for f in numerical}  # auto's choice
    for k in ("valid_auc", "test_auc", "test_logloss", "params", "embedding_params", "epochs"):
        assert runs[0][k] == runs[1][k], k
    log = [json.loads(line) for line in (tmp_path / "run0" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]


def test_predict_matches_the_run_and_counts_unseen(synth_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--data", str(synth_dir), "--model", "fm", "--out", str(out), *FAST,
                              "--set", f"data.cache_dir={tmp_path / 'cache'}"])
    assert res.exit_code == 0, res.output
    test_csv = synth_dir / "test.csv"
    res = runner.invoke(app, ["predict", str(out), str(test_csv), "--out", str(tmp_path / "scores.csv")])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"AUC {metrics['test_auc']:.4f}" in res.output
    scores = np.loadtxt(tmp_path / "scores.csv", delimiter=",", skiprows=1)
    assert scores.shape[0] == sum(1 for _ in open(test_csv)) - 1
    assert ((scores[:, 0] > 0) & (scores[:, 0] < 1)).all()
    # a category never seen in training is scored through the OOV id and reported
    lines = test_csv.read_text().splitlines()
    header = [h.strip('"') for h in lines[0].split(",")]
    row = lines[1].split(",")
    row[header.index("c3")] = "999999"
    (tmp_path / "new.csv").write_text(lines[0] + "\n" + ",".join(row) + "\n")
    res = runner.invoke(app, ["predict", str(out), str(tmp_path / "new.csv"), "--out", str(tmp_path / "s2.csv")])
    assert res.exit_code == 0, res.output
    assert re.search(r"unseen values -> OOV id: .*\bc3 1\b", res.output)


def test_predict_scores_a_file_without_labels(synth_dir: Path, tmp_path: Path) -> None:
    import pyarrow.csv as pv

    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--data", str(synth_dir), "--model", "lr", "--out", str(out), *FAST,
                              "--set", f"data.cache_dir={tmp_path / 'cache'}"])
    assert res.exit_code == 0, res.output
    table = pv.read_csv(synth_dir / "test.csv")
    pv.write_csv(table.drop_columns(["label"]), tmp_path / "new.csv")
    res = runner.invoke(app, ["predict", str(out), str(tmp_path / "new.csv"), "--out", str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output
    scores = pv.read_csv(tmp_path / "s.csv")
    assert scores.column_names == ["score"] and scores.num_rows == table.num_rows
    assert "AUC" not in res.output
    labelled = runner.invoke(app, ["predict", str(out), str(synth_dir / "test.csv"), "--out", str(tmp_path / "t.csv")])
    assert pv.read_csv(tmp_path / "t.csv")["score"].equals(scores["score"])
    assert labelled.exit_code == 0


def test_models_lists_the_zoo() -> None:
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0
    for name in ("deepfm", "dcnv2", "xdeepfm", "autoint+", "ffm"):
        assert name in res.output


def test_train_with_autodis_writes_its_soft_buckets_and_predict_reloads_it(synth_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--data", str(synth_dir), "--model", "deepfm", "--out", str(out), *FAST,
                              "--numerical-encoder", "autodis", "--set", f"data.cache_dir={tmp_path / 'cache'}"])
    assert res.exit_code == 0, res.output
    assert "AutoDis soft buckets" in res.output
    export = json.loads((out / "autodis.json").read_text())
    assert set(export["embedding.encoders.0"]["fields"]) == {"n1", "n2"}
    assert (out / "autodis.png").stat().st_size > 0
    res = runner.invoke(app, ["predict", str(out), str(synth_dir / "test.csv"), "--out", str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output
    assert f"AUC {json.loads((out / 'metrics.json').read_text())['test_auc']:.4f}" in res.output


def test_unknown_numerical_encoder_is_a_clear_error(synth_dir: Path, tmp_path: Path) -> None:
    from recnas.errors import ConfigError

    res = runner.invoke(app, ["train", "--data", str(synth_dir), "--out", str(tmp_path / "r"), *FAST,
                              "--numerical-encoder", "cubic"])
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError)
    assert "model.numerical_encoder" in str(res.exception) and "unknown numerical encoder 'cubic'" in str(res.exception)
