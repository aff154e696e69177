"""Where each search runs under a memory budget: on every id's row where it fits, else on the shared tail."""

from __future__ import annotations

import pytest

from recnas.errors import ConfigError
from recnas.experiment import budget
from recnas.experiment.compact import ep_at_width, schema_at_floor, tail_rows
from recnas.experiment.config import load_config
from recnas.methods.base import categorical_rows


def config():  # noqa: ANN201
    return load_config(None, ["model.name=deepfm", "model.embedding_dim=8"])


def test_a_search_runs_on_every_id_where_its_smallest_model_fits(prepared) -> None:  # noqa: ANN001
    cfg = config()
    plans = budget.search_plans(cfg, prepared.schema, budget.full_ep(cfg, prepared.schema))
    assert {"autodim", "nis", "esapn", "joint", "autofis"} <= set(plans)
    assert all(p.floor == 1 and p.config is cfg and p.label == "" for p in plans.values())


def test_below_one_float_per_id_a_size_search_runs_on_the_shared_tail(prepared) -> None:  # noqa: ANN001
    cfg, schema = config(), prepared.schema
    assert budget.floors(schema) == (1, 2, 3, 5, 10)  # the synthetic ids are long-tailed
    max_total_ep = ep_at_width(cfg, schema_at_floor(schema, 2), 2)  # every id seen twice or more at width 2
    full, tables = budget.searched_budget(cfg, schema, 1.0)
    assert max_total_ep < full - tables + categorical_rows(schema)  # below one float for every id
    assert budget.data_floor(cfg, schema, max_total_ep) == 2 and budget.data_floor(cfg, schema, full) == 1
    assert budget.data_floor(cfg, schema, 1) == 10  # none leaves one float per id: the highest
    plans = budget.search_plans(cfg, schema, max_total_ep)
    for name in ("autodim", "esapn", "joint", "nis"):  # one float per id or more: on the ids seen twice or more
        plan = plans[name]  # (NIS could fit every id, most at width 0: it runs where the others do)
        assert plan.floor == 2 and plan.label == "ids seen < 2 times shared"
        assert plan.config.data.min_count == dict.fromkeys((f.name for f in schema.categorical), 2)
        assert f"search.max_ep={budget.table_floats(cfg, schema_at_floor(schema, 2), max_total_ep)}" in plan.settings
    fis = plans["autofis"].floor  # it keeps every table at full width: on the first floor where the full width fits
    assert ep_at_width(cfg, schema_at_floor(schema, fis), 8) <= max_total_ep
    assert ep_at_width(cfg, schema_at_floor(schema, budget.floors(schema)[budget.floors(schema).index(fis) - 1]),
                       8) > max_total_ep
    assert list(plans) == list(budget.search_plans(cfg, schema, max_total_ep))  # the same plan on a resume
    assert tail_rows(schema, 2) < tail_rows(schema, 1)


def test_the_searches_start_at_the_floor_auto_chose_on_validation(prepared) -> None:  # noqa: ANN001
    from recnas.experiment.auto import search_floor

    cfg, schema = config(), prepared.schema
    max_total_ep = int(0.3 * budget.full_ep(cfg, schema))
    assert budget.data_floor(cfg, schema, max_total_ep) == 1
    compact = [{"valid_auc": 0.70, "floor": 1}, {"valid_auc": 0.72, "floor": 2}]
    assert search_floor(compact) == 2 and search_floor(compact[:1]) == 1 and search_floor([]) == 1
    plans = budget.search_plans(cfg, schema, max_total_ep, start_floor=search_floor(compact))
    for name in ("autodim", "esapn", "joint", "nis"):
        assert plans[name].floor == 2 and plans[name].label == "ids seen < 2 times shared"
        at = schema_at_floor(schema, 2)  # the floats the budget leaves the tables at that floor
        assert f"search.max_ep={budget.table_floats(cfg, at, max_total_ep)}" in plans[name].settings
    assert all(p.floor >= 2 for p in plans.values())
    assert {n: p.floor for n, p in budget.search_plans(cfg, schema, max_total_ep).items()} != \
        {n: p.floor for n, p in plans.items()}  # without it, the size searches run on every id


def test_without_a_long_tail_every_search_runs_on_every_id(planted_rank8) -> None:  # noqa: ANN001
    prepared, _ = planted_rank8  # small vocabularies: every id frequent
    cfg, schema = config(), prepared.schema
    assert budget.floors(schema) == (1,)
    full, tables = budget.searched_budget(cfg, schema, 1.0)
    plans = budget.search_plans(cfg, schema, full - tables + categorical_rows(schema) - 1)
    assert all(p.floor == 1 for p in plans.values()) and "autodim" not in plans


def test_a_budget_below_the_smallest_floored_model_names_the_fraction_that_fits(prepared) -> None:  # noqa: ANN001
    cfg, schema = config(), prepared.schema
    full = budget.full_ep(cfg, schema)
    top = schema_at_floor(schema, budget.floors(schema)[-1])
    smallest = full - budget.table_floats(cfg, top, full) + categorical_rows(top)  # one float per id at floor 10
    with pytest.raises(ConfigError, match="ids seen fewer than 10 times in train sharing one row") as e:
        budget.searched_budget(cfg, schema, (smallest - 1) / full)
    wanted = float(str(e.value).split("--max-ep-fraction ")[-1].split()[0])
    budget.searched_budget(cfg, schema, wanted)  # the fraction the error names is met
