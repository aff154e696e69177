"""The user's first tries under a memory budget, as `recnas auto` candidates: a tuned model made to fit, no search.

Ways to shrink the best tuned zoo model's embedding tables, each one training:

- **narrowed**: one smaller width for every field, the widest whose embedding parameters (EP) fit;
- **shared tail**: the ids seen fewer than `m` times in train share the out-of-vocabulary row (`data.min_count`),
  for the smallest `m` in `TAIL_FLOORS` at which the tuned width fits (or the largest `m`, narrowed to fit). An id
  seen once has one label to learn its row from, so on long-tailed data the tail costs most of the floats and
  carries least of the signal; where there is no such tail (the rarest ids still fill most rows' worth of
  examples) the candidate is left out;
- **floored**: where not even width 1 fits with every id its row, the smallest `m` at which some width fits, at the
  widest width that fits there: the other trade than the shared tail's (more ids, fewer floats each).

Which one wins is data-dependent, so each is trained and `recnas auto` chooses on the validation split; the
searches then run on the winner's data (its `floor`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from recnas.data.schema import Schema
from recnas.data.vocab import Vocabulary
from recnas.experiment.config import ExperimentConfig
from recnas.experiment.tune import trial_config

TAIL_FLOORS = (2, 3, 5, 10)  # the min_count values the shared tail tries, smallest first
TAIL_MIN_CUT = 0.1  # a shared tail is a candidate only where floor 2 removes at least this share of the rows


@dataclass(frozen=True)
class CompactCandidate:
    """One way to make the tuned model fit: its config, leaderboard name, folder under auto's out and data floor."""

    config: ExperimentConfig
    name: str
    folder: str
    floor: int = 1


def compact_candidates(best: ExperimentConfig, schema: Schema, max_total_ep: int) -> list[CompactCandidate]:
    """The narrowed, shared-tail and floored candidates of the tuned config `best`, those that exist for this data.

    None of them where `best` already fits `max_total_ep` (it is a candidate as it is).
    """
    width = best.model.embedding_dim
    if ep_at_width(best, schema, width) <= max_total_ep:
        return []
    model = best.model.name
    out = []
    narrow = widest_within(best, schema, max_total_ep)
    if narrow is not None:
        out.append(CompactCandidate(trial_config(best, {"model.embedding_dim": narrow}),
                                    f"{model} (tuned, width {narrow})", "narrowed"))
    tail = shared_tail(best, schema, max_total_ep)
    if tail is not None:
        out.append(floored_candidate(best, schema, *tail, "shared_tail"))
    floored = None if narrow is not None else lowest_floor(best, schema, max_total_ep)
    if floored is not None and floored != tail:
        out.append(floored_candidate(best, schema, *floored, "floored"))
    return out


def floored_candidate(best: ExperimentConfig, schema: Schema, floor: int, width: int, folder: str) -> CompactCandidate:
    """`best` at `width` with the ids seen fewer than `floor` times sharing one row, as a candidate in `folder`."""
    return CompactCandidate(shared_tail_config(best, schema, floor, width),
                            f"{best.model.name} (tuned, ids seen < {floor} times shared, width {width})", folder, floor)


def lowest_floor(cfg: ExperimentConfig, schema: Schema, max_total_ep: int) -> tuple[int, int] | None:
    """(min_count, width): the smallest of `TAIL_FLOORS` where some width fits, the widest there; else None.

    None too where the data has no long tail.
    """
    if not has_tail(schema):
        return None
    for floor in TAIL_FLOORS:
        width = widest_within(cfg, schema_at_floor(schema, floor), max_total_ep)
        if width is not None:
            return floor, width
    return None


def shared_tail(cfg: ExperimentConfig, schema: Schema, max_total_ep: int) -> tuple[int, int] | None:
    """(min_count, width) of the shared-tail candidate; None where the data has no long tail or nothing fits."""
    if not has_tail(schema):
        return None
    width = cfg.model.embedding_dim
    for floor in TAIL_FLOORS:
        if ep_at_width(cfg, schema_at_floor(schema, floor), width) <= max_total_ep:
            return floor, width
    narrow = widest_within(cfg, schema_at_floor(schema, TAIL_FLOORS[-1]), max_total_ep)
    return (TAIL_FLOORS[-1], narrow) if narrow is not None else None


def has_tail(schema: Schema) -> bool:
    """Whether the data has a long tail: floor 2 removes at least `TAIL_MIN_CUT` of the floored fields' rows."""
    rows = tail_rows(schema, 1)
    return bool(rows) and tail_rows(schema, TAIL_FLOORS[0]) <= (1 - TAIL_MIN_CUT) * rows


def shared_tail_config(cfg: ExperimentConfig, schema: Schema, floor: int, width: int) -> ExperimentConfig:
    """`cfg` at `width` with every floored field's `data.min_count` raised to `floor` (never lowered)."""
    return trial_config(floored_config(cfg, schema, floor), {"model.embedding_dim": width})


def floored_config(cfg: ExperimentConfig, schema: Schema, floor: int) -> ExperimentConfig:
    """`cfg` with every floored field's `data.min_count` raised to `floor` (never lowered); `cfg` itself at 1."""
    if floor <= 1:
        return cfg
    floors = {f.name: max(f.min_count, floor) for f in floored_fields(schema)}
    return trial_config(cfg, {"data.min_count": {**cfg.data.min_count, **floors}})


def floored_fields(schema: Schema) -> list[Any]:
    """The fields a shared tail floors: categorical ones with a token vocabulary (hashed fields keep their buckets)."""
    return [f for f in schema.categorical if isinstance(f.vocab, Vocabulary)]


def tail_rows(schema: Schema, floor: int) -> int:
    """Table rows of the floored fields when every one keeps only the tokens seen `floor` times or more."""
    return sum(f.vocab.with_min_count(floor).size for f in floored_fields(schema))


def schema_at_floor(schema: Schema, floor: int) -> Schema:
    """The fitted `schema` as fitting with `min_count` at least `floor` on the floored fields gives it (no re-read).

    `schema` itself at floor 1 (every id its row).
    """
    if floor <= 1:
        return schema
    floored = {f.name for f in floored_fields(schema)}
    return schema.replace_fields([
        dataclasses.replace(f, min_count=max(f.min_count, floor), vocab=f.vocab.with_min_count(floor))
        if f.name in floored else f for f in schema.fields])


def widest_within(cfg: ExperimentConfig, schema: Schema, max_total_ep: int) -> int | None:
    """The largest width up to `cfg`'s whose model stores at most `max_total_ep` embedding parameters; None if none.

    Embedding parameters grow with the width, so a bisection finds it in a few model builds.
    """
    lo, hi = 1, cfg.model.embedding_dim
    if ep_at_width(cfg, schema, lo) > max_total_ep:
        return None
    while lo < hi:  # lo fits; find the largest that does
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ep_at_width(cfg, schema, mid) <= max_total_ep else (lo, mid - 1)
    return lo


def ep_at_width(cfg: ExperimentConfig, schema: Schema, width: int) -> int:
    """Embedding parameters of `cfg`'s model with every field at `width` (built once, not trained)."""
    from recnas.methods.base import model_kwargs
    from recnas.nn.models import build_model

    wide = trial_config(cfg, {"model.embedding_dim": width})
    return build_model(wide.model.name, schema, **model_kwargs(wide)).embedding_params()
