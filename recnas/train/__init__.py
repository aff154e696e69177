"""Training: the loop, optimisers, metrics and hooks (separate from the models)."""

from __future__ import annotations

from recnas.train.config import TrainerConfig
from recnas.train.hooks import Hook
from recnas.train.metrics import binary_metrics, count_params
from recnas.train.trainer import FitResult, Trainer, evaluate, predict_logits

__all__ = ["FitResult", "Hook", "Trainer", "TrainerConfig", "binary_metrics", "count_params", "evaluate",
           "predict_logits"]
