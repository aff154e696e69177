"""The search stage of the sample-based embedding methods (NIS, ESAPN), their random controls and retrain models.

NIS trains a weight-sharing supernet while a REINFORCE controller learns block layouts
(`WeightSharingSearch`); ESAPN streams the data while a size policy grows frequency buckets
(`ESAPNSearch`). Both export per-id widths, retrained by `MixedWidthEmbedding`. The control
(`search.control`) is what a learned layout must beat at the same memory: a random NIS layout of the same
EP, or the ESAPN run with a coin instead of the policy, its enlarge probability set so that it ends at the
learned run's EP in expectation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recnas.data.schema import Schema
from recnas.errors import ConfigError
from recnas.experiment.config import ExperimentConfig
from recnas.experiment.run import Splits, set_seed
from recnas.nn.models import MODELS, CTRModel, build_model
from recnas.search.esapn import ESAPNSearch, random_rate_for_ep
from recnas.search.reinforce import ReinforceController
from recnas.search.weight_sharing import WeightSharingSearch
from recnas.space import Space
from recnas.space.esapn import ESAPNEmbedding
from recnas.space.mixed_width import MixedWidthEmbedding, size_counts, widths_from_blocks
from recnas.space.nis import NISEmbedding, bucket_rows, fill_layout, random_layout

SAMPLED_METHODS = ("nis", "esapn")
CONTROLLER_LR = {"logits": 0.05, "lstm": 0.01}


def check_embedding_model(cfg: ExperimentConfig) -> None:
    """Refuse a model whose embedding these methods cannot replace (field-aware or embedding-free)."""
    cls = MODELS.get(cfg.model.name.lower())
    if cls is not None and (cls.field_aware or not cls.has_embedding):
        what = "keeps several vectors per id (field-aware)" if cls.field_aware else "has no embeddings"
        raise ConfigError(f"{cfg.search.method} gives each field one embedding vector; {cfg.model.name!r} {what}; "
                          "search another model (e.g. deepfm, fm, widedeep, dcnv2)")
    if cfg.trainer.sparse:
        raise ConfigError(f"{cfg.search.method}'s mixed-width tables take dense gradients (their embedding L2 acts on "
                          "whole tables); set trainer.sparse=false")
    if cfg.search.method == "nis" and cfg.search.control and cfg.search.nis.mode != "me":
        raise ConfigError("search.control draws a random multi-size layout; with search.nis.mode=se set "
                          "search.control=false")
    if cfg.search.method == "nis" and cfg.search.nis.fill_budget and cfg.search.nis.max_cost is None:
        raise ConfigError("search.nis.fill_budget grows the layout up to the hard budget; set search.nis.max_cost "
                          "(e.g. 0.4) or search.nis.fill_budget=false")
    if cfg.search.method == "nis" and cfg.model.embedding_dim % cfg.search.nis.col_blocks:
        raise ConfigError(f"model.embedding_dim ({cfg.model.embedding_dim}) must divide into "
                          f"search.nis.col_blocks ({cfg.search.nis.col_blocks}) equal column blocks")


def full_dim(cfg: ExperimentConfig) -> int:
    """The full embedding width: model.embedding_dim (NIS) or the largest candidate size (ESAPN)."""
    return int(cfg.search.esapn.sizes[-1]) if cfg.search.method == "esapn" else int(cfg.model.embedding_dim)


def build_sampled_supernet(cfg: ExperimentConfig, schema: Schema) -> CTRModel:
    """The configured zoo model with the NIS or ESAPN search embedding."""
    check_embedding_model(cfg)
    dim = full_dim(cfg)
    model = build_model(cfg.model.name, schema, **{**cfg.model.build_kwargs(), "embedding_dim": dim})
    enc = cfg.model.encoding_kwargs()
    if cfg.search.method == "nis":
        n = cfg.search.nis
        model.embedding = NISEmbedding(schema, dim, n.row_shares, n.col_blocks, n.mode, n.min_blocks, **enc)
    else:
        e = cfg.search.esapn
        model.embedding = ESAPNEmbedding(schema, e.sizes, e.buckets, **enc)
    return model


def _weights_settings(cfg: ExperimentConfig) -> tuple[float, float]:
    lr = cfg.search.lr if cfg.search.lr is not None else cfg.trainer.lr
    l2 = cfg.search.embedding_l2 if cfg.search.embedding_l2 is not None else cfg.trainer.embedding_l2
    return lr, l2


def _nis_arch(cfg: ExperimentConfig, block: NISEmbedding, sample: dict[str, Any]) -> dict[str, Any]:
    ep, full = block.field_ep(sample), block.full_field_ep()
    return {"method": "nis", "model": cfg.model.name, "sample": sample,
            "space_fingerprint": Space(block.choices()).fingerprint(), "blocks": block.layout(sample),
            "bucket_widths": {n: block.bucket_widths(sample, n) for n in block.fields}, "bucket_rows": block.rows,
            "common_dim": block.common_dim, "mode": block.mode, "row_shares": block.row_shares,
            "col_blocks": block.col_blocks, "field_ep": ep, "full_field_ep": full, "ep": sum(ep.values()),
            "full_ep": sum(full.values()), "ep_fraction": sum(ep.values()) / max(sum(full.values()), 1)}


def _esapn_arch(cfg: ExperimentConfig, block: ESAPNEmbedding, sample: dict[str, Any]) -> dict[str, Any]:
    ep, full = block.field_ep(), block.full_field_ep()
    index = block.bucket_size_index()
    return {"method": "esapn", "model": cfg.model.name, "sample": sample,
            "space_fingerprint": Space(block.choices()).fingerprint(),
            "sizes": {n: size_counts(w) for n, w in block.id_sizes().items()},
            "bucket_sizes": {n: [block.sizes[int(k)] for k in index[i]] for i, n in enumerate(block.fields)},
            "bucket_widths": {n: [block.sizes[int(k)] for k in index[i]] for i, n in enumerate(block.fields)},
            "bucket_rows": block.rows, "candidate_sizes": block.sizes, "buckets": block.n_buckets,
            "common_dim": block.sizes[-1], "field_ep": ep, "full_field_ep": full, "ep": sum(ep.values()),
            "full_ep": sum(full.values()), "ep_fraction": sum(ep.values()) / max(sum(full.values()), 1)}


def _esapn_search(cfg: ExperimentConfig, splits: Splits, model: CTRModel, search_dir: Path,
                  log: Callable[[str], None], random_enlarge: float | None = None) -> ESAPNSearch:
    from recnas.experiment.search import _search_batches

    e = cfg.search.esapn
    lr, l2 = _weights_settings(cfg)
    n_valid = len(splits.ds.splits["valid"]["y"])
    valid = next(splits.ds.batches("valid", min(e.valid_rows, n_valid), shuffle=True, seed=cfg.seed).iter_epoch(0))
    return ESAPNSearch(
        model, _search_batches(cfg, splits), valid, passes=e.passes, decision_every=e.decision_every, lr=lr,
        embedding_l2=l2, policy_lr=e.policy_lr, hidden=e.hidden, enlarge_init=e.enlarge_init,
        memory_lambda=e.memory_lambda, entropy_weight=e.entropy_weight, random_enlarge=random_enlarge,
        warmup=e.warmup, seed=cfg.seed,
        history_path=search_dir / "history.jsonl", checkpoint=search_dir / "checkpoint.pt", log=log)


def sampled_search_stage(cfg: ExperimentConfig, splits: Splits, search_dir: Path,
                         log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run NIS or ESAPN and return its arch.json content (the caller writes it)."""
    from recnas.experiment.search import _search_batches

    log = log or (lambda _m: None)
    set_seed(cfg.seed, cfg.threads)
    model = build_sampled_supernet(cfg, splits.ds.schema)
    search_dir.mkdir(parents=True, exist_ok=True)
    if cfg.search.method == "nis":
        n = cfg.search.nis
        block = model.embedding
        assert isinstance(block, NISEmbedding)
        space = Space(block.choices())
        controller = ReinforceController(space, seed=cfg.seed, kind=n.controller,
                                         lr=n.controller_lr or CONTROLLER_LR[n.controller],
                                         batch=n.samples_per_step, entropy_weight=n.entropy_weight)
        lr, l2 = _weights_settings(cfg)
        n_valid = len(splits.ds.splits["valid"]["y"])  # full batches only: a small last one may hold one class
        valid = splits.ds.batches("valid", n.valid_batch_size, shuffle=True, seed=cfg.seed,
                                  drop_last=n_valid >= n.valid_batch_size)
        log(f"searching NIS ({n.mode}) layouts for {n.steps} controller steps, {n.samples_per_step} per step")
        search = WeightSharingSearch(
            model, controller, lambda s: block.memory_cost(s, n.cost), _search_batches(cfg, splits), valid,
            steps=n.steps, samples_per_step=n.samples_per_step, train_batches=n.train_batches, full_share=n.full_share,
            warmup_steps=n.warmup_steps, lr=lr, embedding_l2=l2, memory_lambda=n.memory_lambda,
            max_cost=n.max_cost, quality=n.quality, history_path=search_dir / "history.jsonl",
            checkpoint=search_dir / "checkpoint.pt", record_every=max(n.steps // 100, 1), log=log)
        sample, probs = search.run(), controller.probs()
        argmax_cost = block.memory_cost(sample, n.cost)
        if n.fill_budget and n.max_cost is not None:
            sample = fill_layout(block, sample, probs, n.max_cost, n.cost)
            log(f"filled the budget: C_M {argmax_cost:.3f} -> {block.memory_cost(sample, n.cost):.3f} "
                f"(max_cost {n.max_cost})")
        arch = _nis_arch(cfg, block, sample)
        arch.update(probs=probs, steps=n.steps, memory_lambda=n.memory_lambda, cost=n.cost,
                    max_cost=n.max_cost, fill_budget=n.fill_budget, argmax_cost=argmax_cost,
                    search_seconds=search.seconds)
        return arch
    log(f"searching ESAPN sizes over {cfg.search.esapn.passes} pass(es) of the training stream")
    esapn = _esapn_search(cfg, splits, model, search_dir, log)
    sample = esapn.run()
    block = model.embedding
    assert isinstance(block, ESAPNEmbedding)
    arch = _esapn_arch(cfg, block, sample)
    arch.update(probs=block.export_probs(), rounds=esapn.rounds, enlarge_rate=esapn.enlarge_rate,
                memory_lambda=cfg.search.esapn.memory_lambda, search_seconds=esapn.seconds)
    return arch


def control_arch(cfg: ExperimentConfig, splits: Splits, arch: dict[str, Any], control_dir: Path,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The random control at the searched architecture's EP (module docstring).

    ESAPN's control stream keeps its history and checkpoint under `control_dir/stream/`, so a killed
    control run resumes too.
    """
    log = log or (lambda _m: None)
    set_seed(cfg.seed, cfg.threads)
    model = build_sampled_supernet(cfg, splits.ds.schema)
    if arch["method"] == "nis":
        block = model.embedding
        assert isinstance(block, NISEmbedding)
        sample = random_layout(block, int(arch["ep"]), np.random.default_rng(cfg.seed))
        out = _nis_arch(cfg, block, sample)
        out["control"] = "random layout at the searched EP"
        return out
    block = model.embedding
    assert isinstance(block, ESAPNEmbedding)
    p = random_rate_for_ep(block, int(arch["rounds"]), float(arch["ep_fraction"]), seed=cfg.seed)
    log(f"ESAPN control: a random policy with p(enlarge) = {p:.4f}, set for the searched EP share "
        f"{arch['ep_fraction']:.3f}")
    stream_dir = control_dir / "stream"
    stream_dir.mkdir(parents=True, exist_ok=True)
    search = _esapn_search(cfg, splits, model, stream_dir, log, random_enlarge=p)
    sample = search.run()
    out = _esapn_arch(cfg, block, sample)
    out.update(control="random policy at the searched EP", random_enlarge=p, rounds=search.rounds,
               enlarge_rate=search.enlarge_rate, search_seconds=search.seconds)
    return out


def id_widths(schema: Schema, arch: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per-id widths of a NIS or ESAPN arch.json (ids sorted by frequency, head first)."""
    card = {f.name: f.cardinality for f in schema.categorical}
    unknown = sorted(set(arch.get("blocks", arch.get("bucket_sizes", {}))) - set(card))
    if unknown:
        raise ConfigError(f"arch.json names field(s) {unknown} that are not categorical fields of this schema")
    if arch["method"] == "nis":
        return {f: widths_from_blocks(b, card[f], f) for f, b in arch["blocks"].items()}
    rows = arch.get("bucket_rows") or {f: bucket_rows(card[f], [1.0] * int(arch["buckets"])) for f in card}
    return {f: np.repeat(np.asarray(s, dtype=np.int64), rows[f]) for f, s in arch["bucket_sizes"].items()}


def build_sampled_retrain_model(cfg: ExperimentConfig, schema: Schema, arch: dict[str, Any]) -> CTRModel:
    """The zoo model with a `MixedWidthEmbedding` storing every id at the width the search chose."""
    dim = int(arch["common_dim"])
    kw = {**cfg.model.build_kwargs(), "embedding_dim": dim, "sparse": cfg.trainer.sparse}
    model = build_model(arch["model"], schema, **kw)
    gamma = cfg.search.lift_gamma if cfg.search.retrain_norm else None
    model.embedding = MixedWidthEmbedding(schema, id_widths(schema, arch), dim, **cfg.model.encoding_kwargs(),
                                          sparse=cfg.trainer.sparse, norm_gamma=gamma)
    return model


__all__ = ["SAMPLED_METHODS", "build_sampled_retrain_model", "build_sampled_supernet", "control_arch",
           "full_dim", "id_widths", "sampled_search_stage"]
