"""Hooks: how a search strategy (or a logger) plugs into the plain training loop without changing it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from recnas.data.batches import FieldBatch
    from recnas.train.trainer import Trainer


class Hook:
    """No-op base: override what you need. Called in list order."""

    def on_fit_start(self, trainer: Trainer, model: torch.nn.Module) -> None:
        """Before the first epoch (e.g. build architecture optimisers)."""

    def exclude_parameters(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        """Parameters the trainer's own optimisers must not touch (e.g. architecture weights)."""
        return []

    def after_step(self, trainer: Trainer, batch: FieldBatch, step: int) -> None:
        """After each weight update (e.g. an architecture step on a validation batch)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        """After validation of each epoch (e.g. anneal a temperature, log probabilities)."""

    def on_fit_end(self, trainer: Trainer, model: torch.nn.Module) -> None:
        """After the best weights are restored."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed fit needs to continue exactly (tensors, numbers, strings, lists, dicts only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict` (called after `on_fit_start` when a fit resumes from a checkpoint)."""
