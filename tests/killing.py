"""A simulated kill for resume tests: a trainer hook that raises after a given weight step."""

from __future__ import annotations

from typing import Any

from recnas.train.hooks import Hook


class Killed(BaseException):
    """What a kill leaves: whatever was saved before it, nothing after."""


class KillAt(Hook):
    """Raises `Killed` right after weight step `step` (before that step's checkpoint, as a kill could)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def after_step(self, trainer: Any, batch: Any, step: int) -> None:  # noqa: D102
        if step >= self.step:
            raise Killed
