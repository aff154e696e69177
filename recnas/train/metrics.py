"""Metrics: AUC and logloss (scikit-learn), parameter counts."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score
from torch import nn


def binary_metrics(y: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """AUC and logloss of logits against 0/1 labels (AUC is NaN when only one class is present)."""
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    p = np.clip(p, 1e-7, 1 - 1e-7)
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return {"auc": auc, "logloss": float(log_loss(y, p, labels=[0, 1]))}


def count_params(model: nn.Module) -> int:
    """All trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
