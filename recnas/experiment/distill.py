"""Distillation (`distill.*`): train on the labels blended with a trained teacher's probabilities.

A compact model (narrower tables, rare ids sharing a row) learns the full-width model's soft targets as well as the
clicks. Binary cross-entropy is linear in its target, so training on (1 - w) * y + w * p_teacher is the label loss
plus w times the distillation loss, at the loss scale the tuned lr and embedding L2 were chosen for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recnas.errors import DataError
from recnas.scoring import score_rows, sigmoid

if TYPE_CHECKING:
    from recnas.experiment.config import ExperimentConfig


class DistillConfig(BaseModel):
    """Where the soft targets come from, and how much they weigh."""

    model_config = ConfigDict(extra="forbid")

    teacher: str | None = Field(
        None, description="a finished run folder (`recnas train`, a tune trial, a retrain) trained on the same data: "
        "its probabilities join every training target (unset = labels only)")
    weight: float = Field(0.5, gt=0, lt=1, description="share of the teacher's probability in each training target")


def teacher_probabilities(cfg: ExperimentConfig, y: np.ndarray) -> np.ndarray:
    """The teacher's click probability for every training row of `cfg` (whose labels are `y`), in row order.

    The teacher reads the train file through its own fitted schema (its vocabularies, floors and hashing), as
    `recnas predict` would, so it may differ from the student in everything but the rows; the labels it reads must
    be `y` (the first rows, under `lab.max_train_rows`), or the two do not see the same rows in the same order.
    """
    import torch

    from recnas.data.batches import BatchIterator
    from recnas.data.source import open_dataset
    from recnas.experiment.run import load_run
    from recnas.train.trainer import predict_logits

    folder = Path(str(cfg.distill.teacher))
    try:
        t_cfg, schema, teacher = load_run(folder)
    except DataError as e:
        raise DataError(f"distill.teacher: {e}") from None
    path = Path(open_dataset(str(cfg.data.path), label=cfg.data.label, positive=cfg.data.positive).splits["train"])

    def scorer(arrays: dict[str, np.ndarray]) -> np.ndarray:
        return predict_logits(teacher, BatchIterator(arrays, t_cfg.trainer.eval_batch_size, shuffle=False))[1]

    with torch.no_grad():  # the rows the student's cache skipped as bad are skipped here too
        t_y, t_logits, _, _ = score_rows(schema, path, scorer, require_label=True, on_bad_row=cfg.data.on_bad_row)
    t_y, t_logits = t_y[: len(y)], t_logits[: len(y)]
    if not np.array_equal(t_y, np.asarray(y)):
        raise DataError(f"distill.teacher {folder}: reading {path} through the teacher's schema gives {len(t_y):,} "
                        f"rows whose labels are not this run's {len(y):,}, so the rows do not line up (rows skipped "
                        "as bad in one and not the other?); fix the data or unset distill.teacher")
    return sigmoid(t_logits)


def distilled_targets(cfg: ExperimentConfig, arrays: dict[str, Any]) -> dict[str, Any]:
    """`arrays` (the train split) with each label replaced by (1 - weight) * label + weight * teacher probability."""
    if cfg.distill.teacher is None:
        return arrays
    y = np.asarray(arrays["y"])
    w = cfg.distill.weight
    return {**arrays, "y": ((1.0 - w) * y + w * teacher_probabilities(cfg, y)).astype(np.float32)}
