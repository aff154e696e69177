"""Metrics: AUC and logloss (shared with the torch-free serving path), parameter counts, the Pareto front."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from recnas.scoring import binary_metrics


def count_params(model: nn.Module) -> int:
    """All trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def dense_params(model: nn.Module) -> int:
    """Trainable parameters outside the id tables: what an architecture adds on top of its embeddings."""
    return count_params(model) - sum(t.numel() for t in model.embedding_tables())  # type: ignore[operator]


def non_dominated(points: Sequence[Sequence[float]]) -> list[bool]:
    """Whether each point is on the Pareto front, every coordinate minimised.

    A point is dominated when another is at most as large in every coordinate and smaller in one.
    """

    def dominates(q: Sequence[float], p: Sequence[float]) -> bool:
        return all(b <= a for a, b in zip(p, q, strict=True)) and any(b < a for a, b in zip(p, q, strict=True))

    return [not any(dominates(q, p) for q in points) for p in points]


__all__ = ["binary_metrics", "count_params", "dense_params", "non_dominated"]
