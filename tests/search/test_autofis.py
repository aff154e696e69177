"""AutoFIS known-answer and conformance tests on planted synthetic data: the gated block in FM, DeepFM and IPNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recnas.data.batches import FieldBatch
from recnas.data.cache import prepare
from recnas.data.source import open_dataset
from recnas.data.synthetic import SynthConfig, write_synthetic
from recnas.nn.embedding import embedded_field_names
from recnas.nn.frozen import build_frozen
from recnas.nn.models import MODELS, CTRModel, build_model
from recnas.search.grda import c_for_threshold
from recnas.search.oneshot import OneShotStrategy, arch_parameters
from recnas.space import Space
from recnas.space.gated_interactions import GatedInteractions
from recnas.train import Trainer, TrainerConfig

EPOCHS, BATCH = 5, 1024


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("fis") / "syn"
    truth = write_synthetic(out, SynthConfig(rows=20_000, seed=1))
    return prepare(open_dataset(out), tmp_path_factory.mktemp("fis_cache")), truth


def gated(schema, name: str = "fm", **kw) -> GatedInteractions:  # noqa: ANN001
    return GatedInteractions(embedded_field_names(schema), reduce=MODELS[name].pairwise_slot == "logit", **kw)


def composed(schema, block, name: str = "fm") -> CTRModel:  # noqa: ANN001
    return build_model(name, schema, pairwise=block, embedding_dim=8, mlp=[32], dropout=0.0)


def search(ds, name: str, threshold: float = 1.5) -> GatedInteractions:  # noqa: ANN001
    torch.manual_seed(0)
    block = gated(ds.schema, name)
    model = composed(ds.schema, block, name)
    steps = EPOCHS * len(ds.batches("train", BATCH))
    hook = OneShotStrategy("one_level", "grda", lr=1.0, grda_c=c_for_threshold(threshold, 1.0, 0.8, steps), grda_mu=0.8)
    cfg = TrainerConfig(epochs=EPOCHS, batch_size=BATCH, lr=3e-3, embedding_l2=0.0, patience=EPOCHS,
                        restore_best=False, progress=False)
    Trainer(cfg).fit(model, ds.batches("train", BATCH, seed=0), ds.batches("valid", 8192), hooks=[hook])
    assert len(hook.history) == EPOCHS
    return block


def test_planted_pairs_rank_first_and_noise_gates_go_to_zero(planted) -> None:  # noqa: ANN001
    ds, truth = planted
    gates = search(ds, "fm").gates()
    ranked = sorted(gates, key=lambda k: -abs(gates[k]))
    planted_labels = {f"interaction/{a}*{b}" for a, b in truth["interactions"]}
    top = set(ranked[: len(planted_labels)])
    recall = len(top & planted_labels) / len(planted_labels)
    assert recall >= 0.9, f"top gates {ranked[:4]} miss the planted {sorted(planted_labels)}"
    assert all(gates[k] != 0 for k in planted_labels)
    noise = [k for k in gates if set(k.removeprefix("interaction/").split("*")) & set(truth["noise_fields"])]
    zero = sum(gates[k] == 0 for k in noise)
    assert zero > len(noise) / 2, f"only {zero} of {len(noise)} noise-field gates are exactly 0"


@pytest.mark.parametrize("name", ["fm", "deepfm", "ipnn"])
def test_freeze_gives_the_zoo_model_with_only_the_kept_pairs(planted, name: str) -> None:  # noqa: ANN001
    ds, _ = planted
    block = gated(ds.schema, name)
    model = composed(ds.schema, block, name)
    space = Space.collect(model)
    assert len(space) == len(block.labels) == 55
    sample = {label: k % 3 == 0 for k, label in enumerate(block.labels)}
    space.validate(sample)
    frozen = block.freeze(sample)
    retrain = composed(ds.schema, frozen, name)
    assert arch_parameters(retrain) == [] and len(Space.collect(retrain)) == 0
    assert frozen.num_pairs == sum(sample.values())
    names = block.field_names
    kept = {(names[i], names[j]) for i, j in zip(frozen.rows.tolist(), frozen.cols.tolist(), strict=True)}
    assert kept == {tuple(p) for p in block.kept_pairs(sample)}
    assert frozen.out_dim == (1 if name != "ipnn" else frozen.num_pairs)
    batch = FieldBatch.from_arrays({k: np.asarray(v[:64]) for k, v in ds.splits["valid"].items()})
    assert retrain.eval()(batch).shape == (64,)
    rebuilt = build_frozen(frozen.spec(), ds.schema, {})  # what a retrained run folder's frozen.json rebuilds
    assert torch.equal(rebuilt.rows, frozen.rows) and torch.equal(rebuilt.cols, frozen.cols)
    assert rebuilt.out_dim == frozen.out_dim and torch.equal(rebuilt.gate.detach(), frozen.gate.detach())


def test_set_sample_and_freeze_agree_with_shared_weights(planted) -> None:  # noqa: ANN001
    ds, _ = planted
    torch.manual_seed(0)
    block = gated(ds.schema)
    model = composed(ds.schema, block).eval()
    sample = {label: k % 2 == 0 for k, label in enumerate(block.labels)}
    block.set_sample(sample)
    frozen = block.freeze(sample)
    retrain = composed(ds.schema, frozen).eval()
    # share the weights: embeddings and first order as they are, kept gates copied over
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("fm.")}
    retrain.load_state_dict(state, strict=False)
    keep = torch.tensor([sample[label] for label in block.labels])
    with torch.no_grad():
        frozen.gate.copy_(block.gate[keep])
    batch = FieldBatch.from_arrays({k: np.asarray(v[:32]) for k, v in ds.splits["valid"].items()})
    with torch.no_grad():
        torch.testing.assert_close(model(batch), retrain(batch))


def test_retrain_gates_start_so_that_many_kept_pairs_do_not_swamp_the_logit(planted) -> None:  # noqa: ANN001
    ds, _ = planted
    block = gated(ds.schema)
    batch = FieldBatch.from_arrays({k: np.asarray(v[:2048]) for k, v in ds.splits["train"].items()})
    two = {label: k < 2 for k, label in enumerate(block.labels)}
    every = {label: True for label in block.labels}

    def spread(gate_init: float | None) -> float:
        """Std of the interaction logit once embeddings have a trained scale (batch norm then gives unit products)."""
        torch.manual_seed(0)
        frozen = gated(ds.schema, retrain_gate_init=gate_init).freeze(every)
        model = composed(ds.schema, frozen)
        with torch.no_grad():
            for w in model.embedding_tables():
                w.normal_(0.0, 1.0)
            return float(model.fm(model.embedding(batch)).std())

    for sample in (two, every):
        gate = block.freeze(sample).gate.detach()
        assert torch.allclose(gate, torch.full_like(gate, min(0.6, sum(sample.values()) ** -0.5)))
    default, search_init = spread(None), spread(0.6)
    assert default < 1.5 < search_init, (default, search_init)  # about 1 against 0.6 * sqrt(55) = 4.4


def test_autofis_refuses_a_model_without_a_pairwise_slot(planted) -> None:  # noqa: ANN001
    from recnas.errors import ConfigError
    from recnas.experiment.config import load_config
    from recnas.methods import method_of

    cfg = load_config(None, ["search.method=autofis", "model.name=dcn"])
    with pytest.raises(ConfigError, match="no pairwise slot"):
        method_of(cfg)
