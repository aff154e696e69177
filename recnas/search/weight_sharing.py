"""Sample-based search with weight sharing: one supernet trained on sampled architectures, a strategy on their rewards.

Each step trains the supernet on `train_batches` batches, each with a fresh sample from the strategy (so
the shared weights serve every architecture), then scores `samples_per_step` samples on one validation
batch and tells the strategy their rewards. The reward is R = R_Q - lambda * C_M: R_Q the quality on the
validation batch (-logloss by default; AUC on request) and C_M the sample's memory cost in [0, 1]; with
a budget, a sample above it loses 1 + its excess (`budget_reward`). The first `warmup_steps` steps
only train the weights: rewards of an untrained supernet say nothing.

The search is a `Hook` of the one training loop (`Trainer`): the trainer makes the weight steps (its
optimiser, sparse gradients, clipping, embedding L2, progress and checkpoints), the hook picks each step's
architecture and runs the controller after every `train_batches` of them. With `checkpoint`, the trainer
saves the whole state (supernet, optimisers, strategy, random generators, batch position) every
`checkpoint_every` controller steps, and a search started again on the same folder continues from there
and ends with the same export as an uninterrupted one.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recnas.data.batches import BatchIterator, FieldBatch
from recnas.errors import ConfigError, TrainingError
from recnas.fileio import write_jsonl_atomic
from recnas.search.oneshot import searchable_blocks
from recnas.search.sample import SampleStrategy
from recnas.space.choice import Sample
from recnas.train.config import TrainerConfig
from recnas.train.hooks import Hook
from recnas.train.metrics import binary_metrics
from recnas.train.trainer import fit_search_hook


def batch_stream(batches: BatchIterator, start: int = 0) -> Iterator[FieldBatch]:
    """Batches forever, epoch after epoch, beginning at global batch number `start` (for resumption)."""
    per_epoch = max(len(batches), 1)
    epoch, offset = divmod(start, per_epoch)
    while True:
        yield from itertools.islice(batches.iter_epoch(epoch), offset, None)
        epoch, offset = epoch + 1, 0


def budget_reward(quality: float, cost: float, memory_lambda: float, max_cost: float | None,
                  budget_cost: float | None = None) -> float:
    """R = R_Q - lambda * C_M; above `max_cost`, 1 + the excess lower still.

    The budget is checked on `budget_cost` when given (a cost normalised otherwise than the soft term's), else on C_M.

    The penalty of 1 exceeds any AUC difference, and any logloss difference of a supernet that is not far off
    (they are 0.005-0.03 between layouts), so a sample within the budget scores above one outside it.
    """
    reward = quality - memory_lambda * cost
    used = cost if budget_cost is None else budget_cost
    if max_cost is not None and used > max_cost:
        reward -= 1.0 + (used - max_cost)
    return reward


class WeightSharingSearch(Hook):
    """The search of the module docstring: a trainer hook, and `run()` to drive it.

    Args:
        model: the supernet; its searchable blocks follow `set_sample`.
        strategy: proposes samples and learns from rewards.
        cost: C_M of a sample, in [0, 1].
        budget_cost: the cost the hard budget `max_cost` is checked on (default `cost`), e.g. the EP share.
        train, valid: batch iterators (the validation batches are the reward's).
        steps: controller steps; warmup_steps of them train weights only.
        samples_per_step: samples scored (and told) per step, all on the same validation batch.
        train_batches: weight steps per controller step.
        full_share: share of the weight steps that train the whole supernet (every block at its largest, the
            `set_sample(None)` state) instead of a fresh sample. Sampled steps alone train only what the controller
            already favours, so options it left early (a field's tail rows) stay untrained and keep looking bad;
            the full steps keep every weight trained (the "largest child" of the sandwich rule). 0 = ENAS/NIS.
        quality: `logloss` (R_Q = -logloss) or `auc`.
        trainer: how the weights train (optimiser, clipping, ...); `lr` and `embedding_l2` override its own.
    """

    def __init__(self, model: nn.Module, strategy: SampleStrategy, cost: Callable[[Sample], float],
                 train: BatchIterator, valid: BatchIterator, steps: int, samples_per_step: int = 8,
                 train_batches: int = 1, warmup_steps: int = 0, lr: float = 1e-3, embedding_l2: float = 0.0,
                 full_share: float = 0.0, memory_lambda: float = 0.0, max_cost: float | None = None,
                 quality: Literal["logloss", "auc"] = "logloss", budget_cost: Callable[[Sample], float] | None = None,
                 history_path: str | Path | None = None, trainer: TrainerConfig | None = None,
                 checkpoint: str | Path | None = None, checkpoint_every: int = 100, record_every: int = 10,
                 log: Callable[[str], None] | None = None) -> None:
        if steps < 1 or samples_per_step < 1 or train_batches < 1:
            raise ConfigError("steps, samples_per_step and train_batches must be >= 1")
        if not 0 <= warmup_steps < steps:
            raise ConfigError(f"warmup_steps ({warmup_steps}) must be in [0, steps={steps})")
        if not 0 <= full_share <= 1:
            raise ConfigError(f"full_share must be in [0, 1], got {full_share}")
        if quality not in ("logloss", "auc"):
            raise ConfigError(f"quality must be logloss or auc, got {quality!r}")
        self.model, self.strategy, self.cost, self.budget_cost = model, strategy, cost, budget_cost
        # the blocks a sample drives: AutoDis encoders have no discrete choices, and train with the weights
        self.blocks = [b for b in searchable_blocks(model) if b.choices()]
        self.train, self.valid = train, valid
        self.steps, self.samples_per_step, self.train_batches = steps, samples_per_step, train_batches
        self.warmup_steps, self.full_share = warmup_steps, full_share
        self.memory_lambda, self.max_cost, self.quality = memory_lambda, max_cost, quality
        weight_steps = steps * train_batches
        self.trainer_config = (trainer or TrainerConfig()).model_copy(update={
            "lr": lr, "embedding_l2": embedding_l2, "epochs": math.ceil(weight_steps / max(len(train), 1)),
            "restore_best": False, "checkpoint_every": max(checkpoint_every, 1) * train_batches})
        self.history_path = Path(history_path) if history_path is not None else None
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.record_every = record_every
        self.log = log or (lambda _m: None)
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.seconds = 0.0
        self._losses: list[float] = []  # weight-step losses since the last record (kept across a resume)
        self._valid: Iterator[FieldBatch] | None = None
        self._t0 = 0.0

    # ---- one step -----------------------------------------------------------------------------
    def _set(self, sample: Mapping[str, Any] | None) -> None:
        for block in self.blocks:
            block.set_sample(sample)

    def _trains_full(self, index: int) -> bool:
        """Whether weight step `index` (counted over the whole search) trains the full supernet.

        The full steps are spread evenly and drawn without randomness, so a resumed search makes the same choices.
        """
        return math.floor((index + 1) * self.full_share) > math.floor(index * self.full_share)

    def score(self, sample: Mapping[str, Any], batch: FieldBatch) -> tuple[float, dict[str, float]]:
        """Reward of `sample` on one validation batch, with its parts."""
        self.model.eval()
        self._set(sample)
        with torch.no_grad():
            logits = self.model(batch)
            logloss = float(F.binary_cross_entropy_with_logits(logits, batch.y))
        quality = -logloss if self.quality == "logloss" else binary_metrics(batch.y.numpy(), logits.numpy())["auc"]
        cost = float(self.cost(sample))
        budget = float(self.budget_cost(sample)) if self.budget_cost is not None else None
        reward = budget_reward(quality, cost, self.memory_lambda, self.max_cost, budget)
        if not math.isfinite(reward):
            raise TrainingError(f"the reward of step {self.step} is {reward}; the supernet diverged (lower the lr)")
        return reward, {"logloss": logloss, "quality": quality, "cost": cost}

    # ---- Hook ---------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, model: nn.Module) -> None:
        """Start the clock and the validation stream (moved on by `load_state_dict` on a resume)."""
        self._t0 = time.perf_counter() - self.seconds
        self._valid = batch_stream(self.valid, max(self.step - self.warmup_steps, 0))

    def before_step(self, trainer: Any, batch: FieldBatch, step: int) -> None:
        """Train this step's architecture: the whole supernet, or a fresh sample of the strategy."""
        self.model.train()
        self._set(None if self._trains_full(step) else self.strategy.ask())

    def after_step(self, trainer: Any, batch: FieldBatch, step: int) -> None:
        """After every `train_batches` weight steps, one controller step: score samples, tell their rewards."""
        self._losses.append(trainer.last_loss.item())
        if step % self.train_batches:
            return
        told: list[tuple[float, dict[str, float]]] = []
        if self.step >= self.warmup_steps:
            assert self._valid is not None
            vb = next(self._valid)
            for _ in range(self.samples_per_step):
                sample = self.strategy.ask()
                reward, parts = self.score(sample, vb)
                self.strategy.tell(sample, reward, parts)
                told.append((reward, parts))
        self.step += 1
        self.seconds = time.perf_counter() - self._t0
        if self.step % self.record_every == 0 or self.step == self.steps:
            self._record(self._losses, told)
            self._losses = []
            self.write_history()  # readable while the search runs
        if self.step >= self.steps:
            trainer.stop = True

    def on_fit_end(self, trainer: Any, model: nn.Module) -> None:
        """Leave the supernet whole and write the history."""
        self._set(None)
        self.write_history()

    def run(self, hooks: Sequence[Hook] = ()) -> Sample:
        """Search to the end under the trainer (resuming from `checkpoint` if there is one); the strategy's export.

        `hooks` run after this one (e.g. a logger).
        """
        fit_search_hook(self, self.trainer_config, self.model, self.train, self.checkpoint, self.log, hooks)
        return self.strategy.export()

    def _record(self, losses: list[float], told: list[tuple[float, dict[str, float]]]) -> None:
        record: dict[str, Any] = {"step": self.step, "seconds": round(self.seconds, 3),
                                  "train_loss": float(np.mean(losses)) if losses else None}
        if self.strategy.steps:  # a strategy with nothing told (warm-up) has no decision yet
            record["decision_cost"] = float(self.cost(self.strategy.export()))
        if told:
            record.update(reward=float(np.mean([r for r, _ in told])),
                          valid_logloss=float(np.mean([p["logloss"] for _, p in told])),
                          cost=float(np.mean([p["cost"] for _, p in told])))
        entropy = getattr(self.strategy, "entropy", None)
        if entropy is not None:
            record["entropy"] = entropy()
        self.history.append(record)
        self.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))

    def write_history(self) -> None:
        """Write the step records to `history_path` (one JSON object per line)."""
        if self.history_path is not None:
            write_jsonl_atomic(self.history_path, self.history)

    # ---- resumption ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The strategy, the controller step, the clock, the history and the losses not yet recorded."""
        return {"strategy": self.strategy.state_dict(), "step": self.step, "seconds": self.seconds,
                "history": json.dumps(self.history), "losses": json.dumps(self._losses)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict` (after `on_fit_start`) and move the validation stream to where it was."""
        self.strategy.load_state_dict(state["strategy"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.history = json.loads(state["history"])
        self._losses = json.loads(state["losses"])
        self.on_fit_start(None, self.model)
        self.write_history()
        self.log(f"resumed the search at controller step {self.step}")
