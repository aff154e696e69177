"""The planted-truth view: roles, the memory property and the pairs property, read against a truth.json."""

from __future__ import annotations

from pathlib import Path

import yaml

from recnas.data.synthetic import SynthConfig, write_synthetic
from recnas.experiment.planted import memory_view, pairs_view, read_truth, roles, strongest_pair, summary_lines

TRUTH = {"interactions": [["c1", "c2"], ["c5", "c6"]], "interaction_ranks": [8, 2],
         "informative_fields": ["c1", "c2", "c3", "c4", "c5", "c6", "n1", "m1"], "noise_fields": ["c7", "c8", "n2"]}


def test_roles_name_the_highest_rank_each_field_is_part_of() -> None:
    r = roles(TRUTH)
    assert r["c1"] == r["c2"] == "rank-8 interaction" and r["c5"] == "rank-2 interaction"
    assert r["c3"] == "informative" and r["c7"] == r["n2"] == "noise"
    assert strongest_pair(TRUTH) == ["c1", "c2"]
    third = {**TRUTH, "interactions": [["c3", "c4", "c5"], *TRUTH["interactions"]], "interaction_ranks": [16, 8, 2]}
    assert strongest_pair(third) == ["c1", "c2"]  # a third-order interaction is no pair


def test_the_memory_property_needs_both_pair_fields_above_every_noise_field_the_method_sizes() -> None:
    memory = {"c1": 8.0, "c2": 16.0, "c5": 4.0, "c7": 2.0, "c8": 4.0}  # n2 not sized: not compared
    view = memory_view(TRUTH, memory)
    assert view["holds"] and view["margin"] == 4.0 and view["noise_fields"] == ["c7", "c8"]
    assert view["per_field"]["c8"] == {"floats_per_id": 4.0, "role": "noise"}
    assert not memory_view(TRUTH, {**memory, "c8": 8.0})["holds"]  # a tie is not more
    assert not memory_view(TRUTH, {**memory, "c1": 1.0})["holds"]
    assert "the pair stores more" in summary_lines({"memory": view})[0]


def test_the_pairs_property_needs_every_planted_pair_and_no_pair_with_a_noise_field() -> None:
    view = pairs_view(TRUTH, [["c2", "c1"], ["c5", "c6"], ["c3", "c4"]])
    assert view["holds"] and view["recovered"] == [["c1", "c2"], ["c5", "c6"]] and view["kept"] == 3
    noisy = pairs_view(TRUTH, [["c1", "c2"], ["c5", "c6"], ["c4", "c7"]])
    assert not noisy["holds"] and noisy["with_noise_field"] == [["c4", "c7"]]
    assert not pairs_view(TRUTH, [["c1", "c2"]])["holds"]
    assert "1 of 2 planted pairs kept" in summary_lines({"pairs": pairs_view(TRUTH, [["c1", "c2"]])})[0]


def test_truth_is_read_from_a_synthetic_folder_and_absent_elsewhere(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "syn", SynthConfig(rows=500, seed=4, shuffle_fields=True))
    truth = read_truth(tmp_path / "syn")
    assert truth is not None and truth["noise_fields"] == ["c7", "c8", "n2"]
    assert read_truth(tmp_path) is None and read_truth(None) is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "truth.json").write_text("{not json")
    assert read_truth(tmp_path / "bad") is None


def test_shuffled_fields_change_the_column_order_and_nothing_else(tmp_path: Path) -> None:
    plain = write_synthetic(tmp_path / "a", SynthConfig(rows=400, seed=6))
    shuffled = write_synthetic(tmp_path / "b", SynthConfig(rows=400, seed=6, shuffle_fields=True))
    cols = [yaml.safe_load((tmp_path / d / "schema.yaml").read_text())["columns"] for d in "ab"]
    names = [[c["name"] for c in x] for x in cols]
    assert names[0] != names[1] and sorted(names[0]) == sorted(names[1]) and names[1][0] == "label"
    assert sorted(map(str, cols[0]), key=str) == sorted(map(str, cols[1]), key=str)  # same specs, other order
    assert plain["interactions"] == shuffled["interactions"] and plain["bayes_test_auc"] == shuffled["bayes_test_auc"]
