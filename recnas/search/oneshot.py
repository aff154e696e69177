"""One-shot (gradient) search strategies, plugged into the trainer through hooks."""

from __future__ import annotations

import time
from typing import Any

from torch import nn

from recnas.search.grda import GRDA
from recnas.space.choice import SearchableBlock
from recnas.train.hooks import Hook


def searchable_blocks(model: nn.Module) -> list[Any]:
    """Every searchable block inside `model`."""
    return [m for m in model.modules() if isinstance(m, SearchableBlock)]


def arch_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Architecture parameters of every searchable block (each once)."""
    seen: dict[int, nn.Parameter] = {}
    for block in searchable_blocks(model):
        for p in block.arch_parameters():
            seen[id(p)] = p
    return list(seen.values())


class GRDAGateSearch(Hook):
    """AutoFIS's one-level search: on every batch, Adam steps the weights and GRDA steps the gates on the same loss.

    The trainer's optimisers leave the gates alone (`exclude_parameters`); after each weight step this hook
    applies GRDA to the gate gradients of the same backward pass and clears them.
    """

    def __init__(self, lr: float = 1.0, c: float = 5e-4, mu: float = 0.8) -> None:
        self.lr, self.c, self.mu = lr, c, mu
        self.optimizer: GRDA | None = None
        self.history: list[dict[str, Any]] = []
        self._t0 = 0.0

    def exclude_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The gates are not the weight optimiser's to update."""
        return arch_parameters(model)

    def on_fit_start(self, trainer: Any, model: nn.Module) -> None:
        """Build GRDA over the gates."""
        self.model = model
        self.optimizer = GRDA(arch_parameters(model), lr=self.lr, c=self.c, mu=self.mu)
        self._t0 = time.perf_counter()

    def after_step(self, trainer: Any, batch: Any, step: int) -> None:
        """GRDA step on the gates with this batch's gradients."""
        assert self.optimizer is not None
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        """Record the gates and how many are still non-zero."""
        gates = {}
        for block in searchable_blocks(self.model):
            if hasattr(block, "interactions") and hasattr(block.interactions, "gates"):
                gates.update(block.interactions.gates())
        nonzero = sum(1 for v in gates.values() if v != 0)
        self.history.append({"epoch": epoch, "metrics": dict(metrics), "nonzero_gates": nonzero, "gates": gates,
                             "seconds": round(time.perf_counter() - self._t0, 3)})

    def state_dict(self) -> dict[str, Any]:
        """GRDA state and history (to resume a search)."""
        return {"optimizer": self.optimizer.state_dict() if self.optimizer else None, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved (call after `on_fit_start`)."""
        if state.get("optimizer") is not None and self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.history = list(state.get("history", []))

