"""Shared dense blocks: the MLP and the pair-index helper used by pairwise interactions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def pair_indices(num_fields: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of every field pair i < j (vectorised pair enumeration)."""
    rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
    return rows, cols


class MLP(nn.Module):
    """Linear -> [BatchNorm] -> ReLU -> Dropout for each hidden size, optionally a final linear output.

    Weights start Xavier-normal, biases zero (as FuxiCTR).
    """

    def __init__(
        self, in_dim: int, hidden: Sequence[int], dropout: float = 0.0, batch_norm: bool = False,
        out_dim: int | None = None,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        if out_dim is not None:
            layers.append(nn.Linear(width, out_dim))
            width = out_dim
        self.net = nn.Sequential(*layers)
        self.out_dim = width
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[batch, in_dim]` -> `[batch, out_dim]`."""
        return self.net(x)
