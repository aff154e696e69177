"""The joint search: AutoDim's sizes and AutoFIS's gates in one supernet, on data with a known answer."""

from __future__ import annotations

import pytest
import torch

from recnas.nn.embedding import embedded_field_names
from recnas.nn.models import build_model
from recnas.search.grda import GRDA, c_for_threshold
from recnas.search.oneshot import ArchOptimizers, OneShotStrategy
from recnas.space.autodim import AutoDimEmbedding
from recnas.space.gated_interactions import GatedInteractions
from recnas.train import Trainer, TrainerConfig

SEEDS = (0, 1, 2)
EPOCHS, WARMUP, BATCH = 10, 3, 1024


@pytest.fixture(scope="module")
def planted(planted_rank8):  # noqa: ANN001, ANN201
    """AutoDim's known-answer data (tests/conftest.py): a rank-8 pair c1 x c2, a rank-2 pair c5 x c6, noise fields."""
    return planted_rank8


def joint_search(ds, seed: int) -> tuple[AutoDimEmbedding, GatedInteractions, OneShotStrategy]:  # noqa: ANN001
    torch.manual_seed(seed)
    emb = AutoDimEmbedding(ds.schema, (2, 4, 8, 16), 16)
    gates = GatedInteractions(embedded_field_names(ds.schema), seed=seed)
    model = build_model("deepfm", ds.schema, embedding=emb, pairwise=gates, mlp=[32], dropout=0.0)
    steps = (EPOCHS - WARMUP) * len(ds.batches("train", BATCH))
    hook = OneShotStrategy("bi_level", "mixed", lr=3e-2, grda_lr=1.0, grda_c=c_for_threshold(1.0, 1.0, 0.8, steps),
                           grda_mu=0.8, memory_lambda=0.1, warmup_epochs=WARMUP, tau_decay=3e-3,
                           valid=ds.batches("valid", BATCH, shuffle=True, seed=seed))
    cfg = TrainerConfig(epochs=EPOCHS, batch_size=BATCH, lr=3e-3, embedding_l2=0.0, patience=EPOCHS,
                        reduce_lr_factor=1.0, restore_best=False, progress=False)
    Trainer(cfg).fit(model, ds.batches("train", BATCH, seed=seed), ds.batches("valid", 8192), hooks=[hook])
    return emb, gates, hook


def test_one_search_finds_the_planted_pairs_and_sizes_over_seeds(planted) -> None:  # noqa: ANN001
    ds, truth = planted
    (a, b), (c, d) = truth["interactions"]
    held = []
    for seed in SEEDS:
        emb, gates, hook = joint_search(ds, seed)
        assert isinstance(hook.optimizer, ArchOptimizers)  # GRDA for the gates, Adam for the size logits
        assert [type(o) for o in hook.optimizer.optimizers] == [GRDA, torch.optim.Adam]
        g = gates.gates()
        ranked = sorted(g, key=lambda k: -abs(g[k]))
        dims = emb.chosen_dims()
        noise = [f for f in truth["noise_fields"] if f.startswith("c")]  # the categorical ones
        held.append({
            "pairs": set(ranked[:2]) == {f"interaction/{a}*{b}", f"interaction/{c}*{d}"},
            "zeroed": sum(g[k] == 0 for k in g) > len(g) / 2,
            "pair_size": (dims[a] + dims[b]) / 2, "noise_size": sum(dims[f] for f in noise) / len(noise),
        })
    for key in ("pairs", "zeroed"):  # the interaction half holds on every seed but at most one
        assert sum(h[key] for h in held) >= len(SEEDS) - 1, (key, held)
    # the size half, on the mean only: on single seeds one field of the rank-8 pair can end at the smallest size
    # (the embedding-size searches' open problem, issue 26)
    pair = sum(h["pair_size"] for h in held) / len(held)
    assert pair > 2 * sum(h["noise_size"] for h in held) / len(held), held
