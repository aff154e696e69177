"""AutoFIS known-answer and conformance tests on planted synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recnas.data.batches import FieldBatch
from recnas.data.cache import prepare
from recnas.data.source import open_dataset
from recnas.data.synthetic import SynthConfig, write_synthetic
from recnas.search.grda import c_for_threshold
from recnas.search.oneshot import OneShotStrategy, arch_parameters
from recnas.space import Space
from recnas.space.autofis import AutoFIS
from recnas.train import Trainer, TrainerConfig

EPOCHS, BATCH = 5, 1024


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("fis") / "syn"
    truth = write_synthetic(out, SynthConfig(rows=20_000, seed=1))
    return prepare(open_dataset(out), tmp_path_factory.mktemp("fis_cache")), truth


def search(ds, deep: bool, threshold: float = 1.5) -> AutoFIS:  # noqa: ANN001
    torch.manual_seed(0)
    model = AutoFIS(ds.schema, deep=deep, embedding_dim=8, mlp=[32], dropout=0.0)
    steps = EPOCHS * len(ds.batches("train", BATCH))
    hook = OneShotStrategy("one_level", "grda", lr=1.0, grda_c=c_for_threshold(threshold, 1.0, 0.8, steps), grda_mu=0.8)
    cfg = TrainerConfig(epochs=EPOCHS, batch_size=BATCH, lr=3e-3, embedding_l2=0.0, patience=EPOCHS,
                        restore_best=False, progress=False)
    Trainer(cfg).fit(model, ds.batches("train", BATCH, seed=0), ds.batches("valid", 8192), hooks=[hook])
    assert len(hook.history) == EPOCHS
    return model


def test_planted_pairs_rank_first_and_noise_gates_go_to_zero(planted) -> None:  # noqa: ANN001
    ds, truth = planted
    model = search(ds, deep=False)
    gates = model.interactions.gates()
    ranked = sorted(gates, key=lambda k: -abs(gates[k]))
    planted_labels = {f"interaction/{a}*{b}" for a, b in truth["interactions"]}
    top = set(ranked[: len(planted_labels)])
    recall = len(top & planted_labels) / len(planted_labels)
    assert recall >= 0.9, f"top gates {ranked[:4]} miss the planted {sorted(planted_labels)}"
    assert all(gates[k] != 0 for k in planted_labels)
    noise = [k for k in gates if set(k.removeprefix("interaction/").split("*")) & set(truth["noise_fields"])]
    zero = sum(gates[k] == 0 for k in noise)
    assert zero > len(noise) / 2, f"only {zero} of {len(noise)} noise-field gates are exactly 0"


def test_freeze_builds_a_plain_model_with_only_the_kept_pairs(planted) -> None:  # noqa: ANN001
    ds, _ = planted
    model = AutoFIS(ds.schema, deep=True, embedding_dim=8, mlp=[16])
    space = Space.collect(model)
    assert len(space) == len(model.interactions.labels) == 55
    sample = {label: k % 3 == 0 for k, label in enumerate(model.interactions.labels)}
    space.validate(sample)
    frozen = model.freeze(sample)
    assert not frozen.searching and arch_parameters(frozen) == [] and len(Space.collect(frozen)) == 0
    assert frozen.interactions.num_pairs == sum(sample.values())
    names = model.embedding.field_names
    kept = {(names[i], names[j]) for i, j in zip(frozen.interactions.rows.tolist(), frozen.interactions.cols.tolist(),
                                                 strict=True)}
    assert kept == {tuple(p) for p in model.kept_pairs(sample)}
    batch = FieldBatch.from_arrays({k: np.asarray(v[:64]) for k, v in ds.splits["valid"].items()})
    assert frozen.eval()(batch).shape == (64,)


def test_set_sample_and_freeze_agree_with_shared_weights(planted) -> None:  # noqa: ANN001
    ds, _ = planted
    torch.manual_seed(0)
    model = AutoFIS(ds.schema, deep=False, embedding_dim=8).eval()
    sample = {label: k % 2 == 0 for k, label in enumerate(model.interactions.labels)}
    model.set_sample(sample)
    frozen = model.freeze(sample).eval()
    # share the weights: embeddings and first order as they are, kept gates copied over
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("interactions.")}
    frozen.load_state_dict(state, strict=False)
    keep = torch.tensor([sample[label] for label in model.interactions.labels])
    with torch.no_grad():
        frozen.interactions.gate.copy_(model.interactions.gate[keep])
    batch = FieldBatch.from_arrays({k: np.asarray(v[:32]) for k, v in ds.splits["valid"].items()})
    with torch.no_grad():
        torch.testing.assert_close(model(batch), frozen(batch))


def test_retrain_gates_start_so_that_many_kept_pairs_do_not_swamp_the_logit(planted) -> None:  # noqa: ANN001
    ds, _ = planted
    names = AutoFIS(ds.schema).embedding.field_names
    all_pairs = [[a, b] for i, a in enumerate(names) for b in names[i + 1 :]]
    batch = FieldBatch.from_arrays({k: np.asarray(v[:2048]) for k, v in ds.splits["train"].items()})

    def spread(model: AutoFIS) -> float:
        """Std of the interaction logit once embeddings have a trained scale (batch norm then gives unit products)."""
        with torch.no_grad():
            for w in model.embedding_tables():
                w.normal_(0.0, 1.0)
            return float(model.interactions(model.embedding(batch)).std())

    for pairs in (all_pairs[:2], all_pairs):
        gate = AutoFIS(ds.schema, deep=False, pairs=pairs).interactions.gate.detach()
        assert torch.allclose(gate, torch.full_like(gate, min(0.6, len(pairs) ** -0.5)))
    torch.manual_seed(0)
    default = spread(AutoFIS(ds.schema, deep=False, pairs=all_pairs))
    torch.manual_seed(0)
    search_init = spread(AutoFIS(ds.schema, deep=False, pairs=all_pairs, retrain_gate_init=0.6))
    assert default < 1.5 < search_init, (default, search_init)  # about 1 against 0.6 * sqrt(55) = 4.4
