"""`recnas auto`: tune, search, choose under the memory budget within the time budget; resume; bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from recnas.errors import ConfigError, DataError
from recnas.experiment import auto, budget
from recnas.experiment.auto import choose, mark_pareto, parse_duration, run_auto
from recnas.experiment.run import predict_file
from recnas.nn.models import build_model
from recnas.train import Hook, Trainer, TrainerConfig
from tests.killing import KillAt, Killed

BUDGET = 30.0  # seconds: a few trials per zoo candidate and a short run of each search on 4,000 rows


def test_auto_chooses_the_best_valid_model_within_both_budgets(synth_dir: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    lines: list[str] = []
    res = run_auto(synth_dir, tmp_path / "auto", 0.3, BUDGET, threads=1, cache_dir=tmp_path / "cache",
                   log=lines.append)
    wall = time.monotonic() - t0
    spent = json.loads((tmp_path / "auto" / "clock.json").read_text())["spent_seconds"]
    assert spent <= 1.1 * BUDGET and wall <= 1.1 * BUDGET + 5  # 5 s: importing and preparing the data
    rows = json.loads((tmp_path / "auto" / "leaderboard.json").read_text())
    names = {r["candidate"] for r in rows}
    assert {"deepfm (default)", "deepfm (tuned)", "dcnv2 (default)", "dcnv2 (tuned)"} <= names
    planned = next(m for m in lines if m.startswith("searches that fit this data: ")).split(": ")[1].split(", ")
    fitting = [p.split(" (")[0] for p in planned]  # "autofis (ids seen < 3 times shared)": run on floored data
    assert {"nis", "esapn"} <= set(fitting)  # they fit any budget here; AutoDim and joint where size 1-2 fits
    for method in fitting:  # each search that fits ran, or the log says why not (unfunded, or failed)
        ran = any(r["candidate"].startswith(f"{method} (searched") for r in rows)
        assert ran or any(m.startswith(f"  {method}: skipped") or m.startswith(f"  {method}: failed") for m in lines)
    assert sum(r["kind"] == "search" for r in rows) >= 1
    in_budget = [r for r in rows if r["ep_fraction"] <= 0.3]
    assert res.chosen["candidate"] == max(in_budget, key=lambda r: r["valid_auc"])["candidate"]
    assert [r["candidate"] for r in rows if r["chosen"]] == [res.chosen["candidate"]]
    assert all(r["flops_per_row"] and r["flops_per_row"] > 0 for r in rows)
    tuned = next(r for r in rows if r["candidate"] == "deepfm (tuned)")
    default = next(r for r in rows if r["candidate"] == "deepfm (default)")
    assert tuned["valid_auc"] >= default["valid_auc"]  # trial 0 is the default
    best_zoo = max((r for r in rows if r["candidate"].endswith("(tuned)")), key=lambda r: r["valid_auc"])
    compact = [r for r in rows if r["candidate"].startswith(best_zoo["candidate"].split()[0] + " (tuned, ")]
    if best_zoo["ep_fraction"] > 0.3:  # the best tuned model made to fit: narrowed, and with its rare ids shared
        assert sorted(Path(r["folder"]).name for r in compact) == ["narrowed", "shared_tail"]  # ids: long-tailed
        assert all(r["ep_fraction"] <= 0.3 for r in compact)
    else:
        assert compact == []
    assert (tmp_path / "auto" / "leaderboard.csv").read_text().count("\n") == len(rows) + 1
    assert (tmp_path / "auto" / "pareto.png").stat().st_size > 1000
    summary, _ = predict_file(tmp_path / "auto" / "model", synth_dir, tmp_path / "pred.csv")
    assert summary["auc"] == pytest.approx(res.chosen["test_auc"], abs=1e-6)  # the chosen model, as it was scored


def test_a_killed_auto_resumes_without_redoing_finished_stages(synth_dir: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from recnas.experiment import search

    real = search.run_search
    calls = []

    def killed_in_the_first_search(cfg, out, log=None, fit_hooks=(), retrain_hooks=()):  # noqa: ANN001, ANN202
        calls.append(out)
        hooks = [*fit_hooks, KillAt(1)] if len(calls) == 1 else fit_hooks  # step 1: even a spent share takes it
        return real(cfg, out, log, hooks, retrain_hooks)

    monkeypatch.setattr(search, "run_search", killed_in_the_first_search)
    with pytest.raises(Killed):
        run_auto(synth_dir, tmp_path / "auto", 0.3, BUDGET, threads=1, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(search, "run_search", real)
    # finished before the kill: the tunes and the compact candidates (none where the best tuned model fits already)
    compact = [tmp_path / "auto" / f / "metrics.json" for f in ("narrowed", "shared_tail")]
    compact = [m for m in compact if m.is_file()]
    done_at = [m.stat().st_mtime for m in compact]
    trials = {m: len(list((tmp_path / "auto" / "tune" / m / "trials").iterdir())) for m in ("deepfm", "dcnv2")}
    spent = json.loads((tmp_path / "auto" / "clock.json").read_text())["spent_seconds"]
    assert spent > 0.4 * BUDGET  # the tuning share was spent and saved
    lines: list[str] = []
    res = run_auto(synth_dir, tmp_path / "auto", 0.3, BUDGET, threads=1, cache_dir=tmp_path / "cache",
                   log=lines.append)
    assert [m.stat().st_mtime for m in compact] == done_at  # kept, not trained again
    assert {m: len(list((tmp_path / "auto" / "tune" / m / "trials").iterdir())) for m in trials} == trials
    assert (Path(calls[0]) / "retrain" / "metrics.json").is_file()  # the killed search resumed to its end
    total = json.loads((tmp_path / "auto" / "clock.json").read_text())["spent_seconds"]
    assert total <= 1.1 * BUDGET  # the resumed run spent only what was left
    assert (tmp_path / "auto" / "model" / "model.safetensors").is_file() and res.chosen["ep_fraction"] <= 0.3


def test_bad_budgets_and_data_are_clear_errors_before_any_training(synth_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="shorter than one trial"):
        run_auto(synth_dir, tmp_path / "a", 0.3, 0.5, threads=1, cache_dir=tmp_path / "cache")
    with pytest.raises(ConfigError, match="below the smallest model"):
        run_auto(synth_dir, tmp_path / "b", 0.01, BUDGET, threads=1, cache_dir=tmp_path / "cache")
    with pytest.raises(ConfigError, match="max-ep-fraction"):
        run_auto(synth_dir, tmp_path / "c", 1.5, BUDGET)
    for folder in ("a", "b"):
        assert not (tmp_path / folder / "tune").exists()
    data = tmp_path / "numbers"
    data.mkdir()
    for split, n in (("train", 200), ("valid", 50), ("test", 50)):
        lines = ["label,x,y"] + [f"{i % 2},{i * 0.5},{i % 7}" for i in range(n)]
        (data / f"{split}.csv").write_text("\n".join(lines) + "\n")
    (data / "schema.yaml").write_text("label: label\ncolumns:\n  - {name: label, type: label}\n"
                                      "  - {name: x, type: numerical}\n  - {name: y, type: numerical}\n")
    with pytest.raises(DataError, match="no categorical"):
        run_auto(data, tmp_path / "d", 0.3, BUDGET, threads=1, cache_dir=tmp_path / "cache")


def test_a_second_run_with_other_arguments_in_the_same_folder_is_refused(synth_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "auto").mkdir()
    (tmp_path / "auto" / "auto.json").write_text(json.dumps({"args": {"data": "elsewhere"}}))
    with pytest.raises(ConfigError, match="other arguments"):
        run_auto(synth_dir, tmp_path / "auto", 0.3, BUDGET, threads=1, cache_dir=tmp_path / "cache")


def test_durations() -> None:
    assert parse_duration("90s") == 90 and parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400
    assert parse_duration("2") == 120
    for bad in ("soon", "1x", "m30", "0m"):
        with pytest.raises(ConfigError, match="time-budget"):
            parse_duration(bad)


def test_the_choice_and_the_front_on_known_rows() -> None:
    rows = [{"candidate": n, "valid_auc": a, "embedding_params": ep, "ep_fraction": ep / 100}
            for n, a, ep in (("full", 0.80, 100), ("big", 0.79, 40), ("small", 0.78, 20), ("bad", 0.70, 30),
                             ("tiny", 0.75, 5))]
    assert choose(rows, 0.3)["candidate"] == "small"  # big is better but over budget
    assert choose(rows, 0.4)["candidate"] == "big"
    assert choose(rows, 0.01) is None
    mark_pareto(rows)
    assert {r["candidate"] for r in rows if r["pareto"]} == {"full", "big", "small", "tiny"}


def test_a_short_budget_funds_fewer_searches_in_rank_order_never_none() -> None:
    ranked = ["joint", "autodim", "nis", "esapn"]
    assert auto.funded_searches(ranked, 1000, 100) == ranked  # 2 trainings of 100 s each: all four fit
    assert auto.funded_searches(ranked, 450, 100) == ["joint", "autodim"]
    assert auto.funded_searches(ranked, 10, 100) == ["joint"]
    assert auto.funded_searches(ranked, -5, 100) == ["joint"]


def test_every_registered_method_says_whether_auto_runs_it(prepared) -> None:  # noqa: ANN001
    from recnas.methods import get_method, method_names

    fits = budget.fitting_methods(prepared.schema, 16, 5000)
    assert set(fits) <= set(method_names()) and "autofis" not in fits  # it keeps every table: never under budget
    assert "autofis" in budget.fitting_methods(prepared.schema, 16, 10**9)
    ranks = [get_method(m).auto_rank for m in fits]
    assert ranks == sorted(ranks)
    for name, settings in fits.items():  # the settings validate as that method's config
        from recnas.experiment.config import apply_overrides, load_config

        raw = load_config(None, ["model.embedding_dim=16"]).model_dump(mode="json")
        raw["search"] = {}
        from recnas.experiment.config import ExperimentConfig

        ExperimentConfig.model_validate(apply_overrides(raw, [f"search.method={name}", *settings]))
        assert get_method(name).auto_settings(prepared.schema, 16, 5000) == settings


def test_a_size_search_is_run_only_where_its_smallest_model_meets_the_budget(prepared) -> None:  # noqa: ANN001
    from recnas.methods.base import sizes_within
    from recnas.nn.embedding import FieldEmbedding
    from recnas.space.autodim import AutoDimEmbedding

    rows = sum(FieldEmbedding(prepared.schema, 1).field_rows().values())
    assert sizes_within(prepared.schema, 10, 2 * rows) == [2, 4, 8, 10]
    assert sizes_within(prepared.schema, 10, 2 * rows - 1) == [1, 2, 4, 8, 10]  # size 1 makes it reachable
    assert sizes_within(prepared.schema, 10, rows - 1) is None
    for max_ep in (2 * rows, 2 * rows - 1, rows):  # what auto hands AutoDim, AutoDim can meet
        sizes = sizes_within(prepared.schema, 10, max_ep)
        AutoDimEmbedding(prepared.schema, sizes, max_ep=max_ep)
    with pytest.raises(ConfigError, match="search.max_ep"):  # what the ladder without size 1 could not meet
        AutoDimEmbedding(prepared.schema, [2, 4, 8, 10], max_ep=2 * rows - 1)
    fits = budget.fitting_methods(prepared.schema, 10, rows - 1)
    assert "autodim" not in fits and "joint" not in fits


class StepClock:
    """A clock one second further on after every training step, so deadlines fall at known steps."""

    def __init__(self) -> None:
        self.t = 0.0

    def spent(self) -> float:
        return self.t

    def save(self) -> None:
        pass


class Tick(Hook):
    def __init__(self, clock: StepClock, cut_after_epoch: int | None = None) -> None:
        self.clock, self.cut_after_epoch = clock, cut_after_epoch

    def after_step(self, trainer, batch, step) -> None:  # noqa: ANN001
        self.clock.t += 1.0

    def on_epoch_end(self, trainer, epoch, metrics) -> None:  # noqa: ANN001
        if epoch == self.cut_after_epoch:  # an lr cut before the deadline's, as a bad epoch makes
            trainer.reduce_lr()


@pytest.mark.parametrize(("anneal", "cut_after", "expected"), [
    (2.0, None, [1.0] * 4 + [0.1] * 2),  # 5.5 epochs of time: the last two start at the reduced lr
    (0.0, None, [1.0] * 6),  # turned off: the deadline ends the fit at the full lr
    (2.0, 1, [1.0] + [0.1] * 5),  # already cut once: the deadline does not cut again
])
def test_a_deadline_bound_fit_ends_at_the_reduced_lr(prepared, anneal: float, cut_after: int | None,  # noqa: ANN001
                                                    expected: list[float]) -> None:
    torch.manual_seed(0)
    model = build_model("fm", prepared.schema, embedding_dim=4)
    train = prepared.batches("train", 512, seed=0)
    clock = StepClock()
    deadline = auto.Deadline(clock, 5.5 * len(train), anneal_epochs=anneal)  # type: ignore[arg-type]
    cfg = TrainerConfig(epochs=30, batch_size=512, lr=1e-3, min_epochs=30, progress=False)  # no plateau cut
    trainer = Trainer(cfg)
    res = trainer.fit(model, train, prepared.batches("valid", 4096, shuffle=False),
                      hooks=[Tick(clock, cut_after), deadline])
    assert res.epochs == 6, "the deadline ends the sixth epoch half-way"
    assert [h["lr"] / 1e-3 for h in res.history] == pytest.approx(expected)
    assert trainer.lr_reduced == (expected[-1] < 1)
