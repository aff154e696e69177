"""What the gradient (one-shot) methods share: their config keys and the search stage, run by the trainer.

The supernet trains for `epochs` epochs in `Trainer.fit` (no lr cuts, no early stopping unless `patience` is
set; the last state is exported), with `OneShotStrategy` as a hook that steps the architecture parameters
(one-level on the same batch, or bi-level on validation batches). Checkpoints, progress, clipping and resumption
are the trainer's.
A method subclasses `OneShotMethod` and says how its supernet is built and what its arch.json holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from recnas.data.schema import Schema
from recnas.data.splits import Splits
from recnas.methods.base import Log, MethodConfig, SearchMethod, fingerprint, search_batches
from recnas.nn.models import CTRModel
from recnas.search.grda import c_for_threshold
from recnas.search.oneshot import OneShotStrategy, export_probs, export_sample, searchable_blocks
from recnas.train import Trainer
from recnas.train.hooks import Hook
from recnas.train.seed import set_seed


class OneShotConfig(MethodConfig):
    """Keys of the gradient searches (the method's own class sets their defaults)."""

    epochs: int = Field(6, ge=1, description="search epochs")
    mode: Literal["one_level", "bi_level"] = Field(
        "one_level", description="one_level: architecture and weights step on the same batch; bi_level: first-order "
        "DARTS, architecture steps on validation batches")
    arch_optimizer: Literal["adam", "grda"] = Field("adam", description="optimiser of the architecture parameters")
    arch_lr: float = Field(0.03, gt=0, description="learning rate of the architecture parameters")
    warmup_epochs: int = Field(0, ge=0, description="weight-only epochs before architecture steps")
    patience: int | None = Field(
        None, ge=1, description="end the search after this many architecture epochs in a row whose supernet valid "
        "score (trainer.monitor) is below the best so far, warm-up included; the last state is exported. None: "
        "always run `epochs`. Once the supernet overfits, the structure follows an overfit model and the search "
        "time buys nothing")
    grda_mu: float = Field(0.8, gt=0, lt=1, description="GRDA: growth exponent of the soft threshold")
    grda_c: float | None = Field(None, ge=0, description="GRDA c; default: derived from grda_threshold")
    grda_threshold: float = Field(
        2.0, ge=0, description="GRDA's soft threshold at the end of the search; c is derived from the planned steps")
    tau_start: float = Field(1.0, gt=0, description="Gumbel-softmax temperature at the first architecture step")
    tau_min: float = Field(0.01, gt=0, description="lowest temperature")
    tau_end: float = Field(0.1, gt=0, description="temperature reached at the end of the search (tau_decay auto)")
    tau_decay: float | Literal["auto"] = Field(
        "auto", description="per-step decrease of tau; auto = reach tau_end after the planned architecture steps")

    @model_validator(mode="after")
    def _warmup_below_epochs(self) -> OneShotConfig:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be below epochs ({self.epochs})")
        return self


class OneShotMethod(SearchMethod):
    """A gradient search: subclasses build the supernet and describe it in arch.json."""

    trace_keys: tuple[str, ...] = ()  # keys of the block's per-epoch trace that the report's curve keeps
    data_parallel = True  # the search is one Trainer.fit: gradients, architecture ones included, averaged over ranks

    def supernet(self, schema: Schema) -> CTRModel:
        """The model with its searchable blocks (dense gradients: architecture steps need them)."""
        raise NotImplementedError

    def memory_lambda(self) -> float:
        """Weight of the blocks' `memory_cost()` in the architecture loss (0: none)."""
        return 0.0

    def grda_lr(self) -> float:
        """Learning rate of the GRDA-optimised gates (`arch_lr`; a method mixing optimisers has its own key)."""
        return float(self.s.arch_lr)

    def describe(self, model: CTRModel, sample: dict[str, Any]) -> dict[str, Any]:
        """The method's own arch.json keys for the exported `sample`."""
        return {}

    def after_search(self, model: CTRModel, splits: Splits) -> dict[str, Any]:
        """Extra arch.json keys computed from the searched supernet (in its final state), before it is dropped."""
        return {}

    def search(self, splits: Splits, search_dir: Path, log: Log, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
        """Train the supernet with the strategy as a trainer hook; export the last state."""
        cfg, s = self.cfg, self.s
        set_seed(cfg.seed, cfg.threads)
        model = self.supernet(splits.ds.schema)
        train = search_batches(cfg, splits)
        planned = max((s.epochs - s.warmup_epochs) * len(train), 1)
        grda_c = s.grda_c if s.grda_c is not None else c_for_threshold(s.grda_threshold, self.grda_lr(), s.grda_mu,
                                                                        planned)
        tau_decay = (max(s.tau_start - s.tau_end, 0.0) / planned if s.tau_decay == "auto" else float(s.tau_decay))
        n_valid = len(splits.ds.splits["valid"]["y"])
        valid = splits.ds.batches("valid", train.batch_size, shuffle=True, seed=cfg.seed,
                                  drop_last=n_valid >= train.batch_size)
        strategy = OneShotStrategy(
            s.mode, s.arch_optimizer, lr=s.arch_lr, grda_c=grda_c, grda_mu=s.grda_mu, warmup_epochs=s.warmup_epochs,
            tau_start=s.tau_start, tau_decay=tau_decay, tau_min=s.tau_min, memory_lambda=self.memory_lambda(),
            valid=valid if s.mode == "bi_level" else None, history_path=search_dir / "history.jsonl",
            grda_lr=self.grda_lr())
        update: dict[str, Any] = {"epochs": s.epochs, "patience": s.patience or s.epochs, "reduce_lr_factor": 1.0,
                                  "min_epochs": s.warmup_epochs, "restore_best": False, "sparse": False}
        if s.lr is not None:
            update["lr"] = s.lr
        if s.embedding_l2 is not None:
            update["embedding_l2"] = s.embedding_l2
        tcfg = cfg.trainer.model_copy(update=update)
        search_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = search_dir / "checkpoint.pt"
        log(f"searching with {self.name} ({s.mode}, {s.arch_optimizer}) for {s.epochs} epochs")
        Trainer(tcfg, log=log).fit(model, train, splits.valid, hooks=[strategy, *hooks], checkpoint=checkpoint)
        sample = export_sample(model)
        arch: dict[str, Any] = {
            "sample": sample, "space_fingerprint": fingerprint(searchable_blocks(model)),
            "probs": export_probs(model), "search_epochs": s.epochs, "arch_steps": strategy.arch_steps,
            "grda_c": grda_c, "tau_decay": tau_decay,
            "search_seconds": strategy.history[-1]["seconds"] if strategy.history else 0.0,
            "epochs_run": len(strategy.history),
            "valid_auc": strategy.history[-1]["metrics"].get("valid_auc") if strategy.history else None,
            **self.describe(model, sample), **self.after_search(model, splits)}
        grda = strategy.grda_summary()
        if grda is not None:
            arch["grda"] = grda
        return arch

    def curve(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per search epoch: valid AUC and logloss of the supernet, train loss, and the block's trace."""
        return [{"epoch": h["epoch"], "valid_auc": h["metrics"].get("valid_auc"),
                 "valid_logloss": h["metrics"].get("valid_logloss"), "train_loss": h["metrics"].get("train_loss"),
                 **{k: h[k] for k in self.trace_keys if k in h}} for h in history]


