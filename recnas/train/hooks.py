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

    def before_step(self, trainer: Trainer, batch: FieldBatch, step: int) -> None:
        """Before the forward pass of weight step `step` (counted from 0 over the fit; e.g. sample an architecture)."""

    def extra_loss(self, trainer: Trainer, batch: FieldBatch) -> torch.Tensor | None:
        """A term added to the loss this step trains on (e.g. the loss of other architectures on the same batch).

        The reported train loss stays the model's own.
        """
        return None

    def after_step(self, trainer: Trainer, batch: FieldBatch, step: int) -> None:
        """After each weight update (e.g. an architecture step); `step` counts the updates made, from 1.

        `trainer.last_loss` holds this step's training loss; setting `trainer.stop` ends the fit after this step.
        """

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        """After validation of each epoch (e.g. anneal a temperature, log probabilities)."""

    def on_fit_end(self, trainer: Trainer, model: torch.nn.Module) -> None:
        """After the best weights are restored."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed fit needs to continue exactly (tensors, numbers, strings, lists, dicts only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict` (called after `on_fit_start` when a fit resumes from a checkpoint)."""
