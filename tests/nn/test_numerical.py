"""Numerical encoders: the baselines (scalar, equal-width / equal-frequency buckets, log-square) and their wiring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recnas.data.batches import FieldBatch
from recnas.data.numeric import log_square_key
from recnas.data.schema import FieldSpec, FieldType, NumericStats
from recnas.errors import SchemaError
from recnas.nn.embedding import FieldEmbedding, numerical_kinds
from recnas.nn.models import build_model
from recnas.nn.numerical import (
    BUILTIN_KINDS,
    BucketEncoder,
    LogSquareEncoder,
    ScalarEncoder,
    build_encoder,
    equal_freq_edges,
    equal_width_edges,
)
from recnas.nn.numerical import auto_kind as auto_encoder

ENCODERS = list(BUILTIN_KINDS)  # every built-in encoder, a new one included without a test edit


def spec_from(values: np.ndarray, name: str = "x") -> FieldSpec:
    """A fitted numerical field whose statistics come from `values`."""
    q = np.percentile(values, np.linspace(0, 100, 101))
    stats = NumericStats(len(values), 0, float(values.mean()), float(values.std()), float(values.min()),
                         float(values.max()), tuple(float(v) for v in q))
    return FieldSpec(name, FieldType.NUMERICAL, stats=stats)


def test_equal_frequency_buckets_hold_equal_shares_and_equal_width_buckets_equal_spans() -> None:
    rng = np.random.default_rng(0)
    x = rng.lognormal(1.0, 1.0, 50_000)
    spec = spec_from(x)
    freq = BucketEncoder([spec], 4, [equal_freq_edges(spec.stats, 10)])
    counts = np.bincount(freq.ids(torch.tensor(x, dtype=torch.float32).unsqueeze(1)).squeeze(1).numpy(), minlength=10)
    assert len(counts) == 10 and counts.min() > 0.08 * len(x) and counts.max() < 0.12 * len(x)
    edges = equal_width_edges(spec.stats, 10)
    np.testing.assert_allclose(np.diff(edges), (x.max() - x.min()) / 10, rtol=1e-9)
    width = BucketEncoder([spec], 4, [edges])
    ids = width.ids(torch.tensor([[x.min()], [x.max()], [x.max() * 10], [x.min() - 5]], dtype=torch.float32))
    assert ids.squeeze(1).tolist() == [0, 9, 9, 0]  # out-of-range values fall into the end buckets


def test_bucket_edges_merge_ties_of_count_fields() -> None:
    x = np.r_[np.zeros(9000), np.arange(1, 1001)]  # 90% zeros: equal-frequency edges collapse to a few
    spec = spec_from(x.astype(np.float64))
    enc = BucketEncoder([spec], 2, [equal_freq_edges(spec.stats, 20)])
    assert enc.n_ids[0] < 20 and sorted(enc.edges[0]) == enc.edges[0]


def test_log_square_ids_follow_the_criteo_keys() -> None:
    x = np.array([0, 1, 2, 2.5, 3, 10, 100, 1000, 5000], dtype=np.float64)
    spec = spec_from(x)
    enc = LogSquareEncoder([spec], 3)
    ids = enc.ids(torch.tensor(x, dtype=torch.float32).unsqueeze(1)).squeeze(1).numpy()
    keys = log_square_key(x)
    # equal keys <-> equal ids, and ids are ordered like the values
    assert all((keys[i] == keys[j]) == (ids[i] == ids[j]) for i in range(len(x)) for j in range(len(x)))
    assert np.all(np.diff(ids) >= 0) and ids.max() < enc.n_ids[0]
    beyond = enc.ids(torch.tensor([[1e9], [-50.0]]))  # unseen at train time: the nearest end id
    assert int(beyond[0, 0]) == enc.n_ids[0] - 1 and int(beyond[1, 0]) == 0


def test_scalar_encoder_is_linear_in_the_value() -> None:
    spec = spec_from(np.random.default_rng(1).normal(3.0, 2.0, 1000))
    enc = ScalarEncoder([spec], 5, init_std=1.0)
    x = torch.tensor([[1.0], [2.0], [3.0]])
    e = enc(x)[:, 0]
    torch.testing.assert_close(e[2] - e[1], e[1] - e[0])


@pytest.mark.parametrize("kind", ENCODERS)
def test_every_encoder_gives_missing_values_their_own_learned_vector(kind: str) -> None:
    import recnas.space  # noqa: F401  (registers autodis)

    rng = np.random.default_rng(2)
    specs = [spec_from(rng.lognormal(1.0, 1.0, 2000), "a"), spec_from(rng.normal(0, 1, 2000), "b")]
    enc = build_encoder(kind, specs, 4, 0.1, {"n_buckets": 8})
    x = torch.tensor([[1.0, float("nan")], [float("nan"), 0.5], [3.0, -1.0]])
    out = enc(x)
    assert out.shape == (3, 2, 4) and torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 1], enc.missing[1])
    torch.testing.assert_close(out[1, 0], enc.missing[0])
    out.sum().backward()
    assert enc.missing.grad is not None and enc.missing.grad.abs().sum() > 0
    assert len(enc.rows) == 2 and all(r >= 2 for r in enc.rows)


def test_per_field_encoders_and_clear_errors(prepared) -> None:  # noqa: ANN001
    schema = prepared.schema
    names = [f.name for f in schema.numerical]
    kinds = numerical_kinds(schema, {names[0]: "log_square", names[1]: "scalar"})
    assert kinds[names[0]] == "log_square" and all(kinds[n] == "scalar" for n in names[1:])
    emb = FieldEmbedding(schema, 4, numerical={names[0]: "bucket_equal_freq", names[1]: "scalar"},
                         numerical_options={"n_buckets": 5})
    assert [e.kind for e in emb.numerical_encoders()] == ["bucket", "scalar"]
    batch = FieldBatch.from_arrays({k: np.asarray(v[:8]) for k, v in prepared.splits["train"].items()})
    assert emb(batch).shape == (8, emb.num_fields, 4)
    with pytest.raises(SchemaError, match="unknown numerical field"):
        FieldEmbedding(schema, 4, numerical={"nope": "scalar"})
    with pytest.raises(SchemaError, match="unknown numerical encoder 'cubic'"):
        FieldEmbedding(schema, 4, numerical="cubic")


@pytest.mark.parametrize("kind", ENCODERS)
def test_every_encoder_trains_in_a_zoo_model_and_counts_its_embedding_parameters(prepared, kind: str) -> None:  # noqa: ANN001
    import recnas.space  # noqa: F401

    model = build_model("deepfm", prepared.schema, embedding_dim=4, mlp=[8], numerical=kind,
                        numerical_options={"n_buckets": 6, "meta_embeddings": 5})
    batch = FieldBatch.from_arrays({k: np.asarray(v[:32]) for k, v in prepared.splits["train"].items()})
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), batch.y.float())
    loss.backward()
    enc = model.embedding.numerical_encoders()[0]
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad and p is not enc.missing)
    rows = model.embedding.field_rows()
    tables = sum(f.cardinality for f in prepared.schema.fields if f.type.embedded and f.cardinality)
    assert model.embedding.embedding_params() == 4 * (tables + sum(rows[n] for n in enc.field_names))


def fitted(values: np.ndarray, name: str = "x") -> FieldSpec:
    """A numerical field fitted by the data layer's accumulator (levels included), in chunks."""
    from recnas.data.numeric import NumericAccumulator

    acc = NumericAccumulator()
    for chunk in np.array_split(values.astype(np.float64), 4):
        acc.update(chunk)
    return FieldSpec(name, FieldType.NUMERICAL, stats=acc.stats())


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_auto_chooses_per_field_from_the_train_statistics(seed: int) -> None:
    """Codes (few integer values) -> levels; ages (59) -> scalar; skewed counts -> log_square; floats -> scalar."""
    rng = np.random.default_rng(seed)
    age = fitted(rng.integers(1, 11, 5000))  # an ordinal code of 10 values
    counts = fitted(np.floor(rng.lognormal(2.0, 1.5, 5000)))
    wide_ints = fitted(rng.integers(0, 100_000, 5000))
    floats = fitted(rng.normal(40, 10, 5000))
    halves = fitted(rng.integers(0, 10, 5000) + 0.5)  # few values, but not integers
    ages = fitted(rng.integers(15, 74, 5000))
    assert len(ages.stats.levels) == 59  # kept in the statistics, but too many for auto's levels
    assert [auto_encoder(f) for f in (age, counts, wide_ints, floats, halves, ages)] == [
        "levels", "log_square", "scalar", "scalar", "scalar", "scalar"]
    assert auto_encoder(FieldSpec("b", FieldType.NUMERICAL, buckets="log", stats=age.stats)) == "bucket"


def test_levels_gives_every_train_value_its_own_embedding() -> None:
    values = np.array([1, 2, 3, 5, 8, 13] * 50, dtype=np.float64)
    enc = build_encoder("levels", [fitted(values)], 4, 1e-4)
    ids = enc.ids(torch.tensor([[1.0], [2.0], [3.0], [5.0], [8.0], [13.0], [4.1], [40.0], [-3.0]]))[:, 0].tolist()
    assert len(set(ids[:6])) == 6  # one id per level
    assert ids[6] == ids[3] and ids[7] == ids[5] and ids[8] == ids[0]  # unseen values: the nearest level's
    floats = fitted(np.random.default_rng(0).normal(size=3000))  # no levels: equal-frequency buckets instead
    assert build_encoder("levels", [floats], 4, 1e-4, {"n_buckets": 8}).n_ids[0] == 8
