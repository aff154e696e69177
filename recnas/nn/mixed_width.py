"""An embedding that stores each categorical id at its own width: the retrain module of NIS and ESAPN.

Ids of one field that share a width share a table (`rows x width`); each table has a projection
`width x common_dim` to the width the model's interactions need, started as the zero-padding map
`[I 0]` (for NIS exactly what the search's "unused columns are zero" meant) and then learned. An id of width 0
is not stored and embeds to the zero vector. EP counts the floats of the tables, per field; the
projections are dense weights, reported apart (`projection_params`). Fields that are not categorical
(numerical, multi-valued) are embedded at `common_dim` by a plain `FieldEmbedding`.

With `norm_gamma` set, the projected categorical embeddings pass through a batch norm over the
`F_cat x common_dim` outputs whose scale starts at `norm_gamma` (AutoDim's retrain lift): the model then no
longer sees the rows' scale, so the embedding L2 cannot shrink a narrow field's signal away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.errors import ConfigError
from recnas.nn.embedding import FieldEmbedding, NumericalSpec
from recnas.nn.facade import CategoricalSplitEmbedding
from recnas.nn.frozen import register_frozen

MAX_RUNS = 64  # runs of equal width up to which ids find their group by comparisons instead of per-id buffers


def widths_from_blocks(blocks: Sequence[Sequence[int]], cardinality: int, field: str = "") -> np.ndarray:
    """Per-id widths of a head-to-tail layout `[[rows, width], ...]` (ids are sorted by frequency)."""
    rows = [int(r) for r, _ in blocks]
    if sum(rows) != cardinality or min(rows, default=0) < 0:
        raise ConfigError(f"field {field!r}: the layout {blocks} covers {sum(rows)} rows, but the field has "
                          f"{cardinality} ids; the layout must list every id once, head first")
    return np.repeat(np.asarray([int(w) for _, w in blocks], dtype=np.int64), rows)


def blocks_from_widths(widths: np.ndarray) -> list[list[int]]:
    """Run-length form `[[rows, width], ...]` of per-id widths, head first."""
    out: list[list[int]] = []
    for w in np.asarray(widths).tolist():
        if out and out[-1][1] == w:
            out[-1][0] += 1
        else:
            out.append([1, int(w)])
    return out


def size_counts(widths: np.ndarray) -> dict[int, int]:
    """{width: number of ids} of one field."""
    values, counts = np.unique(np.asarray(widths), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


class MixedWidthEmbedding(CategoricalSplitEmbedding):
    """Categorical ids at per-id widths, projected to `common_dim` (module docstring): `[B, F, common_dim]`.

    Args:
        schema: the fitted schema.
        widths: {categorical field: per-id widths (length = the field's cardinality)}; fields left out keep
            `common_dim` for every id.
        common_dim: the model's interaction width.
        norm_gamma: initial scale of a batch norm on the projected categorical embeddings; None = no norm.
    """

    def __init__(self, schema: Schema, widths: Mapping[str, Sequence[int] | np.ndarray], common_dim: int,
                 numerical: NumericalSpec = "auto", pooling: str = "mean", sparse: bool = False,
                 numerical_options: Mapping[str, Any] | None = None, init_std: float = 1e-4,
                 norm_gamma: float | None = None) -> None:
        super().__init__()
        cat = schema.categorical
        names = [f.name for f in cat]
        unknown = sorted(set(widths) - set(names))
        if unknown:
            raise ConfigError(f"widths name field(s) {unknown} that are not categorical fields; those are {names}")
        self.common_dim = int(common_dim)
        self.widths: dict[str, np.ndarray] = {}
        self.tables = nn.ModuleList()
        self.projections = nn.ParameterList()
        self._groups: list[list[tuple[int, int]]] = []  # per field: (table index, width) of each group
        self._by_runs: list[bool] = []  # per field: ids find their group by runs (True) or per-id buffers
        for i, f in enumerate(cat):
            w = np.asarray(widths.get(f.name, np.full(f.cardinality, common_dim)), dtype=np.int64)
            if w.shape != (f.cardinality,):
                raise ConfigError(f"field {f.name!r}: {len(w)} widths given for {f.cardinality} ids (padding and "
                                  "OOV included); give one width per id")
            if w.min(initial=0) < 0:
                raise ConfigError(f"field {f.name!r}: widths must be >= 0")
            self.widths[f.name] = w
            group_of = np.full(f.cardinality, -1, dtype=np.int64)
            local = np.zeros(f.cardinality, dtype=np.int64)
            groups = []
            for g, width in enumerate(sorted({int(v) for v in w if v > 0}, reverse=True)):
                ids = np.flatnonzero(w == width)
                group_of[ids] = g
                local[ids] = np.arange(len(ids))
                table = nn.Embedding(len(ids), width, sparse=sparse)
                nn.init.normal_(table.weight, 0.0, init_std)
                self.tables.append(table)
                self.projections.append(nn.Parameter(self._pad_map(width, self.common_dim)))
                groups.append((len(self.tables) - 1, width))
            self._groups.append(groups)
            self._register_id_maps(i, w, group_of, local)
        self.norm_gamma = None if norm_gamma is None else float(norm_gamma)
        self.norm: nn.BatchNorm1d | None = None
        if norm_gamma is not None and cat:
            self.norm = nn.BatchNorm1d(len(cat) * self.common_dim)
            nn.init.constant_(self.norm.weight, float(norm_gamma))
        self._build_rest(schema, self.common_dim, numerical, pooling, sparse, numerical_options, init_std)
        self._set_shape([*names, *(self.rest.field_names if self.rest is not None else [])], self.common_dim)

    def _register_id_maps(self, i: int, widths: np.ndarray, group_of: np.ndarray, local: np.ndarray) -> None:
        """Register how field `i`'s ids find their group and row.

        By runs of equal width when there are few (a search's head-to-tail layouts: no per-id buffer, so an
        exported model's size follows its EP), else by per-id buffers.
        """
        starts = np.flatnonzero(np.r_[True, widths[1:] != widths[:-1]]) if len(widths) else np.zeros(0, np.int64)
        self._by_runs.append(0 < len(starts) <= MAX_RUNS)
        if self._by_runs[-1]:
            self.register_buffer(f"run_start_{i}", torch.from_numpy(starts.astype(np.int64)), persistent=False)
            self.register_buffer(f"run_group_{i}", torch.from_numpy(group_of[starts]), persistent=False)
            self.register_buffer(f"run_local_{i}", torch.from_numpy(local[starts] - starts), persistent=False)
        else:
            self.register_buffer(f"group_{i}", torch.from_numpy(group_of), persistent=False)
            self.register_buffer(f"local_{i}", torch.from_numpy(local), persistent=False)

    def _group_and_local(self, i: int, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Group (-1: width 0) and row within the group's table of field `i`'s ids `[B]`."""
        if self._by_runs[i]:
            run = (ids.unsqueeze(-1) >= getattr(self, f"run_start_{i}")).sum(-1) - 1
            return getattr(self, f"run_group_{i}")[run], ids + getattr(self, f"run_local_{i}")[run]
        return getattr(self, f"group_{i}")[ids], getattr(self, f"local_{i}")[ids]

    @staticmethod
    def _pad_map(width: int, common: int) -> torch.Tensor:
        """`[I 0]` for width <= common (zero padding); a scaled random map otherwise."""
        if width <= common:
            return torch.eye(width, common)
        return torch.randn(width, common) / width ** 0.5

    def embed_categorical(self, batch: FieldBatch) -> torch.Tensor | None:
        """`[B, F_cat, common_dim]`: every id's row at its width, projected."""
        if not self._groups:
            return None
        parts: list[torch.Tensor] = []
        n = batch.cat.shape[0]  # not len(batch): an int would fix the batch size of an exported graph
        for i, groups in enumerate(self._groups):
            group, local = self._group_and_local(i, batch.cat[:, i])
            pieces, where = [], []
            for g, (t, _) in enumerate(groups):  # only the members of a group look it up
                hit = torch.nonzero(group == g).squeeze(1)
                pieces.append(self.tables[t](local[hit]) @ self.projections[t])
                where.append(hit)
            out = torch.zeros(n, self.common_dim)
            if pieces:
                out = out.index_put((torch.cat(where),), torch.cat(pieces))
            parts.append(out.unsqueeze(1))
        x = torch.cat(parts, dim=1)
        return x if self.norm is None else self.norm(x.flatten(1)).view_as(x)

    def own_embedding_params(self) -> int:
        """Floats stored in the mixed-width tables."""
        return int(sum(t.weight.numel() for t in self.tables))

    def field_ep(self) -> dict[str, int]:
        """Floats stored per categorical field (the sum of its ids' widths)."""
        return {name: int(w.sum()) for name, w in self.widths.items()}

    def groups(self, field: str) -> list[tuple[nn.Embedding, nn.Parameter, np.ndarray]]:
        """(table, projection, ids in table-row order) of each width group of a categorical field."""
        i = list(self.widths).index(field)
        w = self.widths[field]
        return [(self.tables[t], self.projections[t], np.flatnonzero(w == width)) for t, width in self._groups[i]]

    def inherit_rest(self, base: FieldEmbedding) -> None:
        """Copy the non-categorical fields' weights from `base`, an embedding of the whole schema at `common_dim`."""
        if self.rest is None:
            return
        with torch.no_grad():
            n_cat_rows = int(sum(f.cardinality for f in base.id_fields[: base.n_cat]))
            if self.rest.n_rows:
                self.rest.table.weight.copy_(base.table.weight[n_cat_rows:n_cat_rows + self.rest.n_rows])
            for mine, theirs in zip(self.rest.encoders, base.encoders, strict=True):
                mine.load_state_dict(theirs.state_dict())

    def projection_params(self) -> int:
        """Floats of the width -> common_dim projections (dense weights, not EP)."""
        return int(sum(p.numel() for p in self.projections))

    def spec(self) -> dict[str, Any]:
        """What rebuilds this module on the same schema (`recnas.nn.frozen.build_frozen`): widths run-length coded."""
        return {"kind": "mixed_width", "common_dim": self.common_dim, "norm_gamma": self.norm_gamma,
                "blocks": {name: blocks_from_widths(w) for name, w in self.widths.items()}}


@register_frozen("mixed_width")
def _build_mixed_width(schema: Schema, spec: Mapping[str, Any], encoding: Mapping[str, Any]) -> MixedWidthEmbedding:
    card = {f.name: f.cardinality for f in schema.categorical}
    unknown = sorted(set(spec["blocks"]) - set(card))
    if unknown:
        raise ConfigError(f"the frozen layout names field(s) {unknown} that are not categorical fields of this schema")
    widths = {f: widths_from_blocks(b, card[f], f) for f, b in spec["blocks"].items()}
    return MixedWidthEmbedding(schema, widths, int(spec["common_dim"]), norm_gamma=spec.get("norm_gamma"),
                               **encoding)
