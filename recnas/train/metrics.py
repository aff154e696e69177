"""Metrics: AUC and logloss (`recnas.scoring`, shared with the torch-free serving path), parameter counts."""

from __future__ import annotations

from torch import nn

from recnas.scoring import binary_metrics


def count_params(model: nn.Module) -> int:
    """All trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["binary_metrics", "count_params"]
