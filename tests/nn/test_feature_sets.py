"""AutoGroup's feature-set interactions against their written-out formulas, and the frozen block's spec."""

from __future__ import annotations

import itertools

import torch

from recnas.nn.feature_sets import FeatureSets, set_interactions
from recnas.nn.frozen import build_frozen


def test_order_two_with_compensation_is_the_weighted_pairwise_sum() -> None:
    torch.manual_seed(0)
    x, coef = torch.randn(4, 5, 3), torch.randn(5, 2)
    out = set_interactions(x, coef, 2, 1.0)
    for s in range(2):
        explicit = sum(2 * coef[i, s] * coef[j, s] * (x[:, i] * x[:, j]).sum(-1)
                       for i, j in itertools.combinations(range(5), 2))
        torch.testing.assert_close(out[:, s], explicit)


def test_order_three_keeps_the_mixed_terms_and_drops_only_the_pure_cubes() -> None:
    torch.manual_seed(1)
    x, coef = torch.randn(3, 4, 2), torch.randn(4, 1)
    v = x * coef[:, 0].view(1, 4, 1)  # w_i e_i
    mixed = sum(3 * v[:, i] ** 2 * v[:, j] for i in range(4) for j in range(4) if i != j)
    triples = sum(6 * v[:, i] * v[:, j] * v[:, k] for i, j, k in itertools.combinations(range(4), 3))
    torch.testing.assert_close(set_interactions(x, coef, 3, 1.0)[:, 0], (mixed + triples).sum(-1))
    torch.testing.assert_close(set_interactions(x, coef, 3, 0.0)[:, 0], v.sum(1).pow(3).sum(-1))


def test_distinct_terms_are_the_products_of_distinct_fields_only() -> None:
    torch.manual_seed(4)
    x, coef = torch.randn(3, 5, 2), torch.randn(5, 2)
    for order in (2, 3, 4):
        out = set_interactions(x, coef, order, 1.0, terms="distinct")
        for s in range(2):
            v = x * coef[:, s].view(1, 5, 1)
            explicit = sum(torch.stack([v[:, i] for i in idx]).prod(0)
                           for idx in itertools.combinations(range(5), order)).sum(-1)
            torch.testing.assert_close(out[:, s], explicit, atol=1e-5, rtol=1e-4)
    paper = set_interactions(x, coef, 2, 1.0)  # at order 2 the two differ by the factor 2 only
    torch.testing.assert_close(paper, 2 * set_interactions(x, coef, 2, 1.0, terms="distinct"), atol=1e-5, rtol=1e-4)


def test_distinct_terms_ignore_a_set_with_fewer_fields_than_its_order() -> None:
    torch.manual_seed(5)
    x = torch.randn(4, 3, 2)
    two_fields = torch.tensor([[1.0], [0.7], [0.0]])
    assert torch.allclose(set_interactions(x, two_fields, 3, 1.0, terms="distinct"), torch.zeros(4, 1), atol=1e-6)
    from recnas.space.autogroup import AutoGroupSets, member_label

    block = AutoGroupSets(["a", "b", "c"], 2, [1, 1, 1], terms="distinct")
    sample = {member_label(p + 1, 0, f): f in keep for p, keep in enumerate([{"a"}, {"a", "b"}, {"a", "b"}])
              for f in "abc"}
    frozen = block.freeze(sample)
    assert frozen.sets == [[["a"]], [["a", "b"]], []] and frozen.terms == "distinct"
    assert build_frozen(frozen.spec(), None, {}).terms == "distinct"  # type: ignore[arg-type]


def test_order_one_is_the_weighted_set_vector() -> None:
    x, coef = torch.randn(2, 3, 4), torch.tensor([[1.0, 0.0], [0.5, 2.0], [0.0, -1.0]])
    out = set_interactions(x, coef, 1, 1.0).view(2, 2, 4)
    torch.testing.assert_close(out[:, 0], x[:, 0] + 0.5 * x[:, 1])
    torch.testing.assert_close(out[:, 1], 2.0 * x[:, 1] - x[:, 2])


def test_a_field_outside_every_set_does_not_change_the_output() -> None:
    torch.manual_seed(2)
    names = ["a", "b", "c", "d"]
    block = FeatureSets(names, 3, [[["a", "b"]], [["a", "b", "c"]], [["b", "c"]]], normalise=False).eval()
    e = torch.randn(6, 4, 3)
    moved = e.clone()
    moved[:, 3] = torch.randn(6, 3) * 10  # d is in no set
    assert block.out_dim == 3 + 1 + 1
    torch.testing.assert_close(block(e), block(moved))
    changed = e.clone()
    changed[:, 2] += 1.0  # c is
    assert not torch.allclose(block(e), block(changed))


def test_the_spec_rebuilds_the_same_block() -> None:
    torch.manual_seed(3)
    names = ["a", "b", "c"]
    block = FeatureSets(names, 2, [[["a"], ["b", "c"]], [["a", "c"]], []], compensation=0.5).eval()
    spec = block.spec()
    assert spec["sets"] == {"order_1": [["a"], ["b", "c"]], "order_2": [["a", "c"]], "order_3": []}
    other = build_frozen(spec, None, {}).eval()  # type: ignore[arg-type]
    other.load_state_dict(block.state_dict())
    e = torch.randn(5, 3, 2)
    torch.testing.assert_close(block(e), other(e))
    assert other.out_dim == block.out_dim == 2 * 2 + 1


def test_order_tables_give_each_order_its_own_table_counted_in_ep(prepared) -> None:  # noqa: ANN001
    from recnas.experiment.config import ModelConfig
    from recnas.nn.models import build_model

    shared = build_model("autogroup", prepared.schema, embedding_dim=8, mlp=[16])
    own = build_model("autogroup", prepared.schema, embedding_dim=8, mlp=[16], order_tables=True)
    tables = shared.embedding.embedding_params()
    assert own.embedding_params() == shared.embedding_params() + 2 * tables  # orders 2 and 3 read their own tables
    assert len(own.embedding_tables()) == len(shared.embedding_tables()) + 2 * len(shared.embedding.tables_weights())
    try:
        ModelConfig(name="deepfm", order_tables=True)
    except ValueError as e:
        assert "model.order_tables is not an option of model 'deepfm'" in str(e)
    else:
        raise AssertionError("order_tables on deepfm was accepted")



def test_raw_embeddings_reach_the_mlp_beside_the_sets(prepared) -> None:  # noqa: ANN001
    from recnas.nn.models import build_model

    torch.manual_seed(4)
    names = build_model("autogroup", prepared.schema, embedding_dim=4, mlp=[8]).embedding.field_names
    in_one_set = [[[names[0]]], [], []]  # only the first field is in a set; the last is in none
    plain = build_model("autogroup", prepared.schema, embedding_dim=4, mlp=[8], raw_embeddings=False,
                        sets=FeatureSets(names, 4, in_one_set, normalise=False)).eval()
    raw = build_model("autogroup", prepared.schema, embedding_dim=4, mlp=[8], raw_embeddings=True,
                      sets=FeatureSets(names, 4, in_one_set, normalise=False)).eval()
    assert raw.mlp.net[0].in_features == plain.mlp.net[0].in_features + len(names) * 4
    batch = next(iter(prepared.batches("train", 64, shuffle=False)))

    def moved_last_field(_module, _inputs, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[:, -1] = torch.randn_like(out[:, -1]) * 5
        return out

    with torch.no_grad():
        before = plain(batch), raw(batch)
        plain.embedding.register_forward_hook(moved_last_field)
        raw.embedding.register_forward_hook(moved_last_field)
        after = plain(batch), raw(batch)
    torch.testing.assert_close(before[0], after[0])  # a field in no set does not reach the paper's MLP
    assert not torch.allclose(before[1], after[1])  # with raw_embeddings it does
