"""NIS: multi-size embedding blocks chosen by a REINFORCE controller (Joglekar et al., KDD 2020).

Each categorical field's ids are split into frequency buckets (`row_shares`, head first) and its columns
into `col_blocks` blocks; the controller decides, per field and block, how many buckets keep it (`me`) or
one width per field (`se`). A weight-sharing supernet trains the sampled layouts; the reward is
R = R_Q - memory_lambda * C_M on validation batches, with a hard budget (`max_ep` / `max_ep_fraction`) on the
EP share. The controller's baseline is, per layout, the mean reward of the other layouts of its step (all scored
on one validation batch), not the paper's moving average: a batch's difficulty moves every reward of its step
alike, and the moving average left it in the advantages as noise larger than the layouts' differences (the planted
rank-8 pair got the memory on 7 of 10 synthetic seeds with it, every seed without; bench/README.md "Known answers").
The retrain model stores every id at its width (`MixedWidthEmbedding`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from recnas.data.schema import Schema
from recnas.data.splits import Splits
from recnas.errors import ConfigError
from recnas.methods.base import (
    FillBudgetConfig,
    Log,
    MethodConfig,
    has_large_id_fields,
    register_method,
    search_batches,
    weight_settings,
)
from recnas.methods.mixed_width import MixedWidthMethod, non_empty_buckets
from recnas.search.reinforce import ReinforceController
from recnas.search.weight_sharing import WeightSharingSearch
from recnas.space import Space
from recnas.space.nis import NISEmbedding, fill_layout, random_layout, trim_layout
from recnas.train.hooks import Hook
from recnas.train.seed import set_seed

CONTROLLER_LR = {"logits": 0.05, "lstm": 0.01}


class NISConfig(MethodConfig, FillBudgetConfig):
    """NIS: the block grid, the controller and the reward."""

    method: Literal["nis"] = Field("nis", description="multi-size embedding blocks (NIS)")
    layout: Literal["me", "se"] = Field("me", description="multi-size (me: blocks per frequency bucket) or "
                                        "single-size (se: one width per field) layouts")
    row_shares: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.7], min_length=1,
                                    description="frequency-rank shares of the row buckets, head first")
    col_blocks: int = Field(4, ge=1, description="column blocks per field (model.embedding_dim must divide by it)")
    min_blocks: int = Field(0, ge=0, description="me: column blocks every id keeps (not searched); 0 = the paper, "
                            "where a tail id can end with no columns")
    field_floor: bool = Field(True, description="every field keeps at least one column block on its most frequent "
                              "ids, so no field is embedded as zeros whole; false: the paper's space")
    steps: int = Field(1200, ge=1, description="controller steps")
    warmup_steps: int = Field(100, ge=0, description="first steps that train only the weights")
    samples_per_step: int = Field(8, ge=1, description="layouts scored per step on one validation batch")
    train_batches: int = Field(1, ge=1, description="weight steps per controller step")
    full_share: float = Field(0.0, ge=0, le=1, description="share of the weight steps on the whole supernet "
                              "(every block stored) instead of a sampled layout, so no block goes untrained")
    valid_batch_size: int = Field(2048, ge=1, description="rows of the validation batch of each step")
    controller: Literal["logits", "lstm"] = Field("logits", description="the REINFORCE controller's policy")
    controller_lr: float | None = Field(None, gt=0, description="default 0.05 (logits), 0.01 (lstm)")
    entropy_weight: float = Field(1e-3, ge=0, description="entropy bonus of the controller")
    reward_baseline: Literal["moving", "leave_one_out"] = Field(
        "leave_one_out", description="REINFORCE baseline: per layout the mean reward of the step's other layouts, "
        "scored on the same validation batch (cancels that batch's difficulty), or a moving average of past steps' "
        "rewards (the paper's; the planted pair on 7 of 10 synthetic seeds against 10 of 10)")
    memory_lambda: float = Field(0.01, ge=0, description="weight of the memory cost C_M in the reward "
                                 "R = R_Q - memory_lambda * C_M")
    cost: Literal["field_mean", "total"] = Field(
        "field_mean", description="C_M of the reward: the stored share averaged over fields, or of all fields together "
        "(the budget is always on the EP share of all searched fields)")
    quality: Literal["logloss", "auc"] = Field("logloss", description="R_Q: -logloss or AUC")


@register_method("nis")
class NIS(MixedWidthMethod):
    """The method of the module docstring."""

    paper = "Joglekar et al., Neural Input Search for Large Scale Recommendation Models, KDD 2020"
    decides = "column blocks per frequency bucket of every field"
    config = NISConfig
    auto_rank = 30
    smoke = ("search.steps=40", "search.warmup_steps=5", "search.samples_per_step=4", "model.embedding_dim=8")

    @classmethod
    def auto_settings(cls, schema: Schema, embedding_dim: int, max_ep: int) -> list[str] | None:
        """Where there are large id tables: as many column blocks (4, 2 or 1) as divide the tuned width.

        None where the default grid's smallest layout is over `max_ep` (the search would refuse the budget).
        """
        if not has_large_id_fields(schema):
            return None
        blocks = next(b for b in (4, 2, 1) if embedding_dim % b == 0)
        d = NISConfig(method="nis", col_blocks=blocks)
        block = NISEmbedding(schema, embedding_dim, d.row_shares, blocks, d.layout, d.min_blocks,
                             field_floor=d.field_floor)
        if block.smallest_share() * sum(block.full_field_ep().values()) > max_ep:
            return None  # the search would refuse it (`stream`'s check)
        return [f"search.col_blocks={blocks}", f"search.max_ep={max_ep}", "search.fill_budget=true"]

    def check(self) -> None:
        """The grid must divide the width; a control needs multi-size layouts."""
        super().check()
        if self.cfg.lab.control and self.s.layout != "me":
            raise ConfigError("lab.control draws a random multi-size layout; with search.layout=se set "
                              "lab.control=false")
        if self.s.reward_baseline == "leave_one_out" and self.s.samples_per_step < 2:
            raise ConfigError("search.reward_baseline=leave_one_out compares the layouts of one step: set "
                              "search.samples_per_step to 2 or more, or search.reward_baseline=moving")
        if self.cfg.model.embedding_dim % self.s.col_blocks:
            raise ConfigError(f"model.embedding_dim ({self.cfg.model.embedding_dim}) must divide into "
                              f"search.col_blocks ({self.s.col_blocks}) equal column blocks")

    def block(self, schema: Schema) -> NISEmbedding:
        """The supernet embedding."""
        s = self.s
        return NISEmbedding(schema, self.full_dim(), s.row_shares, s.col_blocks, s.layout, s.min_blocks,
                            field_floor=s.field_floor, **self.cfg.model.encoding_kwargs())

    def max_cost(self, block: NISEmbedding) -> float | None:
        """The budget as an EP share of the searched fields."""
        s = self.s
        if s.max_ep_fraction is not None:
            return float(s.max_ep_fraction)
        return None if s.max_ep is None else s.max_ep / max(sum(block.full_field_ep().values()), 1)

    def arch(self, block: NISEmbedding, sample: dict[str, Any]) -> dict[str, Any]:
        """The layout in arch.json terms."""
        return {"sample": sample, "space_fingerprint": Space(block.choices()).fingerprint(),
                "blocks": block.layout(sample), **non_empty_buckets(block.rows, {n: block.bucket_widths(sample, n)
                                                                                 for n in block.fields}),
                "common_dim": block.common_dim, "layout": block.mode,
                "row_shares": block.row_shares, "col_blocks": block.col_blocks,
                **self.ep_keys(block.field_ep(sample), block.full_field_ep())}

    def search(self, splits: Splits, search_dir: Path, log: Log, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
        """The controller learns layouts while the supernet trains them."""
        cfg, s = self.cfg, self.s
        set_seed(cfg.seed, cfg.threads)
        model = self.supernet(splits.ds.schema)
        search_dir.mkdir(parents=True, exist_ok=True)
        block = model.embedding_block
        assert isinstance(block, NISEmbedding)
        controller = ReinforceController(Space(block.choices()), seed=cfg.seed, kind=s.controller,
                                         lr=s.controller_lr or CONTROLLER_LR[s.controller], batch=s.samples_per_step,
                                         entropy_weight=s.entropy_weight, baseline=s.reward_baseline)
        lr, l2 = weight_settings(cfg)
        n_valid = len(splits.ds.splits["valid"]["y"])  # full batches only: a small last one may hold one class
        valid = splits.ds.batches("valid", s.valid_batch_size, shuffle=True, seed=cfg.seed,
                                  drop_last=n_valid >= s.valid_batch_size)
        max_cost = self.max_cost(block)
        smallest = block.smallest_share()
        if max_cost is not None and max_cost < smallest - 1e-9:
            raise ConfigError(
                f"the budget ({max_cost:.2%} of the searched fields' EP) is below NIS's smallest layout "
                f"({smallest:.2%}: search.min_blocks={s.min_blocks} block(s) for every id, and with "
                f"search.field_floor={s.field_floor} one block on each field's head bucket); raise search.max_ep / "
                "search.max_ep_fraction, or set search.field_floor=false and search.min_blocks=0")
        # the hard budget is on the EP share; with cost=total that is C_M itself, computed once
        ep_share = None if s.cost == "total" else (lambda x: block.memory_cost(x, "total"))
        log(f"searching NIS ({s.layout}) layouts for {s.steps} controller steps, {s.samples_per_step} per step")
        search = WeightSharingSearch(
            model, controller, lambda x: block.memory_cost(x, s.cost), search_batches(cfg, splits), valid,
            steps=s.steps, samples_per_step=s.samples_per_step, train_batches=s.train_batches,
            full_share=s.full_share, warmup_steps=s.warmup_steps, lr=lr, embedding_l2=l2,
            memory_lambda=s.memory_lambda, max_cost=max_cost, quality=s.quality,
            budget_cost=ep_share, history_path=search_dir / "history.jsonl", trainer=cfg.trainer,
            checkpoint=search_dir / "checkpoint.pt", checkpoint_every=max(min(100, s.steps // 10), 1),
            record_every=max(s.steps // 100, 1), log=log)
        sample, probs = search.run(hooks), controller.probs()
        argmax_cost = block.memory_cost(sample, "total")
        if max_cost is not None and argmax_cost > max_cost:  # the hard budget holds for the export too
            sample = trim_layout(block, sample, probs, max_cost, "total")
            log(f"trimmed to the budget: EP share {argmax_cost:.3f} -> {block.memory_cost(sample, 'total'):.3f} "
                f"(budget {max_cost:.3f})")
        if s.fill_budget and max_cost is not None:
            before = block.memory_cost(sample, "total")  # the decoded layout's share, or the trimmed one's
            sample = fill_layout(block, sample, probs, max_cost, "total")
            log(f"filled the budget: EP share {before:.3f} -> {block.memory_cost(sample, 'total'):.3f} "
                f"(budget {max_cost:.3f})")
        return {**self.arch(block, sample), "probs": probs, "steps": s.steps, "memory_lambda": s.memory_lambda,
                "cost": s.cost, "max_cost": max_cost, "fill_budget": s.fill_budget, "argmax_cost": argmax_cost,
                "search_seconds": search.seconds}

    def control_arch(self, splits: Splits, arch: dict[str, Any], control_dir: Path, log: Log) -> dict[str, Any]:
        """A random multi-size layout at the searched EP."""
        set_seed(self.cfg.seed, self.cfg.threads)
        block = self.block(splits.ds.schema)
        sample = random_layout(block, int(arch["ep"]), np.random.default_rng(self.cfg.seed))
        return {**self.arch(block, sample), "control": "random layout at the searched EP"}

    def curve(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per recorded controller step: reward, validation logloss, the decision's C_M, train loss."""
        return [{"step": h["step"], "reward": h.get("reward"), "valid_logloss": h.get("valid_logloss"),
                 "decision_cost": h.get("decision_cost"), "train_loss": h.get("train_loss")} for h in history]
