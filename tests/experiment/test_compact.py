"""`recnas auto`'s compact candidates: the widest width within a budget; the shared tail (a raised `min_count`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from recnas.data.cache import prepare
from recnas.data.source import open_dataset, with_min_count
from recnas.errors import ConfigError
from recnas.experiment import compact
from recnas.experiment.config import load_config
from recnas.experiment.run import load_splits


def test_the_widest_width_within_a_memory_budget(prepared) -> None:  # noqa: ANN001
    cfg = load_config(None, ["model.name=deepfm", "model.embedding_dim=32"])

    def ep(width: int) -> int:
        return compact.ep_at_width(cfg, prepared.schema, width)

    assert ep(7) < ep(8) < ep(32)  # the bisection's premise: more width, more embedding parameters
    assert compact.widest_within(cfg, prepared.schema, ep(7) + 1) == 7
    assert compact.widest_within(cfg, prepared.schema, ep(20) - 1) == 19
    assert compact.widest_within(cfg, prepared.schema, ep(1)) == 1
    assert compact.widest_within(cfg, prepared.schema, 10 * ep(32)) == 32  # never wider than the tuned width
    assert compact.widest_within(cfg, prepared.schema, ep(1) - 1) is None


@pytest.mark.parametrize("start", [1, 2])
def test_a_raised_floor_gives_the_vocabulary_that_fitting_at_it_gives(synth_dir: Path, tmp_path: Path,
                                                                        start: int) -> None:
    source = open_dataset(synth_dir)
    names = [f.name for f in source.schema.categorical]

    def fitted_at(floor: int):  # noqa: ANN202
        schema = with_min_count(source.schema, dict.fromkeys(names, floor))
        return prepare(dataclasses.replace(source, schema=schema), tmp_path / f"at{floor}")

    low = fitted_at(start)
    for floor in (2, 3, 5):
        fitted = fitted_at(floor)
        for f in low.schema.categorical:
            assert f.vocab.with_min_count(floor) == fitted.schema[f.name].vocab  # same tokens, ids, counts, OOV count
        rows = [sum(f.cardinality for f in s.categorical) for s in (low.schema, fitted.schema)]
        assert rows[1] < rows[0] or floor <= start  # the synthetic ids are long-tailed: a higher floor drops rows
    assert low.schema[names[0]].vocab.with_min_count(start) is low.schema[names[0]].vocab


def test_the_shared_tail_floors_rare_ids_until_the_tuned_width_fits(prepared) -> None:  # noqa: ANN001
    cfg = load_config(None, ["model.name=deepfm", "model.embedding_dim=32"])
    schema = prepared.schema

    def ep(floor: int, width: int = 32) -> int:
        return compact.ep_at_width(cfg, compact.schema_at_floor(schema, floor), width)

    assert ep(1) > ep(2) > ep(3) > ep(5) > ep(10)  # the premise: a higher floor, fewer rows
    assert compact.shared_tail(cfg, schema, ep(3)) == (3, 32)  # floor 2 does not fit, 3 does at the tuned width
    assert compact.shared_tail(cfg, schema, ep(2)) == (2, 32)
    below = ep(10) - 1  # not even floor 10 fits the tuned width: floor 10, narrowed
    assert compact.shared_tail(cfg, schema, below) == (10, compact.widest_within(
        cfg, compact.schema_at_floor(schema, 10), below))
    assert compact.shared_tail(cfg, schema, ep(10, 1) - 1) is None  # nothing fits


def test_no_shared_tail_without_a_long_tail(planted_rank8) -> None:  # noqa: ANN001
    prepared, _ = planted_rank8  # 40,000 rows over vocabularies of 12-50 ids: every id is frequent
    cfg = load_config(None, ["model.name=deepfm", "model.embedding_dim=32"])
    assert compact.tail_rows(prepared.schema, 2) == compact.tail_rows(prepared.schema, 1)
    assert compact.shared_tail(cfg, prepared.schema, compact.ep_at_width(cfg, prepared.schema, 4)) is None
    names = [c.folder for c in compact.compact_candidates(cfg, prepared.schema,
                                                          compact.ep_at_width(cfg, prepared.schema, 4))]
    assert names == ["narrowed"]


def test_the_compact_candidates_train_the_tables_they_were_sized_for(synth_dir: Path, prepared,  # noqa: ANN001
                                                                     tmp_path: Path) -> None:
    from recnas.methods.base import model_kwargs
    from recnas.nn.models import build_model

    cfg = load_config(None, ["model.name=deepfm", "model.embedding_dim=32", f"data.path={synth_dir}",
                             f"data.cache_dir={tmp_path}"])
    full = compact.ep_at_width(cfg, prepared.schema, 32)
    assert compact.compact_candidates(cfg, prepared.schema, full) == []  # the tuned model fits: nothing to shrink
    budget = int(0.3 * full)
    candidates = compact.compact_candidates(cfg, prepared.schema, budget)
    assert [c.folder for c in candidates] == ["narrowed", "shared_tail"]
    for cand in candidates:
        schema = load_splits(cand.config).ds.schema  # the data as the candidate's training reads it
        model = build_model("deepfm", schema, **model_kwargs(cand.config))
        assert model.embedding_params() <= budget
    tail = candidates[1].config
    assert tail.model.embedding_dim == 32 and set(tail.data.min_count) == {f.name for f in prepared.schema.categorical}
    assert f"ids seen < {min(tail.data.min_count.values())} times shared" in candidates[1].name


def test_where_no_width_fits_every_id_a_floored_candidate_takes_the_lowest_floor_that_fits(prepared) -> None:  # noqa: ANN001
    cfg = load_config(None, ["model.name=deepfm", "model.embedding_dim=32"])
    schema = prepared.schema

    def ep(floor: int, width: int) -> int:
        return compact.ep_at_width(cfg, compact.schema_at_floor(schema, floor), width)

    budget = ep(2, 1)  # width 1 on the ids seen twice or more: under width 1 on every id
    assert ep(1, 1) > budget and ep(2, 2) > budget
    assert compact.lowest_floor(cfg, schema, budget) == (2, 1)
    candidates = {c.folder: c for c in compact.compact_candidates(cfg, schema, budget)}
    assert set(candidates) == {"shared_tail", "floored"}  # no width fits every id: no narrowed candidate
    floored, tail = candidates["floored"], candidates["shared_tail"]
    assert (floored.floor, floored.config.model.embedding_dim) == (2, 1)
    assert floored.config.data.min_count == dict.fromkeys((f.name for f in schema.categorical), 2)
    assert floored.name == "deepfm (tuned, ids seen < 2 times shared, width 1)"
    assert tail.floor > floored.floor and tail.config.model.embedding_dim > 1  # the other trade: fewer ids, wider
    assert compact.lowest_floor(cfg, schema, ep(10, 1) - 1) is None
    narrowed = compact.compact_candidates(cfg, schema, ep(1, 1))  # width 1 fits every id: narrowed, no floored one
    assert [c.folder for c in narrowed] == ["narrowed", "shared_tail"] and narrowed[0].floor == 1


@pytest.mark.parametrize(("floors", "words"), [({"nope": 2}, "data.min_count names ['nope']"),
                                               ({"n1": 2}, "numerical fields without buckets"),
                                               ({"c1": 0}, "data.min_count.c1: field 'c1': min_count must be >= 1")])
def test_a_bad_min_count_override_names_the_key(synth_dir: Path, tmp_path: Path, floors: dict, words: str) -> None:
    cfg = load_config(None, [f"data.path={synth_dir}", f"data.cache_dir={tmp_path}"])
    cfg.data.min_count = floors
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_splits(cfg)
