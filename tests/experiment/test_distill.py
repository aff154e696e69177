"""Distillation (`distill.*`): the training targets blend the labels with a teacher's probabilities."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from recnas.data.batches import BatchIterator
from recnas.data.splits import train_arrays
from recnas.errors import DataError
from recnas.experiment.config import load_config
from recnas.experiment.distill import distilled_targets
from recnas.experiment.run import load_run, load_splits, run_train
from recnas.scoring import sigmoid
from recnas.train.trainer import predict_logits


def config(data: Path, cache: Path, *extra: str):  # noqa: ANN201
    return load_config(None, [f"data.path={data}", f"data.cache_dir={cache}", "threads=1", "trainer.progress=false",
                              "trainer.epochs=2", "model.embedding_dim=8", "model.mlp=[32]", *extra])


def teacher_probabilities_on_train(teacher: Path) -> np.ndarray:
    """What a run (the teacher) predicts for the train rows, scored directly from its run folder and encoding."""
    t_cfg, _, model = load_run(teacher)
    ds = load_splits(t_cfg).ds
    _, logits = predict_logits(model, BatchIterator(train_arrays(ds, None), 4096, shuffle=False))
    return sigmoid(logits)


@pytest.mark.parametrize("student_floor", [None, 3])  # the same encoding, and rare ids shared in the student's
def test_targets_are_the_labels_blended_with_the_teachers_probabilities(synth_dir: Path, tmp_path: Path,
                                                                          student_floor: int | None) -> None:
    teacher = run_train(config(synth_dir, tmp_path / "cache"), tmp_path / "teacher").path
    extra = [f"data.min_count={{c1: {student_floor}, c2: {student_floor}}}"] if student_floor else []
    cfg = config(synth_dir, tmp_path / "cache", *extra, f"distill.teacher={teacher}", "distill.weight=0.3")
    arrays = train_arrays(load_splits(cfg.model_copy(update={"distill": type(cfg.distill)()})).ds, None)
    if student_floor:  # the student reads other ids than the teacher: the teacher must score its own encoding
        assert not np.array_equal(arrays["cat"], train_arrays(load_splits(load_run(teacher)[0]).ds, None)["cat"])
    y = np.asarray(arrays["y"])
    blended = distilled_targets(cfg, arrays)["y"]
    p = teacher_probabilities_on_train(teacher)
    assert blended.dtype == np.float32 and blended.shape == y.shape
    np.testing.assert_allclose(blended, 0.7 * y + 0.3 * p, atol=1e-6)
    assert 0 < blended.min() and blended.max() < 1  # soft: no target is a hard 0 or 1 any more
    assert np.array_equal(distilled_targets(cfg.model_copy(update={"distill": type(cfg.distill)()}), arrays)["y"], y)


def test_a_cut_train_split_gets_the_teachers_first_rows_and_no_run_is_a_clear_error(synth_dir: Path,
                                                                                      tmp_path: Path) -> None:
    teacher = run_train(config(synth_dir, tmp_path / "cache"), tmp_path / "teacher").path
    cfg = config(synth_dir, tmp_path / "cache", f"distill.teacher={teacher}", "lab.max_train_rows=500")
    y = load_splits(cfg).train.tensors["y"].numpy()
    p = teacher_probabilities_on_train(teacher)[:500]
    np.testing.assert_allclose(y, 0.5 * train_arrays(load_splits(cfg).ds, 500)["y"] + 0.5 * p, atol=1e-6)
    with pytest.raises(DataError, match="distill.teacher: .*nowhere"):
        load_splits(config(synth_dir, tmp_path / "cache", f"distill.teacher={tmp_path / 'nowhere'}"))


def test_a_distilled_student_predicts_closer_to_its_teacher(synth_dir: Path, tmp_path: Path) -> None:
    """Over three seeds: a student trained mostly on a teacher's targets ends far nearer the teacher's predictions
    on the training rows (mean absolute gap, what it was fitted to) than the same student on the labels. The teacher
    is barely trained (one step), so its probabilities are far from the labels a plain student learns."""
    steps = ["trainer.batch_size=256", "trainer.epochs=4", "trainer.lr=3e-3"]
    for seed in (1, 2, 3):
        teacher = run_train(config(synth_dir, tmp_path / "cache", f"seed={seed}", "trainer.epochs=1"),
                            tmp_path / f"teacher{seed}").path
        p_teacher = teacher_probabilities_on_train(teacher)
        gaps = {}
        for name, extra in {"plain": [], "taught": [f"distill.teacher={teacher}", "distill.weight=0.9"]}.items():
            cfg = config(synth_dir, tmp_path / "cache", f"seed={seed + 10}", *steps, *extra)
            run = run_train(cfg, tmp_path / f"{name}{seed}").path
            gaps[name] = float(np.abs(teacher_probabilities_on_train(run) - p_teacher).mean())
        assert gaps["taught"] < 0.5 * gaps["plain"], (seed, gaps)


def test_rows_the_student_skips_as_bad_are_skipped_for_the_teacher_too(synth_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    lines = (data / "train.csv").read_text().splitlines(keepends=True)
    lines.insert(50, lines[50].replace(",", ",not-a-number,", 1))  # one field too many: a bad row
    (data / "train.csv").write_text("".join(lines))
    cache = tmp_path / "cache"
    teacher = run_train(config(data, cache, "data.on_bad_row=skip"), tmp_path / "teacher").path
    cfg = config(data, cache, "data.on_bad_row=skip", f"distill.teacher={teacher}", "distill.weight=0.5")
    y = train_arrays(load_splits(cfg.model_copy(update={"distill": type(cfg.distill)()})).ds, None)["y"]
    assert len(y) == len(lines) - 2  # the header and the bad row
    assert load_splits(cfg).train.n == len(y)  # the teacher's rows line up: no error
