"""ESAPN's search: a size policy per field, trained by REINFORCE while the model trains on a stream.

Liu, Zhao et al., Automated Embedding Size Search in Deep Recommender Systems, SIGIR 2020.

The training data is streamed (`passes` times; the paper's setting is one pass). Every `decision_every`
batches is a round: for every (field, frequency bucket) not yet at the largest size, the field's policy
sees the state (log frequency of the bucket's ids in the stream so far, its current size, its current
validation loss) and chooses *keep* or *enlarge*; enlarged buckets grow at once (`ESAPNEmbedding.grow`).

Reward. A one-decision effect is far below the noise of a validation loss (measured: 0.015 against the
effect of one grow; here, the drop of a bucket's validation loss over the rounds after a grow showed no
difference between grown and kept buckets beyond noise), so the reward is a counterfactual measured on
the same weights: every training batch also trains the size each open bucket would grow to (its
next-size rows, with the model's shared weights), in two passes that each grow a random half of the
fields (so every next-size row gets a gradient every batch, and a model with an MLP also sees fields
grown apart, as they are scored), and at each round the validation loss of the samples
in bucket b of field f is measured with the field's open buckets one size up and at their sizes. Their
difference (summed over the bucket's samples, so a head bucket that moves many samples counts for
more), minus `memory_lambda` times the share of the field's full table the grow adds, is the reward of
*enlarge*; *keep* earns 0. The advantage subtracts the expected reward under the policy (a baseline that
does not depend on the action) and is divided by a running standard deviation.

A random control (`random_enlarge=p`) takes each decision by a coin of probability p instead, and learns
nothing: it is what the learned policy must beat at the same memory.

The search is a `Hook` of the one training loop (`Trainer`, `passes` epochs): the trainer makes the weight
steps and saves the checkpoints; the hook counts the stream, runs the decision rounds before a step and adds
the shifted passes to the step's loss.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recnas.data.batches import BatchIterator, FieldBatch
from recnas.errors import ConfigError
from recnas.fileio import write_jsonl_atomic
from recnas.space.choice import Sample
from recnas.space.esapn import ESAPNEmbedding
from recnas.train.config import TrainerConfig
from recnas.train.hooks import Hook
from recnas.train.trainer import fit_search_hook


class SizePolicy(nn.Module):
    """Per field: state (log frequency, one-hot size, loss) -> logits of (keep, enlarge)."""

    def __init__(self, n_fields: int, n_sizes: int, hidden: int = 32, enlarge_init: float = 0.1) -> None:
        super().__init__()
        self.nets = nn.ModuleList(
            nn.Sequential(nn.Linear(n_sizes + 2, hidden), nn.Tanh(), nn.Linear(hidden, 2)) for _ in range(n_fields))
        for net in self.nets:  # start at p(enlarge) = enlarge_init whatever the state
            nn.init.zeros_(net[2].weight)
            nn.init.constant_(net[2].bias, 0.0)
            with torch.no_grad():
                net[2].bias[1] = float(np.log(enlarge_init / (1 - enlarge_init)))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """`[F, B, state]` -> `[F, B, 2]`."""
        return torch.stack([net(state[i]) for i, net in enumerate(self.nets)])


def _esapn_block(model: nn.Module) -> ESAPNEmbedding:
    blocks = [m for m in model.modules() if isinstance(m, ESAPNEmbedding)]
    if len(blocks) != 1:
        raise ConfigError("ESAPN search needs a model with exactly one ESAPNEmbedding")
    return blocks[0]


class ESAPNSearch(Hook):
    """The search of the module docstring: a trainer hook, and `run()` to drive it.

    Args:
        model: a model whose embedding is an `ESAPNEmbedding`.
        train: the stream (iterated `passes` times in its epoch order).
        valid_batch: the fixed validation set of the paired rewards.
        decision_every: training batches per round.
        memory_lambda: weight of the memory share a grow adds.
        random_enlarge: None for the learned policy, else the enlarge probability of the random control.
        trainer: how the weights train (optimiser, clipping, ...); `lr` and `embedding_l2` override its own.
        checkpoint_every: decision rounds between checkpoints.
    """

    def __init__(self, model: nn.Module, train: BatchIterator, valid_batch: FieldBatch, passes: int = 1,
                 decision_every: int = 10, lr: float = 1e-3, embedding_l2: float = 0.0, policy_lr: float = 0.01,
                 hidden: int = 32, enlarge_init: float = 0.1, memory_lambda: float = 0.0, baseline_decay: float = 0.8,
                 entropy_weight: float = 1e-3, random_enlarge: float | None = None, warmup: float = 0.1,
                 value_smoothing: float = 0.7, seed: int = 0, max_ep: int | None = None,
                 history_path: str | Path | None = None, trainer: TrainerConfig | None = None,
                 checkpoint: str | Path | None = None,
                 checkpoint_every: int = 10, log: Callable[[str], None] | None = None) -> None:
        if passes < 1 or decision_every < 1:
            raise ConfigError("ESAPN needs passes >= 1 and decision_every >= 1")
        if not 0 <= warmup < 1:
            raise ConfigError(f"warmup is the share of the first pass before decisions start, in [0, 1); got {warmup}")
        if random_enlarge is not None and not 0 <= random_enlarge <= 1:
            raise ConfigError(f"random_enlarge must be a probability, got {random_enlarge}")
        self.model = model
        self.block = _esapn_block(model)
        self.train, self.valid_batch = train, valid_batch
        self.passes, self.decision_every = passes, decision_every
        self.trainer_config = (trainer or TrainerConfig()).model_copy(update={
            "lr": lr, "embedding_l2": embedding_l2, "epochs": passes, "restore_best": False,
            "checkpoint_every": max(int(checkpoint_every), 1) * decision_every})
        self.memory_lambda = memory_lambda
        self.baseline_decay, self.entropy_weight = baseline_decay, entropy_weight
        self.random_enlarge = random_enlarge
        self.max_ep = max_ep  # a grow that would store more floats than this is not made
        self.warmup_batches = int(warmup * len(train))
        self.optimizers: list[torch.optim.Optimizer] = []  # the trainer's, which a grow carries the moments of
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = SizePolicy(len(self.block.fields), len(self.block.sizes), hidden, enlarge_init)
        self.policy_optimizer = torch.optim.Adam(self.policy.parameters(), lr=policy_lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.history_path = Path(history_path) if history_path is not None else None
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.log = log or (lambda _m: None)
        self.log_every = 10
        self.history: list[dict[str, Any]] = []
        block = self.block
        # which validation samples fall in which bucket, and each bucket's share of them
        vb = block.row_bucket[valid_batch.cat + block.offsets]  # [N, F]
        n_f, n_b = len(block.fields), block.n_buckets
        self.valid_onehot = F.one_hot(vb, n_b).to(torch.float32)  # [N, F, B]
        self.valid_count = self.valid_onehot.sum(0)  # [F, B]
        self.seen = torch.zeros(len(block.size_index))
        bucket_rows = torch.zeros(n_f, n_b)  # ids per bucket (accumulate: `+= 1` on repeated indices counts once)
        bucket_rows.index_put_((block.row_field, block.row_bucket), torch.ones(len(block.row_field)), accumulate=True)
        self.bucket_rows = bucket_rows
        # 1 per bucket holding ids: the policy's frequency feature and the reward's memory term were validated (known
        # answers, benchmarks) with this scale, from a count that had counted one id per bucket; weighting them by the
        # real counts changes the search (the planted pair's field stays small) and needs re-validating first
        self.occupied = (bucket_rows > 0).to(torch.float32)
        full = torch.tensor([block.cardinality[n] * block.sizes[-1] for n in block.fields], dtype=torch.float32)
        self.full = full.unsqueeze(1)
        self.adv_var: float | None = None
        self.decisions = 0
        self.enlarged = 0
        self.rounds = 0
        self._losses: list[float] = []  # training losses since the last record (kept across a resume)
        self.value_smoothing = value_smoothing
        self.value_avg = torch.zeros(n_f, n_b)
        self.fresh = torch.ones(n_f, n_b, dtype=torch.bool)
        self.seconds = 0.0
        self._t0 = time.perf_counter()

    # ---- measurements -------------------------------------------------------------------------
    def bucket_loss(self) -> torch.Tensor:
        """`[F, B]` summed validation loss of the samples in each (field, bucket), divided by the set's size."""
        self.model.eval()
        with torch.no_grad():
            ll = F.binary_cross_entropy_with_logits(self.model(self.valid_batch), self.valid_batch.y, reduction="none")
        self.model.train()
        return torch.einsum("n,nfb->fb", ll, self.valid_onehot) / len(ll)

    def state(self, loss: torch.Tensor) -> torch.Tensor:
        """`[F, B, K + 2]`: log stream frequency per id (scaled), one-hot size, mean loss of the bucket's samples."""
        block = self.block
        seen = torch.zeros_like(self.bucket_rows)
        seen.index_put_((block.row_field, block.row_bucket), self.seen, accumulate=True)
        freq = torch.log1p(seen) / 10.0  # the bucket's stream count, not per id (the validated scale: `occupied`)
        size = F.one_hot(block.bucket_size_index(), len(block.sizes)).to(torch.float32)
        return torch.cat([freq.unsqueeze(-1), size, self._per_sample(loss).unsqueeze(-1)], dim=-1)

    def _per_sample(self, summed: torch.Tensor) -> torch.Tensor:
        """A `[F, B]` sum over each bucket's validation samples (divided by the set's size) as a mean per sample.

        Head and tail buckets then read on one scale; a bucket without validation rows counts as one.
        """
        return summed * len(self.valid_batch) / self.valid_count.clamp(min=1)

    def _size_step(self) -> torch.Tensor:
        """`[F, B]` floats one id of each bucket gains by growing one size (0 at the largest size)."""
        sizes = torch.tensor([*self.block.sizes, self.block.sizes[-1]], dtype=torch.float32)
        k = self.block.bucket_size_index()
        return sizes[k + 1] - sizes[k]

    def grow_cost(self) -> torch.Tensor:
        """`[F, B]` the reward's memory term per grow: the size step of one id over the field's full table.

        Per id, not per bucket (see `occupied`); what a grow really stores is `grow_floats`.
        """
        return self._size_step() * self.occupied / self.full

    def grow_floats(self) -> torch.Tensor:
        """`[F, B]` floats growing each bucket adds: the size step times the bucket's ids (what the budget counts)."""
        return self._size_step() * self.bucket_rows

    # ---- Hook: the stream --------------------------------------------------------------------
    def _open(self) -> torch.Tensor:
        """`[F, B]` buckets that can still grow (below the largest size, with rows)."""
        return (self.block.bucket_size_index() < len(self.block.sizes) - 1) & (self.bucket_rows > 0)

    def on_fit_start(self, trainer: Any, model: nn.Module) -> None:
        """Take the trainer's optimisers (a grow carries their moments) and start the clock."""
        self.optimizers = trainer.optimizers
        self._t0 = time.perf_counter() - self.seconds

    def before_step(self, trainer: Any, batch: FieldBatch, step: int) -> None:
        """A decision round when one is due before stream batch `step`; then count the batch's ids."""
        if step >= self.warmup_batches and (step - self.warmup_batches) % self.decision_every == 0:
            self._round()
        self.seen.index_add_(0, (batch.cat + self.block.offsets).reshape(-1), torch.ones(batch.cat.numel()))

    def extra_loss(self, trainer: Any, batch: FieldBatch) -> torch.Tensor | None:
        """Also train the sizes the open buckets would grow to: a random half of the fields, then the other half."""
        open_ = self._open()
        if not open_.any():
            return None
        coin = torch.rand(open_.shape[0], 1, generator=self.generator) < 0.5
        extra = torch.zeros(())
        for half in (coin, ~coin):
            self.block.set_shift(open_ & half)
            extra = extra + 0.5 * F.binary_cross_entropy_with_logits(self.model(batch), batch.y)
        self.block.set_shift(None)
        return extra

    def after_step(self, trainer: Any, batch: FieldBatch, step: int) -> None:
        """Keep the step's loss for the next round's record."""
        self._losses.append(trainer.last_loss.item())

    def on_fit_end(self, trainer: Any, model: nn.Module) -> None:
        """Stop the clock and write the history."""
        self.seconds = time.perf_counter() - self._t0
        self.write_history()

    def _round(self) -> None:
        """Measure, decide, learn and grow."""
        loss = self.bucket_loss()
        open_ = self._open()
        value = self._smooth(self.grow_value(loss, open_))
        state = self.state(loss)
        act = self._decide(state, open_)
        self._learn(state, act, open_, value)
        act = self._within_budget(act, value)
        self.block.grow(act, self.optimizers)
        self.fresh |= act  # a grown bucket's next size is another one: its average starts again
        self.decisions += int(open_.sum())
        self.enlarged += int(act.sum())
        self.rounds += 1
        self._record(self.rounds, self._losses, value, act, open_)
        self._losses = []

    def _decide(self, state: torch.Tensor, open_: torch.Tensor) -> torch.Tensor:
        """Enlarge (True) or keep for every bucket; closed buckets (largest size) always keep."""
        if self.random_enlarge is not None:
            act = torch.rand(open_.shape, generator=self.generator) < self.random_enlarge
        else:
            with torch.no_grad():
                p = torch.softmax(self.policy(state), -1)[..., 1]
            act = torch.rand(open_.shape, generator=self.generator) < p
        return act & open_

    def _learn(self, state: torch.Tensor, act: torch.Tensor, open_: torch.Tensor, value: torch.Tensor) -> None:
        """One REINFORCE step: reward = value of enlarging if enlarged (else 0), minus its expectation."""
        if self.random_enlarge is not None or not open_.any():
            return
        log_p = torch.log_softmax(self.policy(state), -1)[open_]
        p_enlarge = log_p[:, 1].exp().detach()
        v = value[open_]
        adv = torch.where(act[open_], v, torch.zeros_like(v)) - p_enlarge * v
        var = float(adv.pow(2).mean())
        self.adv_var = var if self.adv_var is None else self.baseline_decay * self.adv_var + (
            1 - self.baseline_decay) * var
        adv = adv / (max(var, self.adv_var) ** 0.5 + 1e-12)  # a quiet round is not blown up
        chosen = log_p.gather(1, act[open_].long().unsqueeze(1)).squeeze(1)
        entropy = -(log_p.exp() * log_p).sum(1)
        loss = -(adv * chosen).mean() - self.entropy_weight * entropy.mean()
        self.policy_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.policy_optimizer.step()

    def _smooth(self, value: torch.Tensor) -> torch.Tensor:
        """Average each bucket's value over the rounds since its last growth (an EMA of `value_smoothing`)."""
        b = self.value_smoothing
        self.value_avg = torch.where(self.fresh, value, b * self.value_avg + (1 - b) * value)
        self.fresh = torch.zeros_like(self.fresh)
        return self.value_avg

    def grow_value(self, loss: torch.Tensor, open_: torch.Tensor) -> torch.Tensor:
        """`[F, B]` validation-loss drop of each open bucket one size up, minus lambda times the memory it adds."""
        gain = torch.zeros_like(loss)
        for f in range(len(self.block.fields)):
            if not open_[f].any():
                continue
            only = torch.zeros_like(open_)
            only[f] = open_[f]
            self.block.set_shift(only)
            gain[f] = loss[f] - self.bucket_loss()[f]
        self.block.set_shift(None)
        return gain - self.memory_lambda * self.grow_cost()

    def _within_budget(self, act: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """The grows of `act` that fit under `max_ep`, the most valuable first (all of them without a budget).

        The policy learns from what it chose; the budget only decides what is built.
        """
        if self.max_ep is None or not act.any():
            return act
        added = self.grow_floats()[act]  # floats each chosen grow adds
        room = self.max_ep - sum(self.block.field_ep().values())
        order = torch.argsort(value[act], descending=True, stable=True)
        fits = torch.zeros(len(order), dtype=torch.bool)
        used = 0.0
        for k in order.tolist():
            if used + float(added[k]) <= room:
                fits[k] = True
                used += float(added[k])
        out = torch.zeros_like(act)
        out[act] = fits
        return out

    def run(self, hooks: Sequence[Hook] = ()) -> Sample:
        """Stream the data under the trainer, deciding and growing every round; the final size of every bucket.

        With `checkpoint`, the trainer saves the whole state every `checkpoint_every` rounds and a run that finds
        the file continues from it. `hooks` run after this one.
        """
        fit_search_hook(self, self.trainer_config, self.model, self.train, self.checkpoint, self.log, hooks)
        return self.block.export()

    # ---- resumption ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The policy, its optimiser, the generator, the stream counts, the value averages and the counters."""
        return {"policy": self.policy.state_dict(), "policy_optimizer": self.policy_optimizer.state_dict(),
                "generator": self.generator.get_state(), "seen": self.seen, "value_avg": self.value_avg,
                "fresh": self.fresh, "scalars": json.dumps([self.adv_var, self.decisions, self.enlarged, self.rounds,
                                                            time.perf_counter() - self._t0, self._losses]),
                "history": json.dumps(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict` (after `on_fit_start`)."""
        self.policy.load_state_dict(state["policy"])
        self.policy_optimizer.load_state_dict(state["policy_optimizer"])
        self.generator.set_state(state["generator"])
        self.seen = state["seen"]
        self.value_avg, self.fresh = state["value_avg"], state["fresh"]
        self.adv_var, self.decisions, self.enlarged, self.rounds, self.seconds, self._losses = json.loads(
            state["scalars"])
        self.history = json.loads(state["history"])
        self._t0 = time.perf_counter() - self.seconds
        self.write_history()
        self.log(f"resumed the ESAPN search at round {self.rounds}")

    @property
    def enlarge_rate(self) -> float:
        """Share of the decisions that enlarged."""
        return self.enlarged / max(self.decisions, 1)

    def _record(self, rounds: int, losses: list[float], value: torch.Tensor, act: torch.Tensor,
                open_: torch.Tensor) -> None:
        ep, full = self.block.field_ep(), self.block.full_field_ep()
        record = {"round": rounds, "seconds": round(time.perf_counter() - self._t0, 3),
                  "train_loss": float(np.mean(losses)) if losses else None,
                  "enlarged": int(act.sum()), "open": int(open_.sum()),
                  "mean_value": float(value[open_].mean()) if open_.any() else 0.0,
                  "value_of_enlarged": float(value[act].mean()) if act.any() else 0.0,
                  "ep_fraction": sum(ep.values()) / max(sum(full.values()), 1),
                  "value_per_sample": self._value_per_sample(value, open_)}
        self.history.append(record)
        if rounds % self.log_every == 0:
            self.write_history()  # readable while the search runs
            self.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
                              if not isinstance(v, dict)))  # the line shows scalars; tables stay in history.jsonl

    def _value_per_sample(self, value: torch.Tensor, open_: torch.Tensor) -> dict[str, list[float | None]]:
        """Per field and bucket: the reward of *enlarge* divided by the bucket's share of the validation rows.

        So a head bucket and a tail bucket read on one scale (the validation-loss drop per sample, memory term
        included); None where the bucket is closed or no validation row falls in it. For diagnosis: which
        buckets the counterfactual says should grow.
        """
        per = self._per_sample(value)
        ok = open_ & (self.valid_count > 0)
        return {f: [round(float(per[i, b]), 6) if ok[i, b] else None for b in range(per.shape[1])]
                for i, f in enumerate(self.block.fields)}

    def write_history(self) -> None:
        """Write the round records to `history_path` (one JSON object per line)."""
        if self.history_path is not None:
            write_jsonl_atomic(self.history_path, self.history)


def simulated_ep_fraction(block: ESAPNEmbedding, rounds: int, p: float, seed: int = 0, repeats: int = 8) -> float:
    """Mean EP share (of every field at the largest size) a coin of probability `p` ends with after `rounds`.

    The random control's decisions do not depend on the model, so its memory can be simulated exactly.
    """
    rows = torch.zeros(len(block.fields), block.n_buckets)
    rows[block.row_field, block.row_bucket] += 1
    sizes = torch.tensor(block.sizes, dtype=torch.float32)
    full = float(rows.sum()) * block.sizes[-1]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(repeats):
        k = torch.zeros_like(rows, dtype=torch.long)
        for _ in range(rounds):
            k = k + ((torch.rand(k.shape, generator=gen) < p) & (k < len(sizes) - 1)).long()
        out.append(float((sizes[k] * rows).sum()) / full)
    return float(np.mean(out))


def random_rate_for_ep(block: ESAPNEmbedding, rounds: int, ep_fraction: float, seed: int = 0) -> float:
    """The enlarge probability whose random control ends, in expectation, at `ep_fraction` of the full EP."""
    lo, hi = 0.0, 1.0
    for _ in range(20):
        mid = (lo + hi) / 2
        if simulated_ep_fraction(block, rounds, mid, seed) < ep_fraction:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
