"""AutoDim: known answer on planted synthetic data, and the searchable-block conformance checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recnas.data.batches import FieldBatch
from recnas.data.cache import prepare
from recnas.data.source import open_dataset
from recnas.data.synthetic import SynthConfig, write_synthetic
from recnas.errors import ConfigError, SchemaError
from recnas.nn.models import build_model
from recnas.search.oneshot import OneShotStrategy, arch_parameters
from recnas.space import Space
from recnas.space.autodim import AutoDimEmbedding, ProjectedEmbedding, dim_label, sample_ep
from recnas.train import Trainer, TrainerConfig

CANDIDATES = (2, 4, 8, 16)


@pytest.fixture(scope="module")
def planted(planted_rank8):  # noqa: ANN001, ANN201
    """The rank-8 known-answer data (tests/conftest.py), shared with the joint search's test."""
    return planted_rank8


def autodim_fm(schema, seed: int = 0) -> torch.nn.Module:  # noqa: ANN001
    torch.manual_seed(seed)
    model = build_model("fm", schema, embedding_dim=16)
    model.embedding = AutoDimEmbedding(schema, CANDIDATES, 16)
    return model


def test_memory_term_gives_noise_fields_the_smallest_size_and_the_rank8_pair_a_larger_one(planted) -> None:  # noqa: ANN001
    ds, truth = planted
    model = autodim_fm(ds.schema)
    epochs, warmup = 12, 3
    hook = OneShotStrategy("bi_level", "adam", lr=3e-2, memory_lambda=0.1, warmup_epochs=warmup, tau_decay=3e-3,
                           valid=ds.batches("valid", 1024, shuffle=True, seed=0))
    cfg = TrainerConfig(epochs=epochs, batch_size=1024, lr=3e-3, embedding_l2=0.0, patience=epochs,
                        reduce_lr_factor=1.0, restore_best=False, progress=False)
    Trainer(cfg).fit(model, ds.batches("train", 1024, seed=0), ds.batches("valid", 8192), hooks=[hook])
    dims = model.embedding.chosen_dims()
    assert hook.arch_steps == (epochs - warmup) * len(ds.batches("train", 1024))
    assert {f: dims[f] for f in truth["noise_fields"]} == {f: 2 for f in truth["noise_fields"]}, dims
    a, b = truth["interactions"][0]
    assert truth["interaction_ranks"][0] == 8
    assert dims[a] > 2 and dims[b] > 2, dims
    assert [len(h["dims"]) for h in hook.history] == [len(dims)] * epochs  # the trace records every field


def test_freeze_of_export_is_a_plain_module_without_architecture_parameters(prepared) -> None:  # noqa: ANN001
    model = autodim_fm(prepared.schema)
    block = model.embedding
    space = Space.collect(model)
    assert len(space) == block.num_fields and all(c.candidates == CANDIDATES for c in space.choices.values())
    sample = block.export()
    space.validate(sample)
    frozen = block.freeze(sample)
    assert isinstance(frozen, ProjectedEmbedding)
    model.embedding = frozen
    assert arch_parameters(model) == [] and len(Space.collect(model)) == 0
    batch = FieldBatch.from_arrays({k: np.asarray(v[:16]) for k, v in prepared.splits["valid"].items()})
    assert model.eval()(batch).shape == (16,)
    assert frozen.embedding_params() == sample_ep(block.rows, block.chosen_dims(sample))


@pytest.mark.parametrize("numerical", ["auto", "bucket_equal_freq", "autodis"])
def test_set_sample_and_freeze_agree_with_shared_weights(prepared, numerical: str) -> None:  # noqa: ANN001
    """Mixed sizes over categorical, numerical and multi-valued fields: same outputs from the same weights."""
    torch.manual_seed(1)
    block = AutoDimEmbedding(prepared.schema, CANDIDATES, 8, numerical=numerical)
    with torch.no_grad():  # move every weight and batch-norm statistic off its initial value
        for p in block.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for lift in block.lifts:
            lift.norm.running_mean.uniform_(-0.1, 0.1)
            lift.norm.running_var.uniform_(0.5, 2.0)
    names = block.field_names
    sample = {dim_label(f): CANDIDATES[i % len(CANDIDATES)] for i, f in enumerate(names)}
    block.set_sample(sample)
    frozen = block.freeze(sample, inherit=True)
    assert sorted(set(frozen.base.dims)) == list(CANDIDATES)
    batch = FieldBatch.from_arrays({k: np.asarray(v[:64]) for k, v in prepared.splits["valid"].items()})
    block.eval()
    frozen.eval()
    with torch.no_grad():
        torch.testing.assert_close(block(batch), frozen(batch))
        block.set_sample(None)  # back to the mixture: a different function
        assert not torch.allclose(block(batch), frozen(batch))


def test_budget_export_fits_max_ep_and_an_impossible_budget_is_refused(prepared) -> None:  # noqa: ANN001
    free = AutoDimEmbedding(prepared.schema, CANDIDATES, 8)
    with torch.no_grad():
        free.logits[:, -1] = 3.0  # prefer the largest size everywhere
    full = sample_ep(free.rows, free.chosen_dims())
    assert full == sample_ep(free.rows, {f: 16 for f in free.rows})
    budget = full // 3
    capped = AutoDimEmbedding(prepared.schema, CANDIDATES, 8, max_ep=budget)
    capped.load_state_dict(free.state_dict())
    dims = capped.chosen_dims()
    assert sample_ep(capped.rows, dims) <= budget
    assert max(dims.values()) == 16  # only as much is cut as the budget needs
    floor = sample_ep(free.rows, {f: 2 for f in free.rows})
    with pytest.raises(ConfigError, match="max_ep"):
        AutoDimEmbedding(prepared.schema, CANDIDATES, 8, max_ep=floor - 1)


def test_fill_budget_grows_an_export_under_the_budget_until_no_larger_size_fits(prepared) -> None:  # noqa: ANN001
    probe = AutoDimEmbedding(prepared.schema, CANDIDATES, 8)
    full = sample_ep(probe.rows, {f: 16 for f in probe.rows})
    budget = full // 2
    logits = torch.zeros(probe.num_fields, len(CANDIDATES))
    logits[:, 0] = 4.0  # the search prefers the smallest size everywhere ...
    logits[0, 2] = 3.0  # ... but for the first field size 8 nearly as much
    results = {}
    for fill in (False, True):
        block = AutoDimEmbedding(prepared.schema, CANDIDATES, 8, max_ep=budget, fill_budget=fill)
        with torch.no_grad():
            block.logits.copy_(logits)
        results[fill] = block.chosen_dims()
    assert set(results[False].values()) == {2}  # without filling, the budget only caps
    dims = results[True]
    used = sample_ep(probe.rows, dims)
    assert sample_ep(probe.rows, results[False]) < used <= budget
    first = probe.field_names[0]
    assert dims[first] >= 8  # the size the search nearly liked is granted first
    for f, d in dims.items():  # filled: no field can take its next size within the budget any more
        if d < CANDIDATES[-1]:
            nxt = CANDIDATES[CANDIDATES.index(d) + 1]
            assert used + probe.rows[f] * (nxt - d) > budget, (f, d)
    with pytest.raises(ConfigError, match="fill_budget"):
        AutoDimEmbedding(prepared.schema, CANDIDATES, 8, fill_budget=True)


def test_memory_cost_grows_with_the_preferred_size(prepared) -> None:  # noqa: ANN001
    block = AutoDimEmbedding(prepared.schema, CANDIDATES, 8)
    small, large = block.memory_cost().item(), None
    with torch.no_grad():
        block.logits[:, -1] = 5.0
    large = block.memory_cost().item()
    assert small == pytest.approx(float(np.mean(CANDIDATES)) / 16)
    assert large > small
    block.logits.grad = None
    block.memory_cost().backward()
    assert (block.logits.grad[:, -1] > 0).all() and (block.logits.grad[:, 0] < 0).all()


def test_bad_candidates_are_refused(prepared) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="candidates"):
        AutoDimEmbedding(prepared.schema, (4, 4, 8), 8)
    block = AutoDimEmbedding(prepared.schema, CANDIDATES, 8)
    sample = {dim_label(f): 3 for f in block.field_names}
    with pytest.raises(ConfigError, match="not among the candidates"):
        block.freeze(sample)
    with pytest.raises((ConfigError, SchemaError)):
        block.freeze({**{dim_label(f): 2 for f in block.field_names}, "dim/nope": 2})


def test_fields_of_one_encoder_at_interleaved_sizes_keep_their_order(tmp_path) -> None:  # noqa: ANN001
    """n1 and n3 at size 2, n2 at 4: the frozen embedding keeps the search's field order and its outputs."""
    write_synthetic(tmp_path / "syn", SynthConfig(rows=2000, seed=0, n_numerical=3))
    ds = prepare(open_dataset(tmp_path / "syn"), tmp_path / "cache")
    torch.manual_seed(0)
    block = AutoDimEmbedding(ds.schema, (2, 4), 4, numerical="scalar")
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    sample = {dim_label(f): 4 for f in block.field_names} | {"dim/n1": 2, "dim/n2": 4, "dim/n3": 2}
    block.set_sample(sample)
    frozen = block.freeze(sample, inherit=True)
    assert frozen.field_names == block.field_names
    assert [e.field_names for e in frozen.base.numerical_encoders()] == [["n1", "n3"], ["n2"]]
    batch = FieldBatch.from_arrays({k: np.asarray(v[:32]) for k, v in ds.splits["valid"].items()})
    block.eval()
    frozen.eval()
    with torch.no_grad():
        torch.testing.assert_close(block(batch), frozen(batch))
