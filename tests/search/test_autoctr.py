"""AutoCTR's parts: the block DAG, the genotype space, the evolution, the trial record, and resuming a killed search."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recnas.errors import ConfigError, DataError
from recnas.experiment.config import load_config
from recnas.methods.autoctr import AutoCTR, fold_ids, folded_schema
from recnas.nn.block_dag import BlockDAG, BlockSpec, check_blocks
from recnas.search.evolution import AgingEvolution, LambdaRanker, RandomGenotypes
from recnas.search.trials import InlineRunner, TrialStore
from recnas.space.autoctr import BlockDAGSpace

SMALL = ["search.method=autoctr", "model.name=autoctr", "model.embedding_dim=8", "search.executor=inline",
         "search.trials=8", "search.population=3", "search.mutants=8", "search.ranker_min_trials=3", "search.blocks=3",
         "search.trial_epochs=1", "search.trial_rows=2000", "search.trial_valid_rows=800", "search.widths=[16,32]",
         "trainer.batch_size=512", "threads=1"]


# ---- the DAG --------------------------------------------------------------------------------------------
def test_every_block_type_gives_its_documented_shape_and_the_head_reads_the_unconsumed_outputs() -> None:
    blocks = [BlockSpec("efc", ("emb",), 3), BlockSpec("dot", ("emb", "b0")), BlockSpec("fm", ("b0", "b1")),
              BlockSpec("mlp", ("b1",), 16), BlockSpec("cross", ("b2", "b3"))]
    shapes = check_blocks(blocks, num_fields=5, dim=4)
    assert [(s.vectors, s.size) for s in shapes] == [(True, 3), (False, 28), (False, 1), (False, 16), (False, 17)]
    dag = BlockDAG(blocks, 5, 4)
    assert dag.outputs == [4]
    out = dag(torch.randn(7, 5, 4))
    assert out.shape == (7, 1) and torch.isfinite(out).all()


def test_the_dot_block_takes_each_pair_once_and_the_fm_block_is_first_order_plus_the_pair_sum() -> None:
    e = torch.randn(2, 3, 4)
    dot = BlockDAG([BlockSpec("dot", ("emb",))], 3, 4)
    pairs = dot.blocks[0]([e])
    expected = torch.stack([(e[:, i] * e[:, j]).sum(-1) for i in range(3) for j in range(i + 1, 3)], 1)
    assert torch.allclose(pairs, expected, atol=1e-6)
    fm = BlockDAG([BlockSpec("fm", ("emb",))], 3, 4).blocks[0]
    pair_sum = expected.sum(1, keepdim=True)
    assert torch.allclose(fm([e]), fm.first(e).sum(1) + pair_sum, atol=1e-5)


def test_the_default_autoctr_model_is_deepfm_first_order_plus_fm_at_weight_1_plus_the_mlp(prepared) -> None:  # noqa: ANN001
    from recnas.data.batches import FieldBatch
    from recnas.nn.models import build_model

    torch.manual_seed(0)
    model = build_model("autoctr", prepared.schema, embedding_dim=4, mlp=[8, 6])
    batch = FieldBatch.from_arrays({k: v[:16] for k, v in prepared.splits["valid"].items()})
    dag = model.dag
    assert dag.describe()[-1] == "logit = linear <- b0, b2"
    w = dag.head.weight[0]
    assert float(w[0]) == 1.0  # the fm scalar, as DeepFM adds its FM term
    with torch.no_grad():
        e = model.embedding(batch)
        fm = dag.blocks[0]([e])
        deep = dag.blocks[2]([dag.blocks[1]([e])])
        expected = model.first_order(batch) + fm + deep @ w[1:].unsqueeze(1) + dag.head.bias
        assert torch.allclose(model(batch), expected.squeeze(1), atol=1e-5)
        model.first_order.bias.add_(1.0)
        assert torch.allclose(model(batch), expected.squeeze(1) + 1.0, atol=1e-5)


def test_a_dag_rebuilt_from_its_spec_has_the_same_structure_and_parameters() -> None:
    from recnas.nn.frozen import build_frozen

    dag = BlockDAG([BlockSpec("mlp", ("emb",), 8), BlockSpec("fm", ("emb", "b0"))], 4, 6)
    again = build_frozen(json.loads(json.dumps(dag.spec())), None, {})  # type: ignore[arg-type]
    assert again.spec() == dag.spec()
    assert [p.shape for p in again.parameters()] == [p.shape for p in dag.parameters()]


@pytest.mark.parametrize(("blocks", "needle"), [
    ([{"type": "conv", "inputs": ["emb"], "width": None}], "unknown type 'conv'"),
    ([{"type": "mlp", "inputs": [], "width": 8}], "reads no input"),
    ([{"type": "mlp", "inputs": ["b0"], "width": 8}], "input 'b0'"),
    ([{"type": "mlp", "inputs": ["emb"], "width": None}], "needs a width"),
    ([{"type": "mlp", "inputs": ["emb"], "width": 8}, {"type": "dot", "inputs": ["b0"], "width": None}],
     "needs 2 or more"),
    ([{"type": "mlp", "inputs": "emb", "width": 8}], "inputs must be a list"),
    ([{"type": "mlp", "inputs": ["emb"], "width": -3}], "positive integer"),
])
def test_a_dag_that_cannot_be_built_is_a_config_error_naming_the_block(blocks: list, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        BlockDAG(blocks, 4, 8)


# ---- the space ------------------------------------------------------------------------------------------
def test_random_genotypes_are_valid_and_a_mutant_differs_in_exactly_one_active_token() -> None:
    space = BlockDAGSpace(num_fields=5, dim=4, blocks=5)
    rng = np.random.default_rng(0)
    for _ in range(50):
        g = space.random(rng)
        assert space.valid(g)
        space.space.validate(g)
        child = space.mutate(g, rng, {space.key(g)})
        assert child is not None and space.valid(child) and space.key(child) != space.key(g)
        changed = [k for k in g if g[k] != child[k]]
        assert len(changed) == 1 and changed[0] in space.active(g)


def test_inactive_tokens_do_not_change_the_architecture_and_blocks_round_trip_to_the_genotype() -> None:
    space = BlockDAGSpace(num_fields=4, dim=4, blocks=3)
    g = space.random(np.random.default_rng(1))
    g = {**g, "b0/type": "fm"}
    other = {**g, "b0/width": next(w for w in space.widths if w != g["b0/width"])}
    assert space.key(other) == space.key(g)
    back = space.from_blocks([b.to_dict() for b in space.blocks(g)], "arch.json")
    assert space.key(back) == space.key(g)


def test_a_hand_edited_block_list_is_refused_with_the_file_and_the_block_named() -> None:
    space = BlockDAGSpace(num_fields=4, dim=4, blocks=2, widths=(16, 32))
    good = [{"type": "mlp", "inputs": ["emb"], "width": 16}, {"type": "fm", "inputs": ["b0"], "width": None}]
    assert space.valid(space.from_blocks(good, "arch.json"))
    with pytest.raises(ConfigError, match=r"arch.json: 1 blocks, the space has 2"):
        space.from_blocks(good[:1], "arch.json")
    with pytest.raises(ConfigError, match=r"arch.json.*b1.*reads no input"):
        space.from_blocks([good[0], {"type": "fm", "inputs": [], "width": None}], "arch.json")
    with pytest.raises(ConfigError, match=r"arch.json.*48.*not among"):
        space.from_blocks([{**good[0], "width": 48}, good[1]], "arch.json")


def test_the_zoo_start_is_deepfm_drawn_in_the_space_and_absent_where_the_space_cannot_draw_it() -> None:
    space = BlockDAGSpace(num_fields=4, dim=4, blocks=4, widths=(16, 64, 32))
    g = space.zoo_start()
    assert g is not None and space.valid(g)
    assert space.blocks(g) == [BlockSpec("fm", ("emb",)), BlockSpec("mlp", ("emb",), 64),
                               BlockSpec("mlp", ("b1",), 32), BlockSpec("mlp", ("b2",), 16)]
    deep = BlockDAGSpace(num_fields=4, dim=4, blocks=5, widths=(16, 64))
    assert [b.width for b in deep.blocks(deep.zoo_start())] == [None, 64, 16, 16, 16]  # the narrowest repeated
    assert BlockDAGSpace(4, 4, blocks=3, types=("mlp", "dot")).zoo_start() is None
    assert BlockDAGSpace(4, 4, blocks=1).zoo_start() is None


@pytest.mark.parametrize("kind", ["evolution", "random"])
def test_both_strategies_train_the_start_first_and_never_again(kind: str) -> None:
    space = BlockDAGSpace(num_fields=4, dim=4, blocks=3)
    start = space.zoo_start()
    assert start is not None

    def make() -> RandomGenotypes:
        if kind == "random":
            return RandomGenotypes(space, 0, [start])
        return AgingEvolution(space, 0, population_size=4, mutants=5, start=[start])

    strategy = make()
    first = strategy.propose(2)
    assert first[0].origin == "start" and space.key(first[0].genotype) == space.key(start)
    assert first[1].origin == "random"
    strategy.observe(toy_records(space, first, 0))
    later = []
    for _ in range(6):
        proposals = strategy.propose(2)
        strategy.observe(toy_records(space, proposals, 0))
        later += proposals
    assert all(space.key(p.genotype) != space.key(start) for p in later)
    replay = make()  # a resumed search replays the same proposals
    assert [space.key(p.genotype) for p in replay.propose(2)] == [space.key(p.genotype) for p in first]


# ---- the evolution --------------------------------------------------------------------------------------
def toy_records(space: BlockDAGSpace, proposals: list, first: int) -> list[dict]:
    """A made-up loss: lower with more fm blocks (a known best), cost = number of mlp blocks."""
    out = []
    for i, p in enumerate(proposals, first):
        blocks = space.blocks(p.genotype)
        loss = 1.0 - 0.1 * sum(b.type == "fm" for b in blocks)
        out.append({"id": i, "status": "ok", "genotype": p.genotype, "key": space.key(p.genotype),
                    "valid_logloss": loss, "flops": float(sum(b.type == "mlp" for b in blocks))})
    return out


def run_toy(strategy: RandomGenotypes, space: BlockDAGSpace, trials: int) -> list[float]:
    losses: list[float] = []
    while len(losses) < trials:
        recs = toy_records(space, strategy.propose(2), len(losses))
        strategy.observe(recs)
        losses += [r["valid_logloss"] for r in recs]
    return losses


def test_evolution_finds_more_of_a_rewarded_block_than_random_search_and_is_deterministic() -> None:
    space = BlockDAGSpace(num_fields=4, dim=4, blocks=4)
    best_evo, best_rnd = [], []
    for seed in (0, 1, 2):
        evo = run_toy(AgingEvolution(space, seed, population_size=8, mutants=30,
                                     ranker=LambdaRanker(seed, min_trials=8)), space, 40)
        again = run_toy(AgingEvolution(space, seed, population_size=8, mutants=30,
                                       ranker=LambdaRanker(seed, min_trials=8)), space, 40)
        rnd = run_toy(RandomGenotypes(space, seed), space, 40)
        assert evo == again  # the same seed and results, the same proposals
        assert np.mean(evo[20:]) < np.mean(rnd[20:]), (seed, evo, rnd)
        best_evo.append(min(evo))
        best_rnd.append(min(rnd))
    assert np.mean(best_evo) < np.mean(best_rnd), (best_evo, best_rnd)


def test_survival_drops_the_worst_weighted_score_of_age_loss_and_cost() -> None:
    from recnas.search.evolution import Member, SurvivalWeights

    space = BlockDAGSpace(num_fields=4, dim=4, blocks=3)
    old = Member(0, {}, loss=0.5, cost=1.0, age=5)
    good = Member(1, {}, loss=0.4, cost=1.0, age=0)
    costly = Member(2, {}, loss=0.6, cost=10.0, age=0)
    evo = AgingEvolution(space, 0)
    evo.population = [old, good, costly]
    assert evo._worst() is costly  # 0.3 * 0.5 + 0.5 * 1 + 0.2 * 1 against 0.3 + 0.5 * 0.5 for the old one
    evo.weights = SurvivalWeights(age=1.0, loss=0.0, cost=0.0)
    assert evo._worst() is old  # pure aging: the oldest leaves
    evo.population_size = 4
    run_toy(evo, space, 12)
    assert len(evo.population) == 4


# ---- data folding and the trial record ------------------------------------------------------------------
def test_folding_keeps_the_head_ids_and_maps_the_tail_into_the_table(prepared) -> None:  # noqa: ANN001
    ids = np.arange(0, 50)
    folded = fold_ids(ids, 10)
    assert (folded[:10] == ids[:10]).all() and folded.max() < 10 and folded[10:].min() >= 2
    schema = folded_schema(prepared.schema, 10)
    for before, after in zip(prepared.schema.fields, schema.fields, strict=True):
        if before.type.value in ("categorical", "multi_categorical"):
            assert after.cardinality == min(before.cardinality, 10)
            assert int(np.asarray(after.vocab.counts).sum()) == int(np.asarray(before.vocab.counts).sum())


def test_a_torn_last_line_is_skipped_and_a_damaged_middle_line_is_an_error(tmp_path: Path) -> None:
    store = TrialStore(tmp_path / "trials.jsonl")
    store.append({"id": 0, "status": "ok"})
    with open(store.path, "a") as f:
        f.write('{"id": 1, "sta')  # a kill in the middle of a write
    assert list(store.read()) == [0]
    store.append({"id": 1, "status": "ok"})  # the retried trial goes on a line of its own
    assert sorted(store.read()) == [0, 1]
    store.path.write_text('{"id": 0}\nnot json\n{"id": 2}\n')
    with pytest.raises(DataError, match=r"trials.jsonl:2: not a JSON line"):
        store.read()


def test_a_failing_trial_is_recorded_with_its_error_and_the_runner_goes_on() -> None:
    def fn(shared, job):  # noqa: ANN001, ANN202
        if job["id"] == 1:
            raise FloatingPointError("the trial diverged")
        return {"valid_logloss": 0.5}

    recs = list(InlineRunner().run(fn, None, [{"id": 0}, {"id": 1}, {"id": 2}]))
    assert [r["status"] for r in recs] == ["ok", "failed", "ok"]
    assert "FloatingPointError: the trial diverged" in recs[1]["error"]


# ---- the method: resume and bad input -------------------------------------------------------------------
class Killed(BaseException):
    """A kill -9 of the driver after some trials were recorded."""


def test_a_killed_search_resumes_without_rerunning_finished_trials_and_ends_as_an_uninterrupted_one(
        prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import recnas.methods.autoctr as autoctr

    cfg = load_config(None, SMALL)
    splits = SimpleNamespace(ds=prepared)
    whole = AutoCTR(cfg).search(splits, tmp_path / "whole", lambda _m: None)
    ran: list[int] = []
    original = autoctr.train_trial

    def counting(shared, job):  # noqa: ANN001, ANN202
        ran.append(job["id"])
        if len(ran) == 5:
            raise Killed
        return original(shared, job)

    monkeypatch.setattr(autoctr, "train_trial", counting)
    with pytest.raises(Killed):
        AutoCTR(cfg).search(splits, tmp_path / "killed", lambda _m: None)
    assert len(TrialStore(tmp_path / "killed" / "trials.jsonl").read()) == 4
    ran.clear()
    monkeypatch.setattr(autoctr, "train_trial", original)
    monkeypatch.setattr(autoctr, "train_trial", lambda s, j: (ran.append(j["id"]), original(s, j))[1])
    resumed = AutoCTR(cfg).search(splits, tmp_path / "killed", lambda _m: None)
    assert ran == [4, 5, 6, 7]  # the four recorded trials were replayed, not run
    for key in ("sample", "blocks", "population", "best_so_far", "exported_trial"):
        assert resumed[key] == whole[key], key


def test_a_flops_budget_below_every_candidate_is_a_clear_error_and_keeps_the_trials(prepared,  # noqa: ANN001
                                                                                   tmp_path: Path) -> None:
    cfg = load_config(None, [*SMALL, "search.max_flops=1"])
    with pytest.raises(ConfigError, match=r"search.max_flops=1 is below every trained candidate.*cheapest"):
        AutoCTR(cfg).search(SimpleNamespace(ds=prepared), tmp_path / "s", lambda _m: None)
    assert len(TrialStore(tmp_path / "s" / "trials.jsonl").read()) == 8


@pytest.mark.parametrize(("extra", "needle"), [
    (["model.name=deepfm"], "set model.name=autoctr"),
    (["search.trials=3"], "only fills the population"),
    (["search.survival_age=0", "search.survival_loss=0", "search.survival_cost=0"], "all 0"),
])
def test_bad_settings_are_refused_before_any_trial(extra: list[str], needle: str) -> None:
    from recnas.methods import method_of

    with pytest.raises(ConfigError, match=needle):
        method_of(load_config(None, [*SMALL, *extra]))


def test_a_hand_edited_arch_json_is_retrained_as_edited_or_refused_naming_the_block(prepared) -> None:  # noqa: ANN001
    method = AutoCTR(load_config(None, SMALL))
    blocks = [{"type": "mlp", "inputs": ["emb"], "width": 16}, {"type": "fm", "inputs": ["emb", "b0"], "width": None},
              {"type": "dot", "inputs": ["emb"], "width": None}]
    stale = {"sample": {}, "blocks": blocks}  # the person edited blocks, not the genotype: blocks win
    dag = method.frozen_parts(prepared.schema, stale)["dag"]
    assert [b.to_dict() for b in dag.blocks_spec] == blocks
    with pytest.raises(ConfigError, match=r"arch.json: block b2.*input 'b5'"):
        method.frozen_parts(prepared.schema, {"sample": {}, "blocks": [*blocks[:2], {**blocks[2], "inputs": ["b5"]}]})


def test_pareto_marks_the_non_dominated_points() -> None:
    from recnas.train.metrics import non_dominated

    assert non_dominated([(1, 0.5), (2, 0.4), (3, 0.45), (1, 0.6)]) == [True, True, False, False]
