from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from recnas.data.hashing import BucketCounter, HashedVocabulary, hash_buckets_of, load_vocabulary
from recnas.data.schema import FieldSpec, FieldType, Schema
from recnas.data.source import open_dataset, with_hash_buckets
from recnas.data.vocab import N_RESERVED
from recnas.errors import ConfigError, SchemaError
from recnas.experiment.config import load_config

TOKENS = [f"id{i}" for i in range(5000)] + ["", "é中", "a|b"]


def test_a_token_gets_the_same_bucket_in_any_process() -> None:
    # Python's own hash() of a str changes with PYTHONHASHSEED; the buckets must not
    here = hash_buckets_of(pa.array(TOKENS), 4096).tolist()
    code = ("import json, sys, pyarrow as pa; from recnas.data.hashing import hash_buckets_of; "
            "print(json.dumps(hash_buckets_of(pa.array(json.loads(sys.stdin.read())), 4096).tolist()))")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], input=json.dumps(TOKENS), capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        assert json.loads(out.stdout) == here


def test_buckets_are_spread_evenly_and_a_null_is_the_missing_token() -> None:
    b = hash_buckets_of(pa.array([str(i) for i in range(100_000)]), 100)
    counts = np.bincount(b, minlength=100)
    assert counts.min() > 850 and counts.max() < 1150  # Poisson(1000): 5 sd either side
    pair = hash_buckets_of(pa.array([None, "", "x"]), 1 << 20)
    assert pair[0] == pair[1] != pair[2]


@pytest.mark.parametrize("distinct", [300, 3000, 20_000])
def test_the_distinct_estimate_is_close_and_the_collision_share_follows_it(distinct: int) -> None:
    for seed in range(3):
        rng = np.random.default_rng(seed)
        tokens = [f"t{seed}-{i}" for i in range(distinct)]
        counter = BucketCounter(65_536)
        counter.update(pa.array(list(rng.choice(tokens, 3 * distinct)) + tokens))  # repeats count once
        c = counter.vocabulary().collisions()
        assert abs(c["distinct_estimate"] - distinct) < 0.05 * distinct + 10
        assert c["shared_share"] == pytest.approx(1 - np.exp(-(c["distinct_estimate"] - 1) / 65_536), abs=1e-4)


def test_ids_follow_the_train_counts_and_survive_a_save(tmp_path: Path) -> None:
    counter = BucketCounter(64)
    counter.update(pa.array(["a"] * 50 + ["b"] * 20 + ["c"] * 5 + [None] * 3))
    v = counter.vocabulary()
    assert v.size == 64 + N_RESERVED and v.missing == 3
    assert list(v.counts[N_RESERVED:]) == sorted(v.counts[N_RESERVED:], reverse=True)  # frequency order, as NIS needs
    ids, oov = v.lookup(pa.array(["a", "b", "never seen"]))
    assert oov == 0 and ids[0] == N_RESERVED and v.counts[ids[1]] >= 20 and N_RESERVED <= ids[2] < v.size
    v.save(tmp_path / "v.arrow")
    again = load_vocabulary(tmp_path / "v.arrow")
    assert isinstance(again, HashedVocabulary) and again == v and again.missing == 3


def test_a_bucket_floor_sends_rare_buckets_to_oov_and_keeps_frequency_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tokens = pa.array([f"t{i}" for i in np.minimum(rng.zipf(1.3, 20_000), 100_000)])
    counter = BucketCounter(4096)
    counter.update(tokens)
    full, floored = counter.vocabulary(), counter.vocabulary(min_count=5)
    kept = counter.counts >= 5
    assert floored.size == int(kept.sum()) + N_RESERVED < full.size  # the table holds only buckets at the floor
    assert floored.counts[1] == counter.counts[~kept].sum() and floored.counts.sum() == len(tokens)
    assert list(floored.counts[N_RESERVED:]) == sorted(floored.counts[N_RESERVED:], reverse=True)
    ids, oov = floored.lookup(tokens)
    buckets = hash_buckets_of(tokens, 4096)
    assert np.array_equal(ids == 1, ~kept[buckets]) and oov == int((~kept[buckets]).sum()) > 0
    assert np.array_equal(np.bincount(ids, minlength=floored.size)[N_RESERVED:], floored.counts[N_RESERVED:])
    floored.save(tmp_path / "f.arrow")
    again = load_vocabulary(tmp_path / "f.arrow")
    assert again == floored and np.array_equal(again.lookup(tokens)[0], ids)
    assert floored.summary()["floored_buckets"] == int(((counter.counts > 0) & ~kept).sum())


def test_bad_hash_settings_are_errors_naming_the_field_or_key(synth_dir: Path) -> None:
    with pytest.raises(SchemaError, match="hash_buckets must be >= 2"):
        FieldSpec("u", FieldType.CATEGORICAL, hash_buckets=1)
    schema = open_dataset(synth_dir).schema
    with pytest.raises(ConfigError, match=r"data.hash_buckets.n1: .*numerical"):
        with_hash_buckets(schema, {"n1": 100})
    with pytest.raises(ConfigError, match=r"data.hash_buckets names \['nope'\]"):
        with_hash_buckets(schema, {"nope": 100})


def test_a_hashed_run_trains_reloads_and_scores_unseen_ids(synth_dir: Path, tmp_path: Path) -> None:
    from recnas.experiment.run import load_run, load_splits, predict_file, run_train

    cfg = load_config(None, [f"data.path={synth_dir}", f"data.cache_dir={tmp_path / 'c'}", "model.mlp=[16]",
                             "data.hash_buckets={c2: 64, m1: 8}", "trainer.epochs=1", "trainer.progress=false",
                             "threads=1"])
    splits = load_splits(cfg)
    schema = splits.ds.schema
    assert schema["c2"].cardinality == 64 + N_RESERVED and schema["m1"].cardinality == 8 + N_RESERVED
    assert not isinstance(schema["c3"].vocab, HashedVocabulary)  # the fields not named keep their vocabulary
    c2 = [f.name for f in schema.categorical].index("c2")
    for split in ("train", "test"):
        ids = np.asarray(splits.ds.splits[split]["cat"][:, c2])
        assert ids.min() >= N_RESERVED and ids.max() < 64 + N_RESERVED  # every token, seen or not, has a bucket
    assert sum(splits.ds.manifest["splits"]["test"]["oov"].get(f, 0) for f in ("c2", "m1")) == 0
    res = run_train(cfg, tmp_path / "run")
    _, reloaded, _ = load_run(tmp_path / "run")
    assert reloaded["c2"].vocab == schema["c2"].vocab
    summary, _ = predict_file(tmp_path / "run", synth_dir / "test.csv", tmp_path / "pred.csv")
    assert summary["auc"] == pytest.approx(res.metrics["test_auc"], abs=1e-6)


def test_inspect_reports_the_estimated_collisions(synth_dir: Path) -> None:
    from recnas.data.inspect import summarize

    source = open_dataset(synth_dir)
    source.schema = with_hash_buckets(source.schema, {"c2": 16})
    row = next(f for f in summarize(source).fields if f.name == "c2")
    assert "hashed into 16 buckets" in row.extra and "share a bucket" in row.extra
    assert row.top and row.top[0][0].startswith("<bucket ")


def test_the_cache_key_of_unhashed_data_does_not_change() -> None:
    # hash_buckets joins schema.json (and the cache key) only where it is set, so no cache is rebuilt for nothing
    plain = Schema((FieldSpec("u", FieldType.CATEGORICAL),))
    assert "hash_buckets" not in json.dumps(plain.to_dict())
    hashed = plain.replace_fields([FieldSpec("u", FieldType.CATEGORICAL, hash_buckets=8)])
    assert hashed.to_dict()["fields"][0]["hash_buckets"] == 8
