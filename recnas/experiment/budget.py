"""A memory budget in `recnas auto`'s terms: what the tables may store, and where each search runs to meet it.

The budget is a share of the full-width model's embedding parameters (EP). The parts no search shrinks (first-order
weights, numerical encoders, multi-valued fields) count in it, so on long-tailed data a small budget can be below
what one float per id already stores. There a search runs on the data whose rare ids share one row
(`data.min_count`, the shared tail's floors, `recnas.experiment.compact`): at the smallest floor where its smallest
model fits, so it is never left out for a budget the shared tail itself meets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recnas.errors import ConfigError
from recnas.experiment.compact import TAIL_FLOORS, ep_at_width, floored_config, has_tail, schema_at_floor
from recnas.experiment.config import ExperimentConfig


@dataclass(frozen=True)
class SearchPlan:
    """How one search runs under the budget: its base config (floored or not), its auto overrides and the floor."""

    config: ExperimentConfig
    settings: list[str]
    floor: int

    @property
    def label(self) -> str:
        """What the floor means, for the log and the leaderboard ('' at floor 1)."""
        return f"ids seen < {self.floor} times shared" if self.floor > 1 else ""


def full_ep(cfg: ExperimentConfig, schema: Any) -> int:
    """Embedding parameters of `cfg`'s model at its full width on `schema` (built once, not trained)."""
    return ep_at_width(cfg, schema, cfg.model.embedding_dim)


def unsearched_ep(cfg: ExperimentConfig, schema: Any) -> int:
    """Embedding parameters no search shrinks: first-order weights, numerical encoders, multi-valued fields."""
    from recnas.methods.base import categorical_rows

    return full_ep(cfg, schema) - categorical_rows(schema) * cfg.model.embedding_dim


def table_floats(cfg: ExperimentConfig, schema: Any, max_total_ep: int) -> int:
    """Floats the categorical tables of `cfg`'s model on `schema` may store for its whole EP to stay in budget."""
    return max_total_ep - unsearched_ep(cfg, schema)


def floors(schema: Any) -> tuple[int, ...]:
    """The floors a search may run at on this data: 1 (every id its row), and the shared tail's on long tails."""
    return (1, *TAIL_FLOORS) if has_tail(schema) else (1,)


def searched_budget(cfg: ExperimentConfig, schema: Any, max_ep_fraction: float) -> tuple[int, int]:
    """(EP of `cfg`'s full-width model, floats its categorical tables may store so the whole stays in budget).

    A budget below the smallest model any candidate builds (one float per id at the highest floor the data allows,
    beside the parts no search shrinks) is an error naming the smallest fraction that could be met.
    """
    from recnas.methods.base import categorical_rows

    full = full_ep(cfg, schema)
    top = floors(schema)[-1]
    floored = schema_at_floor(schema, top)
    rest, ids = unsearched_ep(cfg, floored), categorical_rows(floored)
    if int(max_ep_fraction * full) < rest + ids:
        where = "" if top == 1 else f" even with the ids seen fewer than {top} times in train sharing one row"
        raise ConfigError(f"--max-ep-fraction {max_ep_fraction:g} is below the smallest model: the parts no search "
                          f"shrinks (first-order weights, numerical encoders, multi-valued fields) already store "
                          f"{rest / full:.1%} of {cfg.model.name}'s {full:,} embedding parameters at width "
                          f"{cfg.model.embedding_dim}{where}, and one float per id needs {ids / full:.1%} more; pass "
                          f"--max-ep-fraction {(rest + ids) / full + 0.005:.2f} or more")
    max_ep = table_floats(cfg, schema, int(max_ep_fraction * full))
    return full, max_ep


def fitting_methods(schema: Any, embedding_dim: int, max_ep: int) -> dict[str, list[str]]:
    """{method: its overrides} of every registered method that fits the data, in `auto_rank` order."""
    from recnas.methods import get_method, method_names

    out = {}
    for name in sorted(method_names(), key=lambda n: (get_method(n).auto_rank, n)):
        settings = get_method(name).auto_settings(schema, embedding_dim, max_ep)
        if settings is not None:
            out[name] = settings
    return out


def data_floor(cfg: ExperimentConfig, schema: Any, max_total_ep: int) -> int:
    """The floor the budget asks for: the smallest of `floors` where the tables may store one float per id.

    1 (every id its row) where the budget allows; the highest floor where none does.
    """
    from recnas.methods.base import categorical_rows

    options = floors(schema)
    for floor in options:
        at = schema_at_floor(schema, floor)
        if table_floats(cfg, at, max_total_ep) >= categorical_rows(at):
            return floor
    return options[-1]


def search_plans(cfg: ExperimentConfig, schema: Any, max_total_ep: int, start_floor: int = 1) -> dict[str, SearchPlan]:
    """{method: its plan} of every registered search that fits `max_total_ep`, in `auto_rank` order.

    The data's floor comes from the budget: every id its row where the tables may store one float per id or more,
    else the smallest floor (`floors`) where they may (the rare ids share one row, which shrinks the first-order
    weights too), else the highest; never below `start_floor` (`recnas auto` passes the floor of its best compact
    candidate on validation). A search whose auto settings refuse the budget there runs at the next floor
    where they accept it (AutoFIS keeps every table whole). A method that could give rare ids no float at all (NIS)
    runs at the same floor as the others: on bookcrossing at 5% NIS with most ids at width 0 lost 0.03 test AUC to
    AutoDim on the shared tail (bench/log/2026-12-07-issue19-floored-searches.md).
    """
    from recnas.methods import get_method

    options = floors(schema)
    start = max(data_floor(cfg, schema, max_total_ep), start_floor)
    plans: dict[str, SearchPlan] = {}
    for floor in [f for f in options if f >= start]:
        at = schema_at_floor(schema, floor)
        max_ep = table_floats(cfg, at, max_total_ep)
        if max_ep < len(schema.categorical):
            continue
        base = floored_config(cfg, schema, floor)
        for name, settings in fitting_methods(at, cfg.model.embedding_dim, max_ep).items():
            plans.setdefault(name, SearchPlan(base, settings, floor))
    return dict(sorted(plans.items(), key=lambda kv: (get_method(kv[0]).auto_rank, kv[0])))


__all__ = ["SearchPlan", "data_floor", "fitting_methods", "floors", "full_ep", "search_plans", "searched_budget",
           "table_floats", "unsearched_ep"]
