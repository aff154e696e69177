"""Metrics: AUC and logloss (scikit-learn), parameter counts."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score
from torch import nn

from recnas.errors import TrainingError


def binary_metrics(y: np.ndarray, logits: np.ndarray, split: str = "scored") -> dict[str, float]:
    """AUC and logloss of logits against 0/1 labels (AUC is NaN when only one class is present).

    Scores that are not finite are an error naming the `split` and the first such row, never a metric.
    """
    bad = ~np.isfinite(logits)
    if bad.any():
        raise TrainingError(f"the model's scores on the {split} rows are not finite for {int(bad.sum()):,} of "
                            f"{len(logits):,} rows (first: row {int(np.argmax(bad))}); an input value there is out "
                            "of range for the model (check that split's numerical fields) or the weights diverged")
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    p = np.clip(p, 1e-7, 1 - 1e-7)
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return {"auc": auc, "logloss": float(log_loss(y, p, labels=[0, 1]))}


def count_params(model: nn.Module) -> int:
    """All trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
