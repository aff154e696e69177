"""`recnas search` with method nis / esapn: arch.json, retrain, random control, baseline, report, predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from recnas.errors import ConfigError
from recnas.experiment.cli import app
from recnas.experiment.config import load_config
from recnas.experiment.search import run_search
from tests.killing import KillAt, Killed

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"nis": ["search.steps=30", "search.warmup_steps=5", "search.samples_per_step=4",
                 "model.embedding_dim=8"],
         "esapn": ["search.sizes=[2,4,8]", "search.decision_every=2", "search.valid_rows=300",
                   "search.batch_size=128"]}
COMMON = ["threads=1", "model.mlp=[16]", "trainer.epochs=2", "trainer.batch_size=512", "trainer.progress=false"]


def sets(method: str, cache: Path) -> list[str]:
    return [x for s in [*COMMON, *SMALL[method], f"data.cache_dir={cache}"] for x in ("--set", s)]


@pytest.mark.parametrize("method", ["nis", "esapn"])
def test_search_cli_writes_the_layout_the_control_the_baseline_and_the_report(method: str, synth_dir: Path,
                                                                               tmp_path: Path) -> None:
    run = tmp_path / "run"
    own_l2 = [x for o in ("retrain.embedding_l2=0.003", "search.max_ep_fraction=0.6", "search.fill_budget=true")
              for x in ("--set", o)] if method == "nis" else []
    norm = ["--set", "lab.retrain_norm=0.15"] if method == "esapn" else []
    res = CliRunner().invoke(app, ["search", str(ROOT / "configs" / f"{method}_synth.yaml"), "--data", str(synth_dir),
                                   "--out", str(run), "--quiet", *sets(method, tmp_path / "cache"), *own_l2, *norm])
    assert res.exit_code == 0, res.output
    if own_l2:  # the retrain and the control take their own embedding L2; the baseline keeps the trainer's
        l2 = {stage: yaml.safe_load((run / stage / "config.yaml").read_text())["trainer"]["embedding_l2"]
              for stage in ("retrain", "control", "baseline")}
        trainer_l2 = load_config(ROOT / "configs" / "nis_synth.yaml").trainer.embedding_l2
        assert l2 == {"retrain": 0.003, "control": 0.003, "baseline": trainer_l2} and trainer_l2 != 0.003
    assert "widths per frequency bucket" in res.output and "random control at the same EP" in res.output
    arch = json.loads((run / "search" / "arch.json").read_text())
    schema_card = {f["name"]: f["cardinality"] for f in json.loads((run / "report.json").read_text())["data"]["fields"]}
    assert {"method", "sample", "space_fingerprint"} <= set(arch) and arch["method"] == method
    if method == "nis":
        share = sum(arch["field_ep"].values()) / sum(arch["full_field_ep"].values())  # the budget is on the EP share
        assert arch["fill_budget"] and arch["cost"] == "field_mean" and arch["argmax_cost"] <= share <= 0.6
        for f, blocks in arch["blocks"].items():  # head to tail, every id once, widths never growing
            assert sum(r for r, _ in blocks) == schema_card[f]
            widths = [w for _, w in blocks]
            assert widths == sorted(widths, reverse=True)
    else:
        for f, counts in arch["sizes"].items():
            assert sum(counts.values()) == schema_card[f]
            assert set(map(int, counts)) <= {2, 4, 8}
    assert arch["ep"] == sum(arch["field_ep"].values()) and arch["full_ep"] == sum(arch["full_field_ep"].values())
    if method == "esapn":  # the retrain's and the control's id embeddings pass through a batch norm
        from safetensors.torch import load_file
        for stage in ("retrain", "control"):
            assert "embedding.norm.weight" in load_file(run / stage / "model.safetensors")
    retrain = json.loads((run / "retrain" / "metrics.json").read_text())
    baseline = json.loads((run / "baseline" / "metrics.json").read_text())
    control = json.loads((run / "control" / "metrics.json").read_text())
    control_arch = json.loads((run / "control" / "arch.json").read_text())
    # EP is exact: the searched model stores the baseline's floats minus what the layout left out
    assert baseline["embedding_params"] - retrain["embedding_params"] == arch["full_ep"] - arch["ep"]
    assert control_arch["control"].startswith("random")
    report = json.loads((run / "report.json").read_text())
    assert report["architecture"]["ep"] == arch["ep"]
    assert report["results"]["control"]["test_auc"] == control["test_auc"]
    assert report["results"]["test_auc_gain_over_control"] == retrain["test_auc"] - control["test_auc"]
    html = (run / "report.html").read_text()
    assert "Embedding layout per field" in html and html.count("data:image/png;base64,") == 3

    res = CliRunner().invoke(app, ["predict", str(run / "retrain"), str(synth_dir), "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    assert f"{retrain['test_auc']:.4f}" in res.output
    res = CliRunner().invoke(app, ["retrain", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "retrain" / "metrics.json").read_text())["test_auc"] == retrain["test_auc"]


def test_a_killed_nis_run_resumes_to_the_same_layout(synth_dir: Path, tmp_path: Path) -> None:
    over = [*COMMON, *SMALL["nis"], f"data.path={synth_dir}", f"data.cache_dir={tmp_path / 'cache'}",
            "search.baseline=false", "lab.control=false", "search.steps=40"]
    cfg = load_config(ROOT / "configs" / "nis_synth.yaml", over)
    whole = run_search(cfg, tmp_path / "whole")
    with pytest.raises(Killed):  # checkpoints every 4 controller steps: killed after step 25
        run_search(cfg, tmp_path / "killed", fit_hooks=(KillAt(25),))
    assert (tmp_path / "killed" / "search" / "checkpoint.pt").is_file()
    resumed = run_search(cfg, tmp_path / "killed")
    assert resumed.arch["sample"] == whole.arch["sample"] and resumed.arch["blocks"] == whole.arch["blocks"]
    assert not (tmp_path / "killed" / "search" / "checkpoint.pt").exists()


def test_bad_nis_and_esapn_settings_are_config_errors(synth_dir: Path, tmp_path: Path) -> None:
    base = [f"data.path={synth_dir}", f"data.cache_dir={tmp_path / 'cache'}"]
    with pytest.raises(ConfigError, match="col_blocks"):
        run_search(load_config(ROOT / "configs" / "nis_synth.yaml", [*base, "model.embedding_dim=10"]), tmp_path / "a")
    with pytest.raises(ConfigError, match="field-aware"):
        run_search(load_config(ROOT / "configs" / "esapn_synth.yaml", [*base, "model.name=ffm"]), tmp_path / "b")
    with pytest.raises(ConfigError, match="lab.control=false"):
        run_search(load_config(ROOT / "configs" / "nis_synth.yaml", [*base, "search.layout=se"]), tmp_path / "c")
    with pytest.raises(ConfigError, match="max_ep_fraction"):
        run_search(load_config(ROOT / "configs" / "nis_synth.yaml", [*base, "search.fill_budget=true"]),
                   tmp_path / "e")
    with pytest.raises(ConfigError, match="trainer.sparse=false"):
        run_search(load_config(ROOT / "configs" / "esapn_synth.yaml", [*base, "trainer.sparse=true"]), tmp_path / "d")
    with pytest.raises(ConfigError, match="search.stepz"):
        load_config(ROOT / "configs" / "nis_synth.yaml", [*base, "search.stepz=3"])
    with pytest.raises(ConfigError, match="search.sizes"):
        load_config(ROOT / "configs" / "esapn_synth.yaml", [*base, "search.sizes=[4]"])
