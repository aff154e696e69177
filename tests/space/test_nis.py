"""NIS: block layouts, exact memory accounting, conformance, resumption and the known answer on planted data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recnas.data.cache import prepare
from recnas.data.source import open_dataset
from recnas.data.synthetic import Interaction, SynthConfig, write_synthetic
from recnas.errors import CacheError, ConfigError
from recnas.nn.mixed_width import MixedWidthEmbedding
from recnas.nn.models import build_model
from recnas.search.reinforce import ReinforceController
from recnas.search.weight_sharing import WeightSharingSearch
from recnas.space import Space
from recnas.space.nis import NISEmbedding, bucket_rows, fill_layout, random_layout, trim_layout
from recnas.train import Trainer, TrainerConfig
from recnas.train.trainer import evaluate
from tests.killing import KillAt, Killed

DIM = 16


def nis_fm(schema, mode: str = "me", seed: int = 0, field_floor: bool = True) -> torch.nn.Module:  # noqa: ANN001
    torch.manual_seed(seed)
    return build_model("fm", schema, embedding_dim=DIM,
                       embedding=NISEmbedding(schema, DIM, col_blocks=4, mode=mode, field_floor=field_floor))


def test_bucket_rows_split_ids_by_rank_shares_head_first() -> None:
    assert bucket_rows(1000, [0.1, 0.2, 0.7]) == [100, 200, 700]
    assert bucket_rows(5, [0.1, 0.2, 0.7]) == [1, 1, 3]  # every bucket keeps a row when there are enough ids
    assert bucket_rows(12, [1.0] * 10) == [1, 1, 2, 1, 1, 1, 1, 2, 1, 1]
    assert bucket_rows(4, [1.0] * 10) == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]  # too few ids: the tail buckets are empty


def test_random_search_drives_the_weight_sharing_loop_through_its_warm_up(prepared) -> None:  # noqa: ANN001
    from recnas.search.sample import RandomSearch

    model = nis_fm(prepared.schema)
    search = WeightSharingSearch(model, RandomSearch(Space.collect(model), seed=0), model.embedding.memory_cost,
                                 prepared.batches("train", 256, seed=0), prepared.batches("valid", 256, seed=0),
                                 steps=30, samples_per_step=2, warmup_steps=20, record_every=5)
    best = search.run()
    assert "decision_cost" not in search.history[0] and "decision_cost" in search.history[-1]
    assert best == search.strategy.export() and search.strategy.steps == 20


def test_min_blocks_keeps_a_floor_of_columns_for_every_id(prepared) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_model("fm", prepared.schema, embedding_dim=DIM)
    model.embedding = block = NISEmbedding(prepared.schema, DIM, col_blocks=4, min_blocks=1)
    rng = np.random.default_rng(0)
    floor = DIM // 4
    for sample in [Space(block.choices()).random_sample(rng) for _ in range(20)] + [random_layout(block, 0, rng)]:
        assert all(w.min() >= floor for w in block.id_widths(sample).values())
    assert min(sum(block.field_ep(random_layout(block, 0, rng)).values()) for _ in range(3)) == \
        sum(block.cardinality[n] * floor for n in block.fields)  # the smallest layout is the floor
    ctrl = ReinforceController(Space.collect(model), seed=0, batch=4)
    search = WeightSharingSearch(model, ctrl, block.memory_cost, prepared.batches("train", 256, seed=0),
                                 prepared.batches("valid", 256, seed=0), steps=12, samples_per_step=4, warmup_steps=2)
    assert all(w.min() >= floor for w in block.id_widths(search.run()).values())
    with pytest.raises(ConfigError, match="min_blocks"):
        NISEmbedding(prepared.schema, DIM, col_blocks=4, min_blocks=5)
    with pytest.raises(ConfigError, match="min_blocks"):
        NISEmbedding(prepared.schema, DIM, col_blocks=4, mode="se", min_blocks=1)


def random_probs(block: NISEmbedding, rng: np.random.Generator) -> dict[str, list[float]]:
    """A controller's distributions drawn at random: one Dirichlet draw per choice."""
    return {c.label: list(rng.dirichlet(np.ones(len(c.candidates)))) for c in block.choices()}


@pytest.mark.parametrize("mode", ["me", "se"])
def test_fill_layout_spends_the_budget_in_the_controllers_order_and_stays_under_it(prepared, mode: str) -> None:  # noqa: ANN001
    block = nis_fm(prepared.schema, mode).embedding
    space = Space(block.choices())
    smallest = {c.label: c.candidates[0] for c in block.choices()}
    rng = np.random.default_rng(0)
    for budget in (0.2, 0.5, 1.0):
        probs = random_probs(block, rng)
        filled = fill_layout(block, smallest, probs, budget)
        space.validate(filled)
        assert block.memory_cost(filled, "total") <= budget
        for c in block.choices():  # maximal: no single further step fits
            i = c.candidates.index(filled[c.label])
            if i + 1 < len(c.candidates):
                bigger = {**filled, c.label: c.candidates[i + 1]}
                cost = block.memory_cost(bigger, "total")
                assert cost > budget or cost == block.memory_cost(filled, "total")
    assert fill_layout(block, smallest, probs, 1.0) == {c.label: c.candidates[-1] for c in block.choices()}
    # the first step is the cheapest in log-probability per float: a choice whose next candidate is near-certain
    grow = block.choices()[-1 if mode == "me" else -2]  # a step that stores more floats (se: the rows, not cols)
    probs = {c.label: [0.98] + [0.02 / (len(c.candidates) - 1)] * (len(c.candidates) - 1) for c in block.choices()}
    probs[grow.label] = [0.01] + [0.99 / (len(grow.candidates) - 1)] * (len(grow.candidates) - 1)
    step = {**smallest, grow.label: grow.candidates[1]}
    assert fill_layout(block, smallest, probs, block.memory_cost(step, "total")) == step


@pytest.mark.parametrize("mode", ["me", "se"])
def test_trim_layout_meets_the_budget_giving_up_the_least_probable_first(prepared, mode: str) -> None:  # noqa: ANN001
    block = nis_fm(prepared.schema, mode).embedding
    largest = {c.label: c.candidates[-1] for c in block.choices()}
    smallest_cost = block.memory_cost(block.smallest_layout(), "total")
    for budget, seed in ((0.2, 0), (0.5, 1), (0.9, 2)):
        probs = random_probs(block, np.random.default_rng(seed))
        trimmed = trim_layout(block, largest, probs, budget)
        Space(block.choices()).validate(trimmed)
        assert block.memory_cost(trimmed, "total") <= budget
        assert block.memory_cost(trimmed, "total") > budget - 0.2  # a trim, not a collapse to the smallest
    assert trim_layout(block, largest, probs, 1.0) == largest  # within the budget: unchanged
    assert trim_layout(block, largest, probs, 0.0) == block.smallest_layout() and smallest_cost > 0  # as far as it goes
    # the first step gives up the choice whose largest candidate the controller least believes in
    shrink = block.choices()[-1 if mode == "me" else -2]
    probs = {c.label: [0.02 / (len(c.candidates) - 1)] * (len(c.candidates) - 1) + [0.98] for c in block.choices()}
    probs[shrink.label] = [0.99 / (len(shrink.candidates) - 1)] * (len(shrink.candidates) - 1) + [0.01]
    step = {**largest, shrink.label: shrink.candidates[-2]}
    assert trim_layout(block, largest, probs, block.memory_cost(step, "total")) == step


@pytest.mark.parametrize("full_share", [0.0, 0.5])
def test_full_steps_train_the_blocks_the_controller_leaves_out(prepared, full_share: float) -> None:  # noqa: ANN001
    from recnas.search.sample import RandomSearch

    class StoreNothing(RandomSearch):
        def ask(self):  # noqa: ANN202
            return dict.fromkeys(self.space.choices, 0)

    model = nis_fm(prepared.schema, field_floor=False)  # the paper's space, where a layout may store nothing
    block, n_cat = model.embedding, len(model.embedding.fields)
    batch = next(prepared.batches("valid", 256).iter_epoch(0))
    block.set_sample(None)
    before = block(batch)[:, :n_cat].detach().clone()  # the categorical rows, every block stored
    search = WeightSharingSearch(model, StoreNothing(Space.collect(model), seed=0), model.embedding.memory_cost,
                                 prepared.batches("train", 256, seed=0), prepared.batches("valid", 256, seed=0),
                                 steps=8, samples_per_step=1, train_batches=2, warmup_steps=7, full_share=full_share)
    search.run()
    assert sum(search._trains_full(i) for i in range(16)) == 16 * full_share  # evenly spread, exact count
    block.set_sample(None)
    moved = not torch.equal(block(batch)[:, :n_cat], before)
    assert moved == (full_share > 0)  # sampled steps alone never train what no sample stores


@pytest.mark.parametrize("mode", ["me", "se"])
def test_layouts_never_give_tail_rows_more_columns_and_ep_counts_the_stored_floats(prepared, mode: str) -> None:  # noqa: ANN001
    block = nis_fm(prepared.schema, mode).embedding
    rng = np.random.default_rng(0)
    space = Space(block.choices())
    for _ in range(30):
        sample = space.random_sample(rng)
        for f in block.fields:
            widths = block.bucket_widths(sample, f)
            assert widths == sorted(widths, reverse=True), widths
            assert sum(r * w for r, w in block.layout(sample)[f]) == block.field_ep(sample)[f]
        frozen = block.freeze(sample)
        assert frozen.own_embedding_params() == sum(block.field_ep(sample).values())
        assert frozen.field_ep() == block.field_ep(sample)
        assert 0.0 <= block.memory_cost(sample) <= 1.0 and 0.0 <= block.memory_cost(sample, "total") <= 1.0


def test_set_sample_zeroes_exactly_the_unstored_blocks(prepared) -> None:  # noqa: ANN001
    model = nis_fm(prepared.schema, field_floor=False)
    block = model.embedding
    batch = next(iter(prepared.batches("train", 256, shuffle=False)))
    sample = {c.label: 0 for c in block.choices()}
    f = block.fields[0]
    sample[f"nis/{f}/block1"] = 1  # block 1 (columns 4-7) stored for the head bucket only
    with torch.no_grad():
        full = block(batch)
        block.set_sample(sample)
        out = block(batch)
    head = torch.from_numpy(block.id_bucket[f][np.asarray(batch.cat[:, 0])] == 0)
    assert head.any() and (~head).any()
    assert torch.equal(out[head, 0, 4:8], full[head, 0, 4:8])
    assert float(out[~head, 0].abs().sum()) == 0.0 and float(out[head, 0, :4].abs().sum()) == 0.0
    assert float(out[:, 1 : len(block.fields)].abs().sum()) == 0.0  # other categorical fields store nothing
    assert torch.equal(out[:, len(block.fields):], full[:, len(block.fields):])  # unsearched fields untouched


def test_freeze_with_inherited_weights_computes_what_set_sample_computes(prepared) -> None:  # noqa: ANN001
    model = nis_fm(prepared.schema)
    block = model.embedding
    batch = next(iter(prepared.batches("train", 512, shuffle=False)))
    rng = np.random.default_rng(1)
    for _ in range(5):
        sample = Space(block.choices()).random_sample(rng)
        block.set_sample(sample)
        frozen = block.freeze(sample, inherit=True)
        assert isinstance(frozen, MixedWidthEmbedding)
        assert not hasattr(frozen, "choices") and not hasattr(frozen, "set_sample")  # a plain module
        torch.testing.assert_close(frozen(batch), block(batch))
    fresh = block.freeze(sample)
    assert not torch.allclose(fresh(batch), block(batch))


def _search(ds, seed: int, steps: int, lam: float, checkpoint=None, kill_at=None):  # noqa: ANN001, ANN202
    model = nis_fm(ds.schema, seed=seed)
    ctrl = ReinforceController(Space.collect(model), seed=seed, lr=0.05, batch=8)
    search = WeightSharingSearch(model, ctrl, model.embedding.memory_cost, ds.batches("train", 512, seed=seed),
                                 ds.batches("valid", 2048, shuffle=True, seed=seed), steps=steps, samples_per_step=8,
                                 warmup_steps=min(100, steps // 3), lr=3e-3, memory_lambda=lam,
                                 checkpoint=checkpoint, checkpoint_every=10, record_every=10)
    if kill_at is not None:
        with pytest.raises(Killed):
            search.run(hooks=[KillAt(kill_at)])
        return model, ctrl, search, None
    return model, ctrl, search, search.run()


def test_a_killed_search_resumes_and_ends_with_the_same_layout(prepared, tmp_path) -> None:  # noqa: ANN001
    _, ctrl, _, whole = _search(prepared, 0, 60, 0.01)
    ckpt = tmp_path / "checkpoint.pt"
    _search(prepared, 0, 60, 0.01, checkpoint=ckpt, kill_at=35)  # checkpoints at 10, 20, 30: killed after 35
    assert ckpt.is_file()
    _, ctrl2, search, resumed = _search(prepared, 0, 60, 0.01, checkpoint=ckpt)
    assert resumed == whole
    assert ctrl2.probs() == ctrl.probs()
    assert [h["step"] for h in search.history] == list(range(10, 61, 10))
    assert not ckpt.exists()
    ckpt.write_bytes(b"not a checkpoint")  # a damaged file is one clear error naming it, not a traceback
    with pytest.raises(CacheError, match=r"checkpoint\.pt: cannot resume the fit .*delete it"):
        _search(prepared, 0, 60, 0.01, checkpoint=ckpt)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Zipf ids; c1 x c2 (rank 8) and c3 x c4 (rank 4) interact, c5/c6 act alone, c7/c8 carry nothing."""
    out = tmp_path_factory.mktemp("nis") / "syn"
    cfg = SynthConfig(rows=40_000, seed=1, cat_cardinalities=[400, 300, 400, 300, 200, 12, 500, 300],
                      interactions=[Interaction(["c1", "c2"], rank=8, scale=3.0),
                                    Interaction(["c3", "c4"], rank=4, scale=2.0)])
    truth = write_synthetic(out, cfg)
    return prepare(open_dataset(out), tmp_path_factory.mktemp("nis_cache")), truth


def _retrain_valid_auc(ds, block: NISEmbedding, sample: dict) -> float:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_model("fm", ds.schema, embedding_dim=DIM)
    model.embedding = block.freeze(sample)
    cfg = TrainerConfig(epochs=15, batch_size=1024, lr=3e-3, embedding_l2=0.0, patience=2, progress=False)
    Trainer(cfg).fit(model, ds.batches("train", 1024, seed=0), ds.batches("valid", 8192))
    return evaluate(model, ds.batches("valid", 8192))["auc"]


@pytest.mark.slow  # 86 s in CI: `make test-known` runs it (make test stays under 10 minutes with AutoCTR's Ray tests)
def test_nis_gives_tails_fewer_columns_drops_noise_fields_and_beats_a_random_layout_of_the_same_ep(planted) -> None:  # noqa: ANN001
    ds, truth = planted
    model, _, search, sample = _search(ds, 0, 1200, 0.01)
    block = model.embedding
    widths = {f: block.bucket_widths(sample, f) for f in block.fields}
    for w in widths.values():
        if max(w) > 0:  # every field that keeps columns: the tail bucket strictly below the head bucket
            assert w[-1] < w[0], widths
    share = {f: ep / block.full_field_ep()[f] for f, ep in block.field_ep(sample).items()}
    interacting = {f for pair in truth["interactions"] for f in pair}
    noise = [f for f in truth["noise_fields"] if f in share]  # the categorical ones (numerical are not searched)
    assert noise and max(share[f] for f in noise) <= min(share[f] for f in interacting), share
    ep = sum(block.field_ep(sample).values())
    control = random_layout(block, ep, np.random.default_rng(0))
    assert abs(sum(block.field_ep(control).values()) - ep) <= 0.1 * ep
    learned, random = _retrain_valid_auc(ds, block, sample), _retrain_valid_auc(ds, block, control)
    print("NIS widths per bucket:", widths, "EP share per field:", {f: round(v, 3) for f, v in share.items()},
          f"valid AUC learned {learned:.4f} vs random layout {random:.4f} at EP {ep}")
    assert learned > random + 0.01, (learned, random, widths)


def test_bad_nis_settings_are_clear_errors(prepared) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="equal blocks"):
        NISEmbedding(prepared.schema, 10, col_blocks=4)
    with pytest.raises(ConfigError, match="me .multi-size. or se"):
        NISEmbedding(prepared.schema, 16, mode="xe")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="positive shares"):
        NISEmbedding(prepared.schema, 16, row_shares=[0.5, 0.0])
    block = NISEmbedding(prepared.schema, 16)
    with pytest.raises(ConfigError, match="no NIS layout is set"):
        block.export()


@pytest.fixture(scope="module")
def small_fields(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Fields of 2, 5 and 50 values (plus three more): where padding and OOV used to fill the head bucket."""
    out = tmp_path_factory.mktemp("small_fields") / "syn"
    write_synthetic(out, SynthConfig(rows=3000, seed=3, cat_cardinalities=[2, 5, 50, 40, 30, 20]))
    return prepare(open_dataset(out), tmp_path_factory.mktemp("small_fields_cache"))


def test_padding_and_oov_take_no_frequency_rank(small_fields) -> None:  # noqa: ANN001
    block = NISEmbedding(small_fields.schema, DIM, col_blocks=4)
    for f in block.fields:
        buckets = block.id_bucket[f]
        real = buckets[2:]  # ids 2.. are the values by descending train count
        assert real[0] == 0 and np.all(np.diff(real) >= 0), (f, buckets.tolist())
        assert buckets[0] == buckets[1] == real.max(), (f, buckets.tolist())  # padding, OOV join the last bucket
        assert sum(block.rows[f]) == block.cardinality[f]


@pytest.mark.parametrize("mode", ["me", "se"])
def test_no_layout_embeds_a_field_as_zeros(small_fields, mode: str) -> None:  # noqa: ANN001
    """With the floor, the smallest layout and random ones keep columns for every field's most frequent values."""
    block = NISEmbedding(small_fields.schema, DIM, col_blocks=4, mode=mode)
    space = Space(block.choices())
    rng = np.random.default_rng(0)
    samples = [{c.label: c.candidates[0] for c in block.choices()}, *(space.random_sample(rng) for _ in range(50))]
    for sample in samples:
        widths = block.id_widths(sample)
        for f in block.fields:
            assert widths[f][2] > 0, (f, widths[f].tolist())  # id 2, the field's most frequent value
            assert block.field_ep(sample)[f] > 0
    paper = NISEmbedding(small_fields.schema, DIM, col_blocks=4, mode=mode, field_floor=False)
    empty = {c.label: c.candidates[0] for c in paper.choices()}
    assert all(ep == 0 for ep in paper.field_ep(empty).values())  # the paper's space can drop a field


def test_a_dropped_field_is_a_warning(small_fields) -> None:  # noqa: ANN001
    from recnas.experiment.config import load_config
    from recnas.methods import get_method

    cfg = load_config(None, ["search.method=nis", "search.field_floor=false", "model.embedding_dim=16"])
    method = get_method("nis")(cfg)
    block = method.block(small_fields.schema)
    empty = {c.label: c.candidates[0] for c in block.choices()}
    lines = method.warnings(method.arch(block, empty))
    assert len(lines) == 1 and "c1" in lines[0] and "search.field_floor" in lines[0]
    full = {c.label: c.candidates[-1] for c in block.choices()}
    arch = method.arch(block, full)
    assert method.warnings(arch) == []
    assert arch["bucket_rows"]["c1"] == [1, 3]  # the 2-value field: no width listed for its empty third bucket
    assert all(len(arch["bucket_rows"][f]) == len(arch["bucket_widths"][f]) and min(arch["bucket_rows"][f]) > 0
               for f in block.fields)
