"""ESAPN: a policy grows each frequency bucket's embedding size while the model trains on a stream.

Liu et al., Automated Embedding Size Search in Deep Recommender Systems, SIGIR 2020. Every `decision_every`
batches of a pass over the training data, a policy per field chooses keep or enlarge for each frequency
bucket (sizes only grow, through `sizes`); the reward of enlarging is a counterfactual validation-loss drop
minus `memory_lambda` times the memory it adds (see `recnas/search/esapn.py`). With a budget (`max_ep` /
`max_ep_fraction`) no grow past it is made. The retrain model stores every id at its bucket's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from recnas.data.schema import Schema
from recnas.data.splits import Splits
from recnas.errors import ConfigError
from recnas.methods.base import (
    BudgetConfig,
    Log,
    MethodConfig,
    has_large_id_fields,
    register_method,
    search_batches,
    sizes_within,
    weight_settings,
)
from recnas.methods.mixed_width import MixedWidthMethod, non_empty_buckets
from recnas.nn.mixed_width import size_counts
from recnas.search.esapn import ESAPNSearch, random_rate_for_ep
from recnas.space import Space
from recnas.space.esapn import ESAPNEmbedding
from recnas.train.hooks import Hook
from recnas.train.seed import set_seed


class ESAPNConfig(MethodConfig, BudgetConfig):
    """ESAPN: candidate sizes, the decision rounds and the policy."""

    method: Literal["esapn"] = Field("esapn", description="per-bucket embedding sizes grown by a policy (ESAPN)")
    sizes: list[int] = Field(default_factory=lambda: [2, 4, 8, 16, 64, 128], min_length=2,
                             description="candidate sizes, increasing; the largest is the full width")
    buckets: int = Field(10, ge=1, description="frequency buckets per field (one decision each per round)")
    passes: int = Field(1, ge=1, description="passes over the training stream (the paper: one)")
    decision_every: int = Field(5, ge=1, description="training batches per decision round")
    warmup: float = Field(0.1, ge=0, lt=1, description="share of the first pass before decisions start")
    valid_rows: int = Field(4000, ge=1, description="rows of the fixed validation set the rewards are measured on")
    policy_lr: float = Field(0.03, gt=0, description="learning rate of the size policy")
    hidden: int = Field(32, ge=1, description="hidden width of the size policy")
    enlarge_init: float = Field(0.1, gt=0, lt=1, description="p(enlarge) of the untrained policy")
    entropy_weight: float = Field(1e-3, ge=0, description="entropy bonus of the policy")
    memory_lambda: float = Field(0.01, ge=0, description="weight of the memory share a grow adds, in its reward")


@register_method("esapn")
class ESAPN(MixedWidthMethod):
    """The method of the module docstring."""

    paper = "Liu et al., Automated Embedding Size Search in Deep Recommender Systems, SIGIR 2020"
    decides = "an embedding size per frequency bucket of every field"
    config = ESAPNConfig
    auto_rank = 40
    curve_keys = ("round", "mean_value", "ep_fraction", "decision round", "mean value of growing")
    curve_y2_label = "EP share"
    smoke = ("search.sizes=[2,4,8]", "search.decision_every=2", "search.valid_rows=300", "search.batch_size=128")

    @classmethod
    def auto_settings(cls, schema: Schema, embedding_dim: int, max_ep: int) -> list[str] | None:
        """Where there are large id tables and every id fits at the smallest size: sizes grown up to the tuned width.

        Size 1 comes first where every id at 2 is over the budget (`sizes_within`); the search never grows past it.
        """
        sizes = sizes_within(schema, embedding_dim, max_ep)
        if not has_large_id_fields(schema) or sizes is None:
            return None
        return [f"search.sizes={sizes}", f"search.max_ep={max_ep}"]

    def full_dim(self) -> int:
        """The largest candidate size."""
        return int(self.s.sizes[-1])

    def block(self, schema: Schema) -> ESAPNEmbedding:
        """The growing embedding."""
        return ESAPNEmbedding(schema, self.s.sizes, self.s.buckets, **self.cfg.model.encoding_kwargs())

    def arch(self, block: ESAPNEmbedding, sample: dict[str, Any]) -> dict[str, Any]:
        """The sizes in arch.json terms."""
        index = block.bucket_size_index()
        widths = {n: [block.sizes[int(k)] for k in index[i]] for i, n in enumerate(block.fields)}
        return {"sample": sample, "space_fingerprint": Space(block.choices()).fingerprint(),
                "sizes": {n: size_counts(w) for n, w in block.id_sizes().items()},
                **non_empty_buckets(block.rows, widths),
                "candidate_sizes": block.sizes, "buckets": block.n_buckets, "common_dim": block.sizes[-1],
                **self.ep_keys(block.field_ep(), block.full_field_ep())}

    def stream(self, splits: Splits, model: Any, search_dir: Path, log: Log,
               random_enlarge: float | None = None) -> ESAPNSearch:
        """The stream search over `model` (a random policy with `random_enlarge`)."""
        cfg, s = self.cfg, self.s
        lr, l2 = weight_settings(cfg)
        n_valid = len(splits.ds.splits["valid"]["y"])
        valid = next(splits.ds.batches("valid", min(s.valid_rows, n_valid), shuffle=True, seed=cfg.seed).iter_epoch(0))
        block = model.embedding_block
        budget = s.budget(sum(block.full_field_ep().values()))
        start = sum(block.field_ep().values())
        if budget is not None and budget < start:
            raise ConfigError(f"the budget ({budget:,} floats) is below ESAPN's smallest model ({start:,}: every id at "
                              f"size {min(s.sizes)}); raise search.max_ep / search.max_ep_fraction, or add a smaller "
                              "size to search.sizes")
        train = search_batches(cfg, splits)
        rounds = (s.passes * len(train) - int(s.warmup * len(train))) // s.decision_every
        return ESAPNSearch(
            model, train, valid, passes=s.passes, decision_every=s.decision_every, lr=lr,
            embedding_l2=l2, policy_lr=s.policy_lr, hidden=s.hidden, enlarge_init=s.enlarge_init,
            memory_lambda=s.memory_lambda, entropy_weight=s.entropy_weight, random_enlarge=random_enlarge,
            warmup=s.warmup, seed=cfg.seed, max_ep=budget,
            history_path=search_dir / "history.jsonl", trainer=self.cfg.trainer,
            checkpoint=search_dir / "checkpoint.pt",
            checkpoint_every=max(min(10, rounds // 5), 1), log=log)

    def search(self, splits: Splits, search_dir: Path, log: Log, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
        """Stream the data while the policy grows buckets."""
        set_seed(self.cfg.seed, self.cfg.threads)
        model = self.supernet(splits.ds.schema)
        search_dir.mkdir(parents=True, exist_ok=True)
        log(f"searching ESAPN sizes over {self.s.passes} pass(es) of the training stream")
        esapn = self.stream(splits, model, search_dir, log)
        sample = esapn.run(hooks)
        block = model.embedding_block
        assert isinstance(block, ESAPNEmbedding)
        return {**self.arch(block, sample), "probs": block.export_probs(), "rounds": esapn.rounds,
                "enlarge_rate": esapn.enlarge_rate, "memory_lambda": self.s.memory_lambda,
                "max_ep": esapn.max_ep, "search_seconds": esapn.seconds}

    def control_arch(self, splits: Splits, arch: dict[str, Any], control_dir: Path, log: Log) -> dict[str, Any]:
        """The same stream with a coin instead of the policy, its p(enlarge) set for the searched EP share.

        The control stream keeps its history and checkpoint under `control_dir/stream/`, so it resumes too.
        """
        set_seed(self.cfg.seed, self.cfg.threads)
        model = self.supernet(splits.ds.schema)
        block = model.embedding_block
        share = arch["ep"] / max(arch["full_ep"], 1)
        p = random_rate_for_ep(block, int(arch["rounds"]), share, seed=self.cfg.seed)
        log(f"ESAPN control: a random policy with p(enlarge) = {p:.4f}, set for the searched EP share {share:.3f}")
        stream_dir = control_dir / "stream"
        stream_dir.mkdir(parents=True, exist_ok=True)
        search = self.stream(splits, model, stream_dir, log, random_enlarge=p)
        sample = search.run()
        return {**self.arch(block, sample), "control": "random policy at the searched EP", "random_enlarge": p,
                "rounds": search.rounds, "enlarge_rate": search.enlarge_rate, "search_seconds": search.seconds}

    def curve(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per decision round: the EP share, how many buckets grew, the mean value of growing, train loss."""
        return [{"round": h["round"], "ep_fraction": h["ep_fraction"], "enlarged": h["enlarged"],
                 "mean_value": h["mean_value"], "train_loss": h.get("train_loss")} for h in history]
