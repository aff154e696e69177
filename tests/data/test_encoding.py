from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from recnas.data.numeric import log_square_key, quantile_boundaries, zscore
from recnas.data.processor import FeatureProcessor
from recnas.data.schema import FieldSpec, FieldType, Schema
from recnas.data.source import open_dataset
from recnas.data.vocab import OOV_ID, PAD_ID, Vocabulary
from tests.conftest import write


def test_vocabulary_sorted_by_frequency_with_reserved_ids() -> None:
    v = Vocabulary.from_counts(pa.array(["b", "a", "c", "d"]), np.array([5, 9, 1, 5]), min_count=2)
    assert v.tokens.to_pylist() == ["a", "b", "d"]  # by count, ties by token text
    assert v.counts.tolist() == [0, 1, 9, 5, 5]  # pad, oov (the dropped 'c'), a, b, d
    ids, n_oov = v.lookup(pa.array(["a", "c", "zz", "d"]))
    assert ids.tolist() == [2, OOV_ID, OOV_ID, 4]
    assert n_oov == 2
    assert PAD_ID not in ids


def test_min_count_sends_rare_train_tokens_to_oov(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", "label,a\n1,x\n0,x\n1,y\n0,z\n1,x\n")
    schema = Schema((FieldSpec("a", FieldType.CATEGORICAL, min_count=2),))
    proc = FeatureProcessor(schema)
    fitted = proc.fit(p)
    assert fitted["a"].vocab.size == 3  # pad, oov, x
    arrays, _ = proc.transform(p)
    assert arrays["cat"][:, 0].tolist() == [2, 2, OOV_ID, OOV_ID, 2]


def test_fit_save_load_round_trip_gives_same_ids(synth_dir: Path, tmp_path: Path) -> None:
    src = open_dataset(synth_dir)
    proc = FeatureProcessor(src.schema)
    proc.fit(src.train)
    before, _ = proc.transform(src.splits["test"])
    proc.save(tmp_path / "state")
    assert not list((tmp_path / "state").rglob("*.pkl"))
    loaded = FeatureProcessor.load(tmp_path / "state")
    assert loaded.schema == proc.schema
    for f in proc.schema.fields:
        assert loaded.schema[f.name].vocab == f.vocab
        assert loaded.schema[f.name].stats == f.stats
    after, _ = loaded.transform(src.splits["test"])
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_frequency_counts_match_the_data(synth_dir: Path) -> None:
    src = open_dataset(synth_dir)
    proc = FeatureProcessor(src.schema)
    schema = proc.fit(src.train)
    arrays, _ = proc.transform(src.train)
    j = [f.name for f in schema.categorical].index("c1")
    ids = arrays["cat"][:, j]
    np.testing.assert_array_equal(np.bincount(ids, minlength=schema["c1"].cardinality), schema["c1"].vocab.counts)
    assert np.all(np.diff(schema["c1"].vocab.counts[2:]) <= 0)  # sorted by frequency


def test_numerical_keeps_raw_float_with_nan_for_missing(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", "label,x\n1,1.5\n0,\n1,-2\n")
    proc = FeatureProcessor(Schema((FieldSpec("x", FieldType.NUMERICAL),)))
    schema = proc.fit(p)
    arrays, _ = proc.transform(p)
    x = arrays["num"][:, 0]
    assert x[0] == 1.5 and math.isnan(x[1]) and x[2] == -2
    st = schema["x"].stats
    assert st.missing == 1 and st.count == 2
    assert st.mean == pytest.approx(-0.25) and st.std == pytest.approx(1.75)
    z = zscore(x.astype(float), st)
    assert z.tolist() == pytest.approx([1.0, 0.0, -1.0])


def test_log_square_buckets_follow_criteo_convention() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0, 100.0, -1.0, np.nan])
    keys = log_square_key(x)
    assert keys[:3].tolist() == [0, 1, 2]
    assert keys[3] - 10**6 == math.floor(math.log(3.0) ** 2)
    assert keys[4] - 10**6 == math.floor(math.log(100.0) ** 2) == 21
    assert keys[5] == -1
    assert keys[6] < -(10**8)  # NaN gets a marker outside every real key; bucket_keys masks it


def test_quantile_buckets_are_equal_frequency(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.lognormal(size=4000)
    rows = "\n".join(f"{i % 2},{v:.6f}" for i, v in enumerate(x))
    p = write(tmp_path / "t.csv", "label,x\n" + rows + "\n")
    spec = FieldSpec("x", FieldType.NUMERICAL, buckets="quantile", n_buckets=4)
    proc = FeatureProcessor(Schema((spec,)))
    schema = proc.fit(p)
    assert len(quantile_boundaries(schema["x"], schema["x"].stats)) == 3
    arrays, _ = proc.transform(p)
    shares = np.bincount(arrays["num_bucket"][:, 0])[2:] / len(x)
    assert len(shares) == 4
    np.testing.assert_allclose(shares, 0.25, atol=0.02)


def test_multi_valued_padding_lengths_and_truncation(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", "label,g\n1,a|b|c\n0,b\n1,\n0,c|a|b|b\n")
    proc = FeatureProcessor(Schema((FieldSpec("g", FieldType.MULTI_CATEGORICAL, max_len=3),)))
    schema = proc.fit(p)
    arrays, rep = proc.transform(p)
    v = schema["g"].vocab
    assert v.tokens.to_pylist() == ["b", "a", "c"]  # b:4, a:2, c:2 (tie by text)
    assert arrays["mv_len"][:, 0].tolist() == [3, 1, 0, 3]
    assert arrays["mv"][:, 0, :].tolist() == [[3, 2, 4], [2, 0, 0], [0, 0, 0], [4, 3, 2]]
    assert rep.truncated["g"] == 1


def test_default_max_len_is_longest_train_list(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", "label,g\n1,a|b|c|d|e\n0,b\n")
    schema = FeatureProcessor(Schema((FieldSpec("g", FieldType.MULTI_CATEGORICAL),))).fit(p)
    assert schema["g"].max_len == 5
