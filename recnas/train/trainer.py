"""The training loop: a plain PyTorch loop with early stopping, lr reduction on plateau and best-weights restore.

Models only return logits; the loss, optimisers, epochs and metrics live here. Search strategies plug
in through `Hook`s, so with no hooks this is the baseline and retrain path.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recnas.checkpoint import resume_from, save_checkpoint
from recnas.data.batches import BatchIterator
from recnas.errors import DataError, TrainingError
from recnas.nn.embedding import FieldEmbedding
from recnas.nn.facade import id_tables
from recnas.train import distributed
from recnas.train.config import TrainerConfig
from recnas.train.hooks import Hook
from recnas.train.metrics import binary_metrics
from recnas.train.optim import build_optimizers


@dataclass
class FitResult:
    """What `Trainer.fit` did: per-epoch history, the best epoch and timings (evaluation excluded from train)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    train_samples: int = 0

    @property
    def train_samples_per_s(self) -> float:
        """Training rows per second of training wall time."""
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else 0.0


@torch.no_grad()  # not inference_mode: gloo's collectives refuse inference tensors
def predict_logits(model: nn.Module, batches: BatchIterator) -> tuple[np.ndarray, np.ndarray]:
    """(labels, logits) over every batch of an unshuffled iterator, in eval mode.

    In a data-parallel job every rank scores its share of the rows and every rank gets all of them, in row order.
    """
    rank, world = distributed.world()
    if world > 1 and batches.world == 1:
        batches = batches.shard(rank, world)
    was_training = model.training
    model.eval()
    ys, outs = [], []
    for b in batches.iter_epoch(0):
        ys.append(b.y)
        outs.append(model(b))
    model.train(was_training)
    y = torch.cat(ys).numpy() if ys else np.zeros(0, np.float32)
    logits = torch.cat(outs).float().numpy() if outs else np.zeros(0, np.float32)
    return distributed.gather_rows(y, logits)


def evaluate(model: nn.Module, batches: BatchIterator, split: str = "validation") -> dict[str, float]:
    """AUC and logloss of `model` on a split (`split` names it in an error)."""
    y, logits = predict_logits(model, batches)
    return binary_metrics(y, logits, split)


def fit_search_hook(hook: Hook, config: TrainerConfig, model: nn.Module, train: BatchIterator,
                    checkpoint: Path | None, log: Callable[[str], None], hooks: Sequence[Hook] = ()) -> None:
    """Train `model` with a search `hook` (first, then `hooks`) and no validation split until the hook stops it.

    A killed search resumes from `checkpoint`, which is deleted once the search has ended.
    """
    Trainer(config, log=log).fit(model, train, None, hooks=[hook, *hooks], checkpoint=checkpoint)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)


def _hook_keys(hooks: Sequence[Hook]) -> list[tuple[str, Hook]]:
    """Stable names for hook states in a checkpoint: class name plus rank among hooks of that class.

    Stateless hooks (e.g. loggers) may come and go between a killed fit and its resumption.
    """
    seen: dict[str, int] = {}
    out = []
    for h in hooks:
        name = type(h).__name__
        out.append((f"{name}:{seen.get(name, 0)}", h))
        seen[name] = seen.get(name, 0) + 1
    return out


class Trainer:
    """Trains a logit model with binary cross-entropy (see `TrainerConfig` for every setting)."""

    def __init__(self, config: TrainerConfig | None = None, log: Callable[[str], None] | None = None) -> None:
        self.config = config or TrainerConfig()
        self.log = log or (lambda _m: None)
        self.optimizers: list[torch.optim.Optimizer] = []
        self.stop = False
        self.epoch = 0  # the epoch being trained (hooks read it)
        self.last_loss = torch.zeros(())  # the training loss of the last step (hooks read it)

    def _embedding_penalty(self, model: nn.Module) -> Callable[[], torch.Tensor] | None:
        l2 = self.config.embedding_l2
        if l2 == 0:
            return None
        if self.config.sparse:  # lazy L2: only the rows this batch looked up, so gradients stay sparse
            embeddings = [m for m in model.modules() if isinstance(m, FieldEmbedding)]
            for m in embeddings:
                m.track_rows = True
            return lambda: 0.5 * l2 * sum(m.touched_squared_norm() for m in embeddings)
        tables = id_tables(model)
        return lambda: 0.5 * l2 * sum(w.pow(2).sum() for w in tables)

    def reduce_lr(self) -> None:
        """Multiply every group's lr by `reduce_lr_factor`, as a bad epoch does (a hook may call it: a deadline)."""
        for opt in self.optimizers:
            for g in opt.param_groups:
                g["lr"] *= self.config.reduce_lr_factor

    @property
    def lr_reduced(self) -> bool:
        """Whether any lr of this fit is below the one it started at (checkpointed with the optimisers)."""
        return any(g["lr"] < g.get("initial_lr", g["lr"]) for opt in self.optimizers for g in opt.param_groups)

    def _progress(self, total: int, epoch: int) -> Any:
        if not (self.config.progress and sys.stderr.isatty()):
            return None
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        prog = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn("{task.fields[info]}"),
                        TimeRemainingColumn(), transient=True)
        prog.start()
        prog.add_task("train", total=total, epoch=epoch, info="")
        return prog

    def fit(
        self, model: nn.Module, train: BatchIterator, valid: BatchIterator | None = None,
        hooks: Sequence[Hook] = (), checkpoint: str | Path | None = None,
    ) -> FitResult:
        """Train `model`; with `valid`, stop early and restore the best-validation weights.

        With `checkpoint`, the whole loop state (weights, optimisers, hooks, random generators, counters)
        is saved there after every epoch, and a fit that finds the file resumes from it: a killed run
        started again ends exactly as an uninterrupted one.
        """
        try:
            return self._fit(model, train, valid, hooks, Path(checkpoint) if checkpoint is not None else None)
        finally:  # also when training stops with an error
            for m in model.modules():
                if isinstance(m, FieldEmbedding):
                    m.track_rows = False
                    m._touched = []

    def _save_checkpoint(self, path: Path, model: nn.Module, hooks: Sequence[Hook], state: dict[str, Any]) -> None:
        """Rank 0 writes the loop's state (every rank calls: each one's random generator goes in too)."""
        generators = distributed.gather_objects(torch.get_rng_state())
        if not distributed.is_main():
            return
        hook_states = {key: st for key, h in _hook_keys(hooks) if (st := h.state_dict())}
        blob = {"model": model.state_dict(), "optimizers": [o.state_dict() for o in self.optimizers],
                "hooks": hook_states, "torch_rng": generators[0], "world": len(generators), **state}
        if len(generators) > 1:
            blob["torch_rng_ranks"] = generators
        save_checkpoint(path, blob)

    def _load_checkpoint(self, path: Path, model: nn.Module, hooks: Sequence[Hook]) -> dict[str, Any]:
        def restore(blob: dict[str, Any]) -> dict[str, Any]:
            model.load_state_dict(blob["model"])
            for opt, st in zip(self.optimizers, blob["optimizers"], strict=True):
                opt.load_state_dict(st)
            for key, h in _hook_keys(hooks):
                if key in blob["hooks"]:
                    h.load_state_dict(blob["hooks"][key])
            rank, world = distributed.world()
            if int(blob.get("world", 1)) != world:
                raise TrainingError(f"{path} was written by a job of {blob.get('world', 1)} processes, and this one "
                                    f"has {world}; resume it with as many (--nproc), or delete it to start again")
            torch.set_rng_state(blob["torch_rng_ranks"][rank] if world > 1 else blob["torch_rng"])
            return blob

        return resume_from(path, restore, "fit")

    def _fit(self, model: nn.Module, train: BatchIterator, valid: BatchIterator | None,
             hooks: Sequence[Hook], checkpoint: Path | None) -> FitResult:
        cfg = self.config
        rank, world = distributed.world()
        if world > 1:  # one model on every rank: rank 0's weights, each rank its share of every batch
            distributed.broadcast_model(model)
            if train.world == 1:
                train = train.shard(rank, world)
            torch.manual_seed(torch.initial_seed() + rank)  # dropout: a mask of its own on each rank
        excluded = [p for h in hooks for p in h.exclude_parameters(model)]
        self.optimizers = build_optimizers(model, cfg.optimizer, cfg.lr, cfg.embedding_lr, cfg.weight_decay,
                                           cfg.sparse, excluded)
        for opt in self.optimizers:
            for g in opt.param_groups:
                g["initial_lr"] = g["lr"]  # what `lr_reduced` compares with; saved in the optimisers' state
        weights = [p for opt in self.optimizers for g in opt.param_groups for p in g["params"]]
        penalty = self._embedding_penalty(model)
        if valid is not None and cfg.monitor == "auc":
            y = valid.tensors["y"]
            if y.numel() == 0 or float(y.min()) == float(y.max()):
                raise DataError("the validation split holds a single class, so its AUC is undefined; "
                                "use a validation split with clicks and non-clicks (or trainer.monitor=logloss)")
        for h in hooks:
            h.on_fit_start(self, model)
        result = FitResult()
        sign = 1.0 if cfg.monitor == "auc" else -1.0
        loop = {"best": -math.inf, "bad": 0, "step": 0}  # early-stopping state and steps, as checkpointed
        best_state: dict[str, torch.Tensor] | None = None
        start, position, running, n_batches = 1, 0, 0.0, 0
        self.stop = False
        if checkpoint is not None and distributed.main_first(checkpoint.is_file):
            blob = self._load_checkpoint(checkpoint, model, hooks)
            loop = {k: blob[k] for k in loop}
            self.stop = blob["stop"]
            best_state = blob["best_state"]
            result = FitResult(**blob["result"])
            if "position" in blob:  # saved inside an epoch: continue that epoch where it was
                start, position, running, n_batches = blob["epoch"], blob["position"], blob["running"], blob["batches"]
                self.log(f"resumed from {checkpoint} in epoch {start}, after batch {position}")
            else:
                start = blob["epoch"] + 1
                self.log(f"resumed from {checkpoint} after epoch {blob['epoch']}")
        model.train()
        for epoch in range(start, cfg.epochs + 1):
            if self.stop:
                break
            self.epoch = epoch
            prog = self._progress(len(train), epoch)
            t0 = time.perf_counter()
            total_loss = torch.tensor(running)
            # by epoch number, so a resumed fit sees the same order
            for batch in train.iter_epoch(epoch - 1, start=position):
                position += 1
                if len(batch) < 2 and n_batches > 0:  # a 1-row remainder: batch norm cannot train on it
                    continue
                for h in hooks:
                    h.before_step(self, batch, loop["step"])
                logits = model(batch)
                loss = F.binary_cross_entropy_with_logits(logits, batch.y)
                total = loss
                for h in hooks:
                    extra = h.extra_loss(self, batch)
                    if extra is not None:
                        total = total + extra
                if penalty is not None:
                    total = total + penalty()
                for opt in self.optimizers:
                    opt.zero_grad(set_to_none=True)
                total.backward()
                if world > 1:  # every gradient, the one-shot searches' architecture ones too
                    distributed.average_gradients(model.parameters())
                if cfg.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(weights, cfg.max_grad_norm)  # not the architecture parameters
                for opt in self.optimizers:
                    opt.step()
                self.last_loss = loss.detach()
                total_loss += self.last_loss
                n_batches += 1
                loop["step"] += 1
                result.train_samples += len(batch) * world  # every rank's rows (shares differ by a row at most)
                for h in hooks:
                    h.after_step(self, batch, loop["step"])
                if prog is not None and n_batches % 20 == 0:
                    rate = result.train_samples / (result.train_seconds + time.perf_counter() - t0)
                    prog.update(prog.task_ids[0], completed=position,
                                info=f"{rate:,.0f} samples/s, loss {total_loss.item() / n_batches:.4f}")
                if self.stop:  # a hook ended the fit
                    break
                if checkpoint is not None and cfg.checkpoint_every and loop["step"] % cfg.checkpoint_every == 0:
                    now = time.perf_counter()
                    result.train_seconds += now - t0
                    t0 = now
                    self._save_checkpoint(checkpoint, model, hooks, {
                        **loop, "stop": self.stop, "epoch": epoch, "position": position, "running": total_loss.item(),
                        "batches": n_batches, "best_state": best_state, "result": asdict(result)})
            result.train_seconds += time.perf_counter() - t0
            if prog is not None:
                prog.stop()
            running = distributed.mean_over_ranks(total_loss.item())
            if not math.isfinite(running):
                raise TrainingError(f"training diverged in epoch {epoch}: the loss is {running}; "
                                    "lower trainer.lr or set trainer.max_grad_norm")
            record: dict[str, Any] = {"epoch": epoch, "train_loss": running / max(n_batches, 1),
                                      "lr": self.optimizers[0].param_groups[0]["lr"]}
            position, running, n_batches = 0, 0.0, 0
            result.epochs = epoch
            distributed.average_buffers(model)  # batch-norm statistics: one set for scoring and saving
            if valid is not None:
                t1 = time.perf_counter()
                metrics = evaluate(model, valid)
                result.eval_seconds += time.perf_counter() - t1
                record.update({f"valid_{k}": v for k, v in metrics.items()})
                value = sign * metrics[cfg.monitor]
                if value > loop["best"] + cfg.min_delta:
                    loop["best"], loop["bad"] = value, 0
                    result.best_epoch, result.best_valid = epoch, metrics
                    if cfg.restore_best:  # a search keeps its last state: no copy needed
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                elif epoch > cfg.min_epochs:
                    loop["bad"] += 1
                    self.reduce_lr()
                    if loop["bad"] >= cfg.patience:
                        self.stop = True
            record["seconds"] = round(result.train_seconds, 3)
            result.history.append(record)
            self.log(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            for h in hooks:
                h.on_epoch_end(self, epoch, record)
            if checkpoint is not None:
                self._save_checkpoint(checkpoint, model, hooks, {
                    **loop, "stop": self.stop, "epoch": epoch, "best_state": best_state, "result": asdict(result)})
        if best_state is not None and cfg.restore_best:
            model.load_state_dict(best_state)
        for h in hooks:
            h.on_fit_end(self, model)
        return result
