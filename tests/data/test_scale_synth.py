"""The Criteo-shaped generator: seeded, block by block in bounded memory, Criteo's fields, readable by recnas."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from recnas.data.cache import prepare
from recnas.data.scale_synth import BLOCK_ROWS, CRITEO_CARDINALITIES, ScaleConfig, write_scale_synthetic
from recnas.data.source import open_dataset
from recnas.errors import ConfigError
from recnas.experiment.cli import app


def tables(folder: Path) -> dict:
    return {s: pq.read_table(folder / f"{s}.parquet") for s in ("train", "valid", "test")}


def test_the_same_seed_writes_the_same_rows_and_another_seed_others(tmp_path: Path) -> None:
    rows = 2 * BLOCK_ROWS + 123  # three blocks, the last one short
    a = write_scale_synthetic(tmp_path / "a", ScaleConfig(rows=rows, seed=1, max_cardinality=20_000))
    write_scale_synthetic(tmp_path / "b", ScaleConfig(rows=rows, seed=1, max_cardinality=20_000))
    write_scale_synthetic(tmp_path / "c", ScaleConfig(rows=rows, seed=2, max_cardinality=20_000))
    ta, tb, tc = tables(tmp_path / "a"), tables(tmp_path / "b"), tables(tmp_path / "c")
    assert all(ta[s].equals(tb[s]) for s in ta) and not ta["train"].equals(tc["train"])
    assert sum(a["rows"].values()) == rows == sum(t.num_rows for t in ta.values())
    shares = np.array([a["rows"][s] for s in ("train", "valid", "test")]) / rows
    assert np.allclose(shares, [0.8, 0.1, 0.1], atol=0.01)
    assert 0.15 < a["positive_rate"] < 0.4 and a["bayes_test_auc"] > 0.75


def test_criteo_fields_capped_power_law_ids_and_missing_counts(tmp_path: Path) -> None:
    write_scale_synthetic(tmp_path / "d", ScaleConfig(rows=100_000, seed=0, max_cardinality=50_000))
    train = pq.read_table(tmp_path / "d" / "train.parquet")
    assert train.column_names == ["label", *[f"i{i}" for i in range(1, 14)], *[f"c{i}" for i in range(1, 27)]]
    for i, card in enumerate(CRITEO_CARDINALITIES):
        ids = train[f"c{i + 1}"].to_numpy()
        assert ids.min() >= 0 and ids.max() < min(card, 50_000)
    big = np.bincount(train["c3"].to_numpy())  # 10M ids in Criteo, capped at 50,000 here
    assert big[0] > 20 * big[100] > 0 and (big > 0).sum() > 5_000  # a heavy head and a long tail
    missing = train["i1"].null_count / train.num_rows
    assert 0.01 < missing < 0.03


def test_memory_does_not_grow_with_the_rows(tmp_path: Path) -> None:
    peaks = []
    for rows in (BLOCK_ROWS, 6 * BLOCK_ROWS):
        tracemalloc.start()
        write_scale_synthetic(tmp_path / f"m{rows}", ScaleConfig(rows=rows, seed=0, max_cardinality=1_000_000))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.3 * peaks[0], peaks


def test_recnas_prepares_it_and_the_cli_writes_it(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "s"), "--rows", "20000", "--profile", "criteo",
                                   "--max-cardinality", "1000"])
    assert res.exit_code == 0, res.output
    ds = prepare(open_dataset(tmp_path / "s"), tmp_path / "cache")
    assert len(ds.schema.categorical) == 26 and len(ds.schema.numerical) == 13
    assert len(ds.splits["train"]["y"]) + len(ds.splits["valid"]["y"]) + len(ds.splits["test"]["y"]) == 20_000
    bad = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "x"), "--profile", "kaggle"])
    assert bad.exit_code != 0 and "--profile 'kaggle': expected default or criteo" in str(bad.exception)
    with pytest.raises(ConfigError, match="--max-cardinality"):
        write_scale_synthetic(tmp_path / "y", ScaleConfig(rows=1000, max_cardinality=1))
