"""One-shot (gradient) search: architecture parameters trained alongside the weights, through trainer hooks.

`OneShotStrategy` is a `Hook`. The trainer's own optimisers update the weights and leave the
architecture parameters alone (`exclude_parameters`); after each weight step the strategy takes one
architecture step, either

- one-level: on the gradients of the same training batch (AutoFIS, with GRDA), or
- bi-level (DARTS first order): on a fresh validation batch, so the architecture is chosen by what
  generalises (AutoDim, with Adam).

Blocks may add a differentiable `memory_cost()` (weighted by `memory_lambda`) and a `set_temperature(tau)`
for Gumbel-softmax (annealed per step as tau = max(tau_min, tau_start - tau_decay * step)). After
`warmup_epochs` epochs of weight-only training the architecture starts to move. Every epoch appends a
record (sample, probabilities, metrics, seconds) to `history` and, with `history_path`, to `history.jsonl`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from recnas.data.batches import BatchIterator, FieldBatch
from recnas.errors import ConfigError
from recnas.fileio import write_jsonl_atomic
from recnas.search.grda import GRDA, grda_threshold
from recnas.space.choice import SearchableBlock
from recnas.train import distributed
from recnas.train.hooks import Hook


def searchable_blocks(model: nn.Module) -> list[Any]:
    """Every searchable block inside `model` (a block nested in another one is listed too)."""
    return [m for m in model.modules() if isinstance(m, SearchableBlock)]


def arch_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Architecture parameters of every searchable block (each once)."""
    seen: dict[int, nn.Parameter] = {}
    for block in searchable_blocks(model):
        for p in block.arch_parameters():
            seen[id(p)] = p
    return list(seen.values())


def export_sample(model: nn.Module) -> dict[str, Any]:
    """The merged decision of every searchable block."""
    sample: dict[str, Any] = {}
    for block in searchable_blocks(model):
        sample.update(block.export())
    return sample


def export_probs(model: nn.Module) -> dict[str, list[float]]:
    """The merged preference of every searchable block."""
    probs: dict[str, list[float]] = {}
    for block in searchable_blocks(model):
        probs.update(block.export_probs())
    return probs


class ArchOptimizers:
    """Several architecture optimisers stepped as one (`mixed`: GRDA for sparse blocks' gates, Adam for the rest)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    def step(self) -> None:
        """Step every optimiser."""
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every optimiser's gradients."""
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """Each optimiser's state, by position."""
        return {str(i): opt.state_dict() for i, opt in enumerate(self.optimizers)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict`."""
        for i, opt in enumerate(self.optimizers):
            opt.load_state_dict(state[str(i)])


def temperature(step: int, start: float = 1.0, decay: float = 5e-5, minimum: float = 0.01) -> float:
    """Gumbel-softmax temperature after `step` architecture-phase steps: max(minimum, start - decay * step)."""
    return max(minimum, start - decay * step)


class OneShotStrategy(Hook):
    """Gradient search of every searchable block of a model (see the module docstring).

    Args:
        mode: `one_level` (same batch) or `bi_level` (validation batches; needs `valid`).
        optimizer: `adam` or `grda` for the architecture parameters, or `mixed`: GRDA (at `grda_lr`) for the
            blocks that declare `sparse_arch` (gates a search zeroes), Adam (at `lr`) for the others.
        lr: architecture learning rate.
        grda_c, grda_mu: GRDA's threshold parameters (threshold c * lr^(1/2+mu) * t^mu).
        warmup_epochs: epochs of weight-only training before architecture steps.
        tau_start, tau_decay, tau_min: the temperature schedule (per architecture step).
        memory_lambda: weight of the blocks' `memory_cost()` in the architecture loss.
        valid: validation batches for `bi_level` (cycled, reshuffled each pass).
        history_path: where to write `history.jsonl` (rewritten in full after each epoch).
    """

    def __init__(
        self, mode: Literal["one_level", "bi_level"] = "one_level", optimizer: Literal["adam", "grda"] = "adam",
        lr: float = 3e-3, grda_c: float = 5e-4, grda_mu: float = 0.8, warmup_epochs: int = 0,
        tau_start: float = 1.0, tau_decay: float = 5e-5, tau_min: float = 0.01, memory_lambda: float = 0.0,
        valid: BatchIterator | None = None, history_path: str | Path | None = None, grda_lr: float | None = None,
    ) -> None:
        if mode not in ("one_level", "bi_level"):
            raise ConfigError(f"search mode must be one_level or bi_level, got {mode!r}")
        if optimizer not in ("adam", "grda", "mixed"):
            raise ConfigError(f"architecture optimizer must be adam, grda or mixed, got {optimizer!r}")
        if mode == "bi_level" and valid is None:
            raise ConfigError("bi_level search needs validation batches (valid=...)")
        self.mode, self.optimizer_name, self.lr = mode, optimizer, lr
        self.grda_c, self.grda_mu = grda_c, grda_mu
        self.grda_lr = lr if grda_lr is None else grda_lr
        self.warmup_epochs = warmup_epochs
        self.tau_start, self.tau_decay, self.tau_min = tau_start, tau_decay, tau_min
        self.memory_lambda = memory_lambda
        self.valid = valid
        self.history_path = Path(history_path) if history_path is not None else None
        self.optimizer: torch.optim.Optimizer | ArchOptimizers | None = None
        self.history: list[dict[str, Any]] = []
        self.arch_steps = 0
        self.valid_pass = 0
        self._valid_iter: Iterator[FieldBatch] | None = None
        self._valid_used = 0  # batches taken from the current validation pass (resume continues the sequence)
        self._t0 = 0.0
        self._elapsed = 0.0  # seconds of earlier (resumed-from) fits

    # ---- Hook ---------------------------------------------------------------------------------
    def exclude_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """Architecture parameters are not the weight optimiser's to update."""
        return arch_parameters(model)

    def on_fit_start(self, trainer: Any, model: nn.Module) -> None:
        """Build the architecture optimiser and set the starting temperature."""
        self.model = model
        self.blocks = searchable_blocks(model)
        params = arch_parameters(model)
        if not params:
            raise ConfigError("the model has no architecture parameters to search")
        self.params = params
        if self.optimizer_name == "grda":
            self.optimizer = GRDA(params, lr=self.lr, c=self.grda_c, mu=self.grda_mu)
        elif self.optimizer_name == "mixed":
            sparse = {id(p) for b in self.blocks if getattr(b, "sparse_arch", False) for p in b.arch_parameters()}
            gates, rest = [p for p in params if id(p) in sparse], [p for p in params if id(p) not in sparse]
            parts: list[torch.optim.Optimizer] = []
            if gates:
                parts.append(GRDA(gates, lr=self.grda_lr, c=self.grda_c, mu=self.grda_mu))
            if rest:
                parts.append(torch.optim.Adam(rest, lr=self.lr))
            self.optimizer = ArchOptimizers(parts)
        else:
            self.optimizer = torch.optim.Adam(params, lr=self.lr)
        self._set_temperature()
        self._t0 = time.perf_counter()

    def _set_temperature(self) -> float:
        tau = temperature(self.arch_steps, self.tau_start, self.tau_decay, self.tau_min)
        for block in self.blocks:
            if hasattr(block, "set_temperature"):
                block.set_temperature(tau)
        return tau

    def _memory_cost(self) -> torch.Tensor | None:
        if self.memory_lambda == 0:
            return None
        costs = [b.memory_cost() for b in self.blocks if hasattr(b, "memory_cost")]
        return self.memory_lambda * torch.stack(costs).sum() if costs else None

    def _next_valid(self) -> FieldBatch:
        assert self.valid is not None
        if self._valid_iter is None:
            self._valid_iter = iter(self.valid.iter_epoch(self.valid_pass))
        try:
            batch = next(self._valid_iter)
        except StopIteration:
            self.valid_pass += 1
            self._valid_used = 0
            self._valid_iter = iter(self.valid.iter_epoch(self.valid_pass))
            batch = next(self._valid_iter)
        self._valid_used += 1
        return batch

    def after_step(self, trainer: Any, batch: FieldBatch, step: int) -> None:
        """One architecture step (after warm-up); clears the architecture gradients either way."""
        assert self.optimizer is not None
        if trainer.epoch <= self.warmup_epochs:
            self.optimizer.zero_grad(set_to_none=True)
            return
        if self.mode == "bi_level":  # first-order DARTS: the architecture follows the validation loss
            self.optimizer.zero_grad(set_to_none=True)
            vb = self._next_valid()
            loss = F.binary_cross_entropy_with_logits(self.model(vb), vb.y)
            cost = self._memory_cost()
            (loss + cost if cost is not None else loss).backward(inputs=list(self.params))
            distributed.average_gradients(self.params)  # data-parallel: one architecture on every rank
        else:  # one-level: the gradients of this training batch are already there
            cost = self._memory_cost()
            if cost is not None:
                cost.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.arch_steps += 1
        self._set_temperature()

    def grda_summary(self) -> dict[str, Any] | None:
        """For a GRDA search: the soft threshold reached and every |accumulator| (largest first); None under Adam.

        A search that zeroed (or kept) everything can then say which threshold would have kept some.
        """
        parts = self.optimizer.optimizers if isinstance(self.optimizer, ArchOptimizers) else [self.optimizer]
        grda = next((o for o in parts if isinstance(o, GRDA)), None)
        if grda is None:
            return None
        group = grda.param_groups[0]
        mags: list[float] = []
        step = 0
        for p in group["params"]:
            state = grda.state.get(p, {})
            acc = state.get("accumulator", p.detach())
            step = max(step, int(state.get("step", 0)))
            mags += acc.abs().flatten().tolist()
        return {"threshold": grda_threshold(group["c"], group["lr"], group["mu"], step),
                "magnitudes": sorted(mags, reverse=True)}

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        """Record the current decision and preferences; rewrite history.jsonl."""
        record: dict[str, Any] = {
            "epoch": epoch, "sample": export_sample(self.model), "probs": export_probs(self.model),
            "metrics": dict(metrics), "arch_steps": self.arch_steps,
            "tau": temperature(self.arch_steps, self.tau_start, self.tau_decay, self.tau_min),
            "seconds": round(self._elapsed + time.perf_counter() - self._t0, 3),
        }
        for block in self.blocks:
            if hasattr(block, "trace"):
                record.update(block.trace())
        self.history.append(record)
        self.write_history()

    def write_history(self) -> None:
        """Write every epoch record to `history_path` (one JSON object per line)."""
        if self.history_path is None or not distributed.is_main():
            return
        write_jsonl_atomic(self.history_path, self.history)

    # ---- resumption ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Optimiser state, step counters and history (JSON text, so the safe loader reads it back)."""
        assert self.optimizer is not None
        return {"optimizer": self.optimizer.state_dict(), "arch_steps": self.arch_steps,
                "valid_pass": self.valid_pass, "valid_position": self._valid_used,
                "history": json.dumps(self.history),
                "seconds": self._elapsed + time.perf_counter() - self._t0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict` (after `on_fit_start`)."""
        assert self.optimizer is not None
        self.optimizer.load_state_dict(state["optimizer"])
        self.arch_steps = int(state["arch_steps"])
        self.valid_pass = int(state["valid_pass"])
        self.history = json.loads(state["history"])
        self._elapsed = float(state["seconds"])
        self._t0 = time.perf_counter()
        self._valid_iter = None
        self._valid_used = int(state["valid_position"])
        if self.valid is not None:
            self._valid_iter = iter(self.valid.iter_epoch(self.valid_pass))
            for _ in range(self._valid_used):
                next(self._valid_iter)
        self._set_temperature()
        self.write_history()
