"""`recnas search` / `retrain` / `report`: the run folder, resumption after a kill, loading a searched model."""

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
from recnas.train.hooks import Hook

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["threads=1", "model.embedding_dim=4", "model.mlp=[16]", "trainer.epochs=2", "trainer.batch_size=512",
         "trainer.progress=false", "search.epochs=3", "search.batch_size=512"]


def config(synth_dir: Path, cache: Path, method: str, *extra: str):  # noqa: ANN201
    path = ROOT / "configs" / f"{method}_synth.yaml"
    short = ["search.warmup_epochs=1"] if method == "autodim" else []  # its shipped 3 weight-only epochs of 3
    return load_config(path, [*SMALL, *short, f"data.path={synth_dir}", f"data.cache_dir={cache}", *extra])


class Kill(Hook):
    """Simulates a killed process: raises in the middle of epoch `epoch`."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_step(self, trainer, batch, step) -> None:  # noqa: ANN001
        if trainer.epoch == self.epoch and step % 3 == 0:
            raise KeyboardInterrupt


def comparable(arch: dict) -> dict:
    return {k: v for k, v in arch.items() if k != "search_seconds"}


@pytest.mark.parametrize("method", ["autofis", "autodim"])
def test_a_killed_search_resumes_to_the_same_architecture(method: str, synth_dir: Path, tmp_path: Path) -> None:
    cfg = config(synth_dir, tmp_path / "cache", method, "search.baseline=false", "search.warmup_epochs=1")
    whole = run_search(cfg, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, tmp_path / "killed", fit_hooks=(Kill(epoch=3),))
    assert (tmp_path / "killed" / "search" / "checkpoint.pt").is_file()
    assert not (tmp_path / "killed" / "search" / "arch.json").exists()
    resumed = run_search(cfg, tmp_path / "killed")
    assert comparable(resumed.arch) == comparable(whole.arch)
    assert resumed.retrain["test_auc"] == whole.retrain["test_auc"]
    assert not (tmp_path / "killed" / "search" / "checkpoint.pt").exists()  # cleaned up once arch.json exists
    history = (tmp_path / "killed" / "search" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in history] == [1, 2, 3]


def test_search_cli_writes_arch_retrain_baseline_and_report(synth_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    sets = [x for s in [*SMALL, f"data.cache_dir={tmp_path / 'cache'}"] for x in ("--set", s)]
    res = CliRunner().invoke(app, ["search", str(ROOT / "configs" / "autofis_synth.yaml"), "--data", str(synth_dir),
                                   "--out", str(run), "--quiet", *sets])
    assert res.exit_code == 0, res.output
    assert "kept" in res.output and "report:" in res.output
    assert "planted against found:" in res.output and "of 2 planted pairs kept" in res.output  # synth's truth.json
    arch = json.loads((run / "search" / "arch.json").read_text())
    assert {"method", "sample", "space_fingerprint", "interactions"} <= set(arch)
    assert arch["method"] == "autofis" and len(arch["sample"]) == arch["num_pairs"] == 55
    assert sorted(map(tuple, arch["interactions"])) == sorted(
        tuple(label.removeprefix("interaction/").split("*")) for label, keep in arch["sample"].items() if keep)
    train_keys = {"valid_auc", "test_auc", "test_logloss", "params", "embedding_params", "train_samples_per_s",
                  "epochs", "seed", "versions"}
    retrain = json.loads((run / "retrain" / "metrics.json").read_text())
    baseline = json.loads((run / "baseline" / "metrics.json").read_text())
    assert train_keys <= set(retrain) and train_keys <= set(baseline)
    report = json.loads((run / "report.json").read_text())
    assert report["architecture"]["kept"] == len(arch["interactions"])
    assert report["results"]["searched"]["test_auc"] == retrain["test_auc"]
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # search curve + gate heat map, embedded
    planted = report["planted"]["pairs"]  # the dataset's truth.json against the kept pairs
    assert planted["planted"] == [["c1", "c2"], ["c5", "c6"]] and planted["kept"] == len(arch["interactions"])
    assert "Planted against found: interactions" in html and "memory" not in report["planted"]

    # the retrained model is a normal run folder: predict loads it (architecture first, then weights)
    res = CliRunner().invoke(app, ["predict", str(run / "retrain"), str(synth_dir), "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    assert f"{retrain['test_auc']:.4f}" in res.output

    # retrain alone, from arch.json: same seed and settings -> same metrics
    res = CliRunner().invoke(app, ["retrain", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    again = json.loads((run / "retrain" / "metrics.json").read_text())
    assert again["test_auc"] == retrain["test_auc"]


def test_autodim_run_reports_dims_and_ep(synth_dir: Path, tmp_path: Path) -> None:
    cfg = config(synth_dir, tmp_path / "cache", "autodim", "search.candidates=[2,4,8]")
    res = run_search(cfg, tmp_path / "run")
    dims = res.arch["dims"]
    assert set(dims.values()) <= {2, 4, 8} and len(dims) == 11
    assert res.arch["sample"] == {f"dim/{f}": d for f, d in dims.items()}
    assert res.baseline is not None and res.baseline["embedding_params"] > res.retrain["embedding_params"]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["architecture"]["ep"] == res.arch["ep"] <= res.arch["full_ep"]
    assert [d["dim"] for d in report["architecture"]["dims"]] == list(dims.values())
    memory = report["planted"]["memory"]  # AutoDim sizes fields: floats per id is the size, with each field's role
    assert {f: v["floats_per_id"] for f, v in memory["per_field"].items()} == dims
    assert memory["per_field"]["c1"]["role"] == "rank-8 interaction" and memory["per_field"]["c7"]["role"] == "noise"
    assert "pairs" not in report["planted"]


def test_a_run_folder_refuses_a_different_config_and_autofis_a_model_it_cannot_gate(synth_dir: Path,
                                                                                  tmp_path: Path) -> None:
    cfg = config(synth_dir, tmp_path / "cache", "autofis", "search.baseline=false", "search.epochs=1")
    run_search(cfg, tmp_path / "run")
    other = config(synth_dir, tmp_path / "cache", "autofis", "search.baseline=false", "search.epochs=2")
    with pytest.raises(ConfigError, match="different config"):
        run_search(other, tmp_path / "run")
    with pytest.raises(ConfigError, match="no pairwise slot"):
        run_search(config(synth_dir, tmp_path / "cache", "autofis", "model.name=dcn"), tmp_path / "run2")
    with pytest.raises(ConfigError, match="field-aware"):
        run_search(config(synth_dir, tmp_path / "cache", "autodim", "model.name=ffm"), tmp_path / "run4")
    # what does not change results may differ on resumption: the progress bar, the spelling of the data path
    same = config(synth_dir, tmp_path / "cache", "autofis", "search.baseline=false", "search.epochs=1",
                  "trainer.progress=true", f"data.path={synth_dir}/")
    assert run_search(same, tmp_path / "run").arch["method"] == "autofis"
    # a folder written before a key was added (its default keeps the old behaviour) is the same config; one
    # holding a key this version does not know is refused with the folder and the key named
    saved = tmp_path / "run" / "config.yaml"
    raw = yaml.safe_load(saved.read_text())
    del raw["trainer"]["min_epochs"]
    saved.write_text(yaml.safe_dump(raw))
    assert run_search(same, tmp_path / "run").arch["method"] == "autofis"
    raw["model"]["numerical"] = "auto"
    saved.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"cannot read .*model\.numerical"):
        run_search(same, tmp_path / "run")
    with pytest.raises(ConfigError, match="warmup_epochs"):
        run_search(config(synth_dir, tmp_path / "cache", "autodim", "search.warmup_epochs=3"), tmp_path / "run3")


def test_autodim_budget_as_a_fraction_is_filled_and_bad_budget_settings_are_refused(synth_dir: Path,
                                                                                    tmp_path: Path) -> None:
    cfg = config(synth_dir, tmp_path / "cache", "autodim", "search.candidates=[2,4,8]", "search.baseline=false",
                 "search.epochs=3", "search.max_ep_fraction=0.5", "search.fill_budget=true")
    arch = run_search(cfg, tmp_path / "run").arch
    rows = arch["field_rows"]
    assert arch["fill_budget"] and arch["max_ep"] == int(0.5 * arch["full_ep"])
    assert arch["ep"] <= arch["max_ep"]
    for f, d in arch["dims"].items():  # filled: no field's next size still fits in the budget
        if d < 8:
            assert arch["ep"] + rows[f] * d > 0.5 * arch["full_ep"], (f, d)
    with pytest.raises(ConfigError, match="not both"):
        run_search(config(synth_dir, tmp_path / "cache", "autodim", "search.max_ep=100000",
                          "search.max_ep_fraction=0.5"), tmp_path / "run2")
    with pytest.raises(ConfigError, match="fill_budget"):
        run_search(config(synth_dir, tmp_path / "cache", "autodim", "search.fill_budget=true"), tmp_path / "run3")


def test_an_autofis_search_that_removes_every_pair_says_so_and_how_to_fix_it(synth_dir: Path, tmp_path: Path) -> None:
    """Kept 0 of N is a warning naming the setting and a threshold that keeps pairs; that threshold does."""
    lines: list[str] = []
    common = ("search.baseline=false", "trainer.epochs=1")
    res = run_search(config(synth_dir, tmp_path / "cache", "autofis", "search.grda_threshold=50", *common),
                     tmp_path / "none", log=lines.append)
    assert res.arch["interactions"] == []
    warned = [ln for ln in lines if ln.startswith("warning: the autofis search removed all")]
    assert len(warned) == 1 and "search.grda_threshold=50" in warned[0], lines[-5:]
    report = json.loads((tmp_path / "none" / "report.json").read_text())
    assert report["warnings"] == [warned[0].removeprefix("warning: ")]
    assert "class='warning'" in (tmp_path / "none" / "report.html").read_text()
    suggested = float(warned[0].split("a threshold near ")[1].split(" ")[0])
    again = run_search(config(synth_dir, tmp_path / "cache", "autofis", f"search.grda_threshold={suggested}",
                              *common), tmp_path / "some")
    assert 0 < len(again.arch["interactions"]) < again.arch["num_pairs"]
    assert json.loads((tmp_path / "some" / "report.json").read_text())["warnings"] == []
    every = run_search(config(synth_dir, tmp_path / "cache", "autofis", "search.grda_threshold=0", *common),
                       tmp_path / "all")
    assert len(every.arch["interactions"]) == every.arch["num_pairs"]
    assert "the autofis search kept all" in json.loads((tmp_path / "all" / "report.json").read_text())["warnings"][0]


def test_the_autodim_summary_says_what_the_budget_did() -> None:
    from recnas.methods.autodim import budget_line

    base = {"full_ep": 1000, "ep": 80, "pick": "median", "picked_ep": 80, "max_ep": 300, "fill_budget": False}
    assert budget_line(base) == ("the median uses 8.0% of the searched tables, under the 30.0% budget; "
                                 "search.fill_budget is off, so the budget changed nothing")
    assert "filled to 29.5%" in budget_line({**base, "ep": 295, "fill_budget": True})
    assert "over the 30.0% budget: cut to 29.0%" in budget_line({**base, "picked_ep": 600, "ep": 290})
    old = {"full_ep": 1000, "ep": 80, "argmax_ep": 600, "max_ep": 300}  # an arch.json from before `pick`
    assert budget_line(old).startswith("the argmax used 60.0%")
    assert budget_line({**base, "max_ep": None}).startswith("no budget")


def test_report_json_names_one_fraction_per_denominator(synth_dir: Path, tmp_path: Path) -> None:
    """The searched tables' share (architecture) and the whole model's share of the baseline (results) differ."""
    lines: list[str] = []
    cfg = config(synth_dir, tmp_path / "cache", "autodim", "search.max_ep_fraction=0.9", "trainer.epochs=1")
    run_search(cfg, tmp_path / "run", log=lines.append)
    rep = json.loads((tmp_path / "run" / "report.json").read_text())

    def keys(d: object) -> set[str]:
        if isinstance(d, dict):
            return set(d) | {k for v in d.values() for k in keys(v)}
        return {k for v in d for k in keys(v)} if isinstance(d, list) else set()

    assert "ep_fraction" not in keys(rep)
    assert 0 < rep["architecture"]["searched_ep_fraction"] <= 0.9 and rep["results"]["model_ep_fraction"] > 0
    assert rep["architecture"]["budget"].startswith("the median uses") or "cut to" in rep["architecture"]["budget"]
    res = CliRunner().invoke(app, ["report", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
