"""NIS: multi-size embedding blocks per field, chosen by a controller under a memory cost.

Joglekar et al., Neural Input Search for Large Scale Recommendation Models, KDD 2020.

Each categorical field's full table (vocabulary x `dim`) is cut into a grid of embedding blocks: row
buckets by frequency rank (ids are sorted by train frequency, so a bucket is a contiguous id range; the
default shares 10/20/70% put the most frequent tenth first) times `col_blocks` column blocks of
`dim / col_blocks` columns. A sample decides, per field,

- multi-size (ME, the default): for every column block, how many head buckets use it
  (`nis/<field>/block<j>` in 0..R). Bucket b then has as many column blocks as choices that reach past b,
  so head rows never get fewer columns than tail rows (e.g. [[1000, 32], [2000, 16], [7000, 8]]);
- single-size (SE): how many head buckets the field keeps (`nis/<field>/rows`, 0..R) and at what
  width (`nis/<field>/cols`, 1..col_blocks blocks).

With weight sharing the supernet trains one table at full size; `set_sample` masks the columns a sample
does not store to zero. `freeze(sample)` is a `MixedWidthEmbedding` that stores only the chosen blocks.
Non-categorical fields are not searched and keep the full width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.data.vocab import N_RESERVED
from recnas.errors import ConfigError
from recnas.nn.embedding import FieldEmbedding, NumericalSpec
from recnas.nn.facade import EmbeddingFacade
from recnas.nn.mixed_width import MixedWidthEmbedding, blocks_from_widths
from recnas.space.choice import Choice, Sample

DEFAULT_ROW_SHARES = (0.1, 0.2, 0.7)
DEFAULT_COL_BLOCKS = 4


def bucket_rows(cardinality: int, shares: Sequence[float]) -> list[int]:
    """Rows per frequency bucket, head first: `shares` of the ids rounded.

    Every bucket gets at least one row when the field has at least as many ids as buckets; a smaller field
    leaves its last buckets empty.
    """
    if cardinality < 1:
        raise ConfigError("a field needs at least one id to be cut into buckets")
    n = len(shares)
    cuts = np.round(np.cumsum(shares) / np.sum(shares) * cardinality).astype(int)
    cuts[-1] = cardinality
    if cardinality >= n:  # at least one row each: cut i within [i + 1, cardinality - (n - 1 - i)]
        cuts = np.maximum.accumulate(np.maximum(cuts, np.arange(1, n + 1)))
        cuts = np.minimum(cuts, cardinality - np.arange(n - 1, -1, -1))
        cuts = np.maximum(cuts, np.arange(1, n + 1))
    else:
        cuts = np.minimum(np.arange(1, n + 1), cardinality)
    rows = np.diff(np.concatenate([[0], cuts])).tolist()
    return [int(r) for r in rows]


def id_buckets(cardinality: int, shares: Sequence[float], reserved: int = N_RESERVED) -> np.ndarray:
    """The frequency bucket of every id of a field, head (0) first.

    The ids after the `reserved` ones (padding, OOV) come by descending train count and are cut by `shares`;
    the reserved ids take no frequency rank: they join the last non-empty bucket (OOV stands for the rare
    tokens, padding embeds as zeros). Ranking them first pushed a 2-value field's real values into the tail
    bucket, where a layout could leave them with no columns at all.
    """
    real = cardinality - reserved
    if real < 1:
        raise ConfigError(f"a field needs at least one id besides padding and OOV to be cut into buckets (it has "
                          f"{cardinality} ids in all)")
    rows = bucket_rows(real, shares)
    last = max(i for i, r in enumerate(rows) if r > 0)
    return np.concatenate([np.full(reserved, last), np.repeat(np.arange(len(rows)), rows)]).astype(np.int64)


class NISEmbedding(EmbeddingFacade):
    """The NIS supernet embedding (a `SearchableBlock` searched by sampling): `[B, F, dim]`.

    Args:
        schema: the fitted schema (vocabularies give the rows per bucket).
        dim: the full width (the model's interaction width).
        row_shares: frequency-rank shares of the row buckets, head first.
        col_blocks: column blocks per field (`dim` must divide by it).
        mode: `me` (multi-size) or `se` (single-size).
        min_blocks: ME only: the first `min_blocks` column blocks are stored for every id (not searched), so no id
            ends with zero columns. A tail id without columns embeds as zeros, like an unseen id; a supernet trained
            for a few epochs cannot tell what such ids are worth, and its controller drops them too readily.
        field_floor: every field keeps at least one column block on its head bucket, so no field is embedded as
            zeros whole (dropping a field is feature selection, not sizing); False: the paper's space.
    """

    def __init__(self, schema: Schema, dim: int, row_shares: Sequence[float] = DEFAULT_ROW_SHARES,
                 col_blocks: int = DEFAULT_COL_BLOCKS, mode: Literal["me", "se"] = "me", min_blocks: int = 0,
                 field_floor: bool = True, numerical: NumericalSpec = "auto", pooling: str = "mean",
                 numerical_options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if mode not in ("me", "se"):
            raise ConfigError(f"NIS mode must be me (multi-size) or se (single-size), got {mode!r}")
        if col_blocks < 1 or dim % col_blocks:
            raise ConfigError(f"the embedding width {dim} must split into col_blocks={col_blocks} equal blocks")
        if not 0 <= min_blocks <= col_blocks or (min_blocks and mode != "me"):
            raise ConfigError(f"min_blocks must be in [0, col_blocks={col_blocks}], and 0 in se mode; got {min_blocks}")
        if not row_shares or min(row_shares) <= 0:
            raise ConfigError(f"row_shares must be positive shares, head first, got {list(row_shares)}")
        self.mode = mode
        self.col_blocks, self.min_blocks, self.field_floor = int(col_blocks), int(min_blocks), bool(field_floor)
        self.block_width = dim // col_blocks
        self.row_shares = [float(s) for s in row_shares]
        self.encoding = {"numerical": numerical, "pooling": pooling, "numerical_options": numerical_options}
        self.base = FieldEmbedding(schema, dim, numerical=numerical, pooling=pooling,
                                   numerical_options=numerical_options)
        self._set_shape(list(self.base.field_names), dim)
        self.schema = schema
        self.fields = [f.name for f in schema.categorical]
        self.cardinality = {f.name: f.cardinality for f in schema.categorical}
        n_buckets = len(self.row_shares)
        self.id_bucket = {n: id_buckets(self.cardinality[n], self.row_shares) for n in self.fields}
        self.rows = {n: np.bincount(b, minlength=n_buckets).tolist() for n, b in self.id_bucket.items()}
        bucket_of = [torch.from_numpy(self.id_bucket[n]) for n in self.fields]
        self.register_buffer("row_bucket", torch.cat(bucket_of) if bucket_of else torch.zeros(0, dtype=torch.long),
                             persistent=False)
        self.register_buffer("mask", torch.ones(len(self.fields), n_buckets, dim), persistent=False)
        self.current: Sample | None = None

    # ---- layouts ------------------------------------------------------------------------------
    @property
    def n_buckets(self) -> int:
        """Row buckets per field."""
        return len(self.row_shares)

    def choices(self) -> list[Choice]:
        """ME: per field and column block, how many head buckets use it; SE: rows kept and width.

        The first `min_blocks` blocks have one candidate, every bucket; with `field_floor` the first block (ME) or
        the rows (SE) reach at least the head bucket.
        """
        r = tuple(range(self.n_buckets + 1))
        floor = r[1:] if self.field_floor else r  # the first block (ME) or the rows (SE) reach the head bucket at least
        if self.mode == "me":
            return [Choice(f"nis/{n}/block{j}", (self.n_buckets,) if j < self.min_blocks else floor if j == 0 else r)
                    for n in self.fields for j in range(self.col_blocks)]
        cols = tuple(range(1, self.col_blocks + 1))
        return [c for n in self.fields for c in (Choice(f"nis/{n}/rows", floor), Choice(f"nis/{n}/cols", cols))]

    def smallest_layout(self) -> Sample:
        """The layout storing the least: every choice at its first candidate (`min_blocks` and the floor kept)."""
        return {c.label: c.candidates[0] for c in self.choices()}

    def smallest_share(self) -> float:
        """The EP share of the searched fields that `smallest_layout` stores: the least any budget may ask for."""
        return self.memory_cost(self.smallest_layout(), "total")

    def block_reach(self, sample: Mapping[str, Any], field: str) -> list[int]:
        """Per column block, how many head buckets store it."""
        if self.mode == "me":
            return [int(sample[f"nis/{field}/block{j}"]) for j in range(self.col_blocks)]
        rows, cols = int(sample[f"nis/{field}/rows"]), int(sample[f"nis/{field}/cols"])
        return [rows] * cols + [0] * (self.col_blocks - cols)

    def bucket_widths(self, sample: Mapping[str, Any], field: str) -> list[int]:
        """Stored columns per bucket, head first."""
        reach = self.block_reach(sample, field)
        return [self.block_width * sum(1 for r in reach if r > b) for b in range(self.n_buckets)]

    def id_widths(self, sample: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Per-id widths of every searched field."""
        return {n: np.asarray(self.bucket_widths(sample, n))[self.id_bucket[n]] for n in self.fields}

    def layout(self, sample: Mapping[str, Any]) -> dict[str, list[list[int]]]:
        """The readable layout: {field: [[rows, width], ...]} head to tail (adjacent equal widths merged)."""
        return {n: blocks_from_widths(np.asarray(self.bucket_widths(sample, n))[np.sort(self.id_bucket[n])])
                for n in self.fields}

    def field_ep(self, sample: Mapping[str, Any]) -> dict[str, int]:
        """Floats a sample stores per searched field."""
        return {n: int(sum(r * w for r, w in zip(self.rows[n], self.bucket_widths(sample, n), strict=True)))
                for n in self.fields}

    def full_field_ep(self) -> dict[str, int]:
        """Floats per searched field at full width."""
        return {n: self.cardinality[n] * self.common_dim for n in self.fields}

    def memory_cost(self, sample: Mapping[str, Any], normalise: Literal["field_mean", "total"] = "field_mean") -> float:
        """C_M in [0, 1]: the stored share of each field averaged over fields, or of all fields together.

        The per-field mean makes a field of 50 ids feel the same pressure as one of 50,000.
        """
        ep, full = self.field_ep(sample), self.full_field_ep()
        if normalise == "total":
            return sum(ep.values()) / max(sum(full.values()), 1)
        return float(np.mean([ep[n] / full[n] for n in self.fields])) if self.fields else 0.0

    # ---- SearchableBlock ----------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """None: NIS is searched by sampling."""
        return []

    def set_sample(self, sample: Mapping[str, Any] | None) -> None:
        """Mask every column block a sample does not store (None: the full table)."""
        self.current = dict(sample) if sample is not None else None
        if sample is None:
            self.mask.fill_(1.0)
            return
        mask = torch.zeros_like(self.mask)
        for i, n in enumerate(self.fields):
            for j, reach in enumerate(self.block_reach(sample, n)):
                mask[i, :reach, j * self.block_width:(j + 1) * self.block_width] = 1.0
        self.mask.copy_(mask)

    def export(self) -> Sample:
        """The sample currently set (the controller, not the block, decides)."""
        if self.current is None:
            raise ConfigError("no NIS layout is set; the controller's export() gives the decision")
        return dict(self.current)

    def export_probs(self) -> dict[str, list[float]]:
        """One-hot on the current sample (the controller holds the preferences)."""
        sample = self.export()
        return {c.label: [1.0 if v == sample[c.label] else 0.0 for v in c.candidates] for c in self.choices()}

    def freeze(self, sample: Mapping[str, Any], inherit: bool = False, sparse: bool = False,
               norm_gamma: float | None = None) -> MixedWidthEmbedding:
        """An embedding storing only the blocks of `sample`: fresh, or with `inherit` the supernet's weights.

        Inherited, each width group stores the columns its buckets keep (the buckets of one width keep the
        same column blocks, as the blocks a bucket keeps shrink from head to tail) and its projection puts
        them back in place, so the frozen module computes what `set_sample(sample)` computes.
        """
        frozen = MixedWidthEmbedding(self.schema, self.id_widths(sample), self.common_dim, **self.encoding,
                                     sparse=sparse, norm_gamma=norm_gamma)
        if not inherit:
            return frozen
        offsets = dict(zip(self.fields, self.base.cat_offsets.tolist(), strict=True))
        table = self.base.table.weight
        with torch.no_grad():
            for n in self.fields:
                reach = self.block_reach(sample, n)
                bucket = self.id_bucket[n]
                for t, proj, ids in frozen.groups(n):
                    b = int(bucket[ids[0]])
                    cols = torch.tensor([c for j, r in enumerate(reach) if r > b
                                         for c in range(j * self.block_width, (j + 1) * self.block_width)])
                    t.weight.copy_(table[torch.from_numpy(ids) + offsets[n]][:, cols])
                    proj.zero_()
                    proj[torch.arange(len(cols)), cols] = 1.0
        frozen.inherit_rest(self.base)
        return frozen

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, F, dim]` with the unstored blocks of the current sample zeroed."""
        e = self.base(batch)
        if not self.fields or self.current is None:
            return e
        n_cat = len(self.fields)
        bucket = self.row_bucket[batch.cat + self.base.cat_offsets]  # [B, n_cat]
        mask = self.mask[torch.arange(n_cat).unsqueeze(0), bucket]  # [B, n_cat, dim]
        return torch.cat([e[:, :n_cat] * mask, e[:, n_cat:]], dim=1)


def random_layout(block: NISEmbedding, ep: int, rng: np.random.Generator) -> Sample:
    """A random ME layout storing about `ep` floats: column blocks reach one more bucket at random until it fits.

    The control a learned layout must beat at the same memory (the nearest of the last two layouts is kept).
    """
    if block.mode != "me":
        raise ConfigError("random_layout draws multi-size (me) layouts")
    sample = block.smallest_layout()
    labels = list(sample)
    previous = dict(sample)
    total = 0
    while total < ep:
        open_ = [k for k in labels if sample[k] < block.n_buckets]
        if not open_:
            break
        previous = dict(sample)
        sample[open_[int(rng.integers(len(open_)))]] += 1
        total = sum(block.field_ep(sample).values())
    before = sum(block.field_ep(previous).values())
    return previous if abs(before - ep) < abs(total - ep) else sample


def cheapest_step(block: NISEmbedding, sample: Sample, probs: Mapping[str, Sequence[float]], direction: int,
                  normalise: Literal["field_mean", "total"],
                  allowed: Callable[[float], bool]) -> tuple[Sample, float] | None:
    """(layout, its C_M) after the cheapest move of one choice one candidate up (`direction` 1) or down (-1).

    Cheapest: the least log-probability of the controller lost per unit of C_M changed, among the moves that change
    C_M in that direction and whose C_M `allowed` accepts; None where there is none. Shared by the trim and the fill.
    """
    current = block.memory_cost(sample, normalise)
    best: tuple[float, Sample, float] | None = None
    for c in block.choices():
        i = c.candidates.index(sample[c.label])
        j = i + direction
        if not 0 <= j < len(c.candidates):
            continue
        trial = {**sample, c.label: c.candidates[j]}
        cost = block.memory_cost(trial, normalise)
        change = (cost - current) * direction
        if change <= 0 or not allowed(cost):
            continue
        p = probs[c.label]
        score = (math.log(max(p[i], 1e-12)) - math.log(max(p[j], 1e-12))) / change
        if best is None or score < best[0]:
            best = (score, trial, cost)
    return None if best is None else (best[1], best[2])


def trim_layout(block: NISEmbedding, sample: Mapping[str, Any], probs: Mapping[str, Sequence[float]],
                max_cost: float, normalise: Literal["field_mean", "total"] = "total") -> Sample:
    """Shrink `sample` until its C_M (of `normalise`) is within `max_cost`; `sample` itself where it already is.

    Each step moves one choice to its previous candidate: the step that costs the controller the least
    log-probability per unit of C_M saved. A controller that has not settled (few steps, a weak memory penalty)
    can decode to a layout over the hard budget; the trim makes the export meet it, down to the smallest layout.
    """
    out: Sample = dict(sample)
    current = block.memory_cost(out, normalise)
    while current > max_cost:
        step = cheapest_step(block, out, probs, -1, normalise, lambda _cost: True)
        if step is None:  # the smallest layout: the caller's budget check refuses what is below it
            return out
        out, current = step
    return out


def fill_layout(block: NISEmbedding, sample: Mapping[str, Any], probs: Mapping[str, Sequence[float]],
                max_cost: float, normalise: Literal["field_mean", "total"] = "total") -> Sample:
    """Grow `sample` until no larger step fits under `max_cost` (C_M of `normalise`).

    Each step moves one choice to its next candidate (a column block reaches one more bucket, or in SE mode one
    more bucket or block): the step that costs the controller the least log-probability per unit of C_M added.
    A controller under a hard budget often ends well inside it; the fill spends the rest of the budget the way
    the controller's probabilities rank (as AutoDim's `fill_budget`).
    """
    out: Sample = dict(sample)
    while (step := cheapest_step(block, out, probs, 1, normalise, lambda cost: cost <= max_cost)) is not None:
        out = step[0]
    return out
