"""ESAPN's embedding: every categorical id at its own size, which only grows.

Liu, Zhao et al., Automated Embedding Size Search in Deep Recommender Systems, SIGIR 2020.

Candidate sizes s_0 < ... < s_K (default 2, 4, 8, 16, 64, 128); one table per size. Per field, linear maps
W_k lift size k to size k+1; an id at size k embeds as T_k[id] W_k ... W_{K-1}, a vector of the largest
size (the model's width). The maps start near zero padding ([I N], N small and random). Growing an id
from k to k+1 sets T_{k+1}[id] = T_k[id] W_k + R[id]; R[id], the id's row in the next size's table, is a
residual that starts at zero, so growth without training leaves the output unchanged (the paper's "a
grown row starts from its smaller embedding"). `set_shift` embeds ids one size up (T_k W_k + R): the
search trains R and scores the size an id would grow to with its current row shared, and the optimiser
state is carried over at growth (a fresh Adam state on a grown row takes a few outsized steps).

Decisions are made per frequency bucket (ids are sorted by frequency; a bucket is a contiguous rank
range, all its ids at one size): one decision moves thousands of training samples, which is what lets a
policy see its effect. As a `SearchableBlock`, a sample is the size of every (field, bucket); `freeze`
stores each id at its size (`MixedWidthEmbedding`). Non-categorical fields are not searched.
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
from recnas.nn.embedding import NumericalSpec
from recnas.nn.facade import CategoricalSplitEmbedding
from recnas.nn.mixed_width import MixedWidthEmbedding
from recnas.space.choice import Choice, Sample
from recnas.space.nis import bucket_rows

DEFAULT_SIZES = (2, 4, 8, 16, 64, 128)
DEFAULT_BUCKETS = 10


def size_label(field: str, bucket: int) -> str:
    """Choice label of the size of one frequency bucket of a field."""
    return f"esapn/{field}/bucket{bucket}"


class ESAPNEmbedding(CategoricalSplitEmbedding):
    """The growing embedding of the module docstring: `[B, F, sizes[-1]]`.

    Args:
        schema: the fitted schema.
        sizes: candidate sizes, increasing.
        buckets: frequency buckets per field (equal shares of the ids, head first).
    """

    def __init__(self, schema: Schema, sizes: Sequence[int] = DEFAULT_SIZES, buckets: int = DEFAULT_BUCKETS,
                 numerical: NumericalSpec = "auto", pooling: str = "mean",
                 numerical_options: Mapping[str, Any] | None = None, init_std: float = 1e-4) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or sizes != sorted(set(sizes)) or sizes[0] < 1:
            raise ConfigError(f"ESAPN sizes must be at least two increasing positive sizes, got {sizes}")
        if buckets < 1:
            raise ConfigError(f"ESAPN needs at least one frequency bucket per field, got {buckets}")
        self.sizes = sizes
        self.schema = schema
        self.encoding = {"numerical": numerical, "pooling": pooling, "numerical_options": numerical_options}
        cat = schema.categorical
        self.fields = [f.name for f in cat]
        self.cardinality = {f.name: f.cardinality for f in cat}
        self.n_buckets = buckets
        self.rows = {n: bucket_rows(self.cardinality[n], [1.0] * buckets) for n in self.fields}
        offsets = np.concatenate([[0], np.cumsum([self.cardinality[n] for n in self.fields])]).astype(np.int64)
        self.register_buffer("offsets", torch.from_numpy(offsets[:-1].copy()), persistent=False)
        n_rows = int(offsets[-1])
        field_of = np.repeat(np.arange(len(self.fields)), [self.cardinality[n] for n in self.fields])
        bucket_of = np.concatenate([np.repeat(np.arange(buckets), self.rows[n]) for n in self.fields]) if self.fields \
            else np.zeros(0, dtype=np.int64)
        self.register_buffer("row_field", torch.from_numpy(field_of.astype(np.int64)), persistent=False)
        self.register_buffer("row_bucket", torch.from_numpy(bucket_of.astype(np.int64)), persistent=False)
        self.register_buffer("size_index", torch.zeros(n_rows, dtype=torch.long))  # saved: the search state
        self.register_buffer("shift", torch.zeros(n_rows, dtype=torch.long), persistent=False)
        self.tables = nn.ModuleList(nn.Embedding(max(n_rows, 1), s) for s in sizes)
        for t in self.tables:
            nn.init.normal_(t.weight, 0.0, init_std)
        n_f = max(len(self.fields), 1)
        self.lifts = nn.ParameterList(
            nn.Parameter(self._lift_init(n_f, a, b)) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        for t in self.tables[1:]:  # ids start at the smallest size: every larger row is a zero residual
            nn.init.zeros_(t.weight)
        self._build_rest(schema, sizes[-1], numerical, pooling, False, numerical_options, init_std)
        self._set_shape([*self.fields, *(self.rest.field_names if self.rest is not None else [])], sizes[-1])

    @staticmethod
    def _lift_init(n_fields: int, a: int, b: int, noise: float = 0.1) -> torch.Tensor:
        """`[I N]` per field: zero padding plus small random new columns.

        With exact zero padding, every id starting at the smallest size would keep the new dimensions at zero
        for good in an FM (a product needs both sides non-zero there, so no gradient ever reaches them).
        """
        eye = torch.eye(a, b).expand(n_fields, a, b).clone()
        eye[:, :, a:] = torch.randn(n_fields, a, b - a) * (noise / a ** 0.5)
        return eye

    # ---- sizes --------------------------------------------------------------------------------
    def bucket_size_index(self) -> torch.Tensor:
        """`[fields, buckets]` size index of every bucket (all ids of a bucket share it)."""
        out = torch.zeros(len(self.fields), self.n_buckets, dtype=torch.long)
        out[self.row_field, self.row_bucket] = self.size_index
        return out

    def id_sizes(self) -> dict[str, np.ndarray]:
        """Per-id sizes of every searched field."""
        sizes = torch.tensor(self.sizes)[self.size_index]
        return {n: sizes[self.row_field == i].numpy() for i, n in enumerate(self.fields)}

    def field_ep(self) -> dict[str, int]:
        """Floats stored per field at the current sizes."""
        return {n: int(s.sum()) for n, s in self.id_sizes().items()}

    def full_field_ep(self) -> dict[str, int]:
        """Floats per field with every id at the largest size."""
        return {n: self.cardinality[n] * self.sizes[-1] for n in self.fields}

    def _materialise(self, rows: torch.Tensor, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """For ids at size k: T_k+1[id] <- T_k[id] W_k + R[id] (R: the residual row), and a fresh zero residual.

        With Adam `optimizers`, the moment estimates are carried over the same way (the lifted moments of the
        smaller row plus the residual's; squared maps for the second moment). This is a heuristic: the residual's
        moments already hold the shifted passes' gradients, so on the first s_k columns some gradient signal is
        counted twice; what matters is that the grown row does not start from a zero second moment.
        """
        with torch.no_grad():
            for k in range(len(self.sizes) - 1):
                sel = rows[self.size_index[rows] == k]
                if len(sel) == 0:
                    continue
                lift = self.lifts[k][self.row_field[sel]]  # [n, s_k, s_k+1]
                src, dst = self.tables[k].weight, self.tables[k + 1].weight
                dst[sel] = torch.bmm(src[sel].unsqueeze(1), lift).squeeze(1) + dst[sel]
                state = next((o.state[src] for o in optimizers if src in o.state), None)
                target = next((o.state[dst] for o in optimizers if dst in o.state), None)
                if state and target and "exp_avg" in state:
                    target["exp_avg"][sel] += torch.bmm(state["exp_avg"][sel].unsqueeze(1), lift).squeeze(1)
                    target["exp_avg_sq"][sel] += torch.bmm(state["exp_avg_sq"][sel].unsqueeze(1),
                                                           lift.pow(2)).squeeze(1)
                if k + 2 < len(self.sizes):  # the new size's residual starts at zero
                    nxt = self.tables[k + 2].weight
                    nxt[sel] = 0.0
                    nstate = next((o.state[nxt] for o in optimizers if nxt in o.state), None)
                    if nstate and "exp_avg" in nstate:
                        nstate["exp_avg"][sel] = 0.0
                        nstate["exp_avg_sq"][sel] = 0.0

    def grow(self, buckets: torch.Tensor,
             optimizer: torch.optim.Optimizer | Sequence[torch.optim.Optimizer] | None = None) -> int:
        """Grow every id of the `[fields, buckets]` boolean selection by one size; returns how many ids grew.

        `optimizer`: the one (or those) holding the tables' Adam moments, carried over with the rows.

        The grown row is T_k[id] W_k plus the id's residual row (zero unless the search trained it), so
        growing an untrained id leaves the model's output unchanged.
        """
        selected = buckets[self.row_field, self.row_bucket] & (self.size_index < len(self.sizes) - 1)
        rows = torch.nonzero(selected).squeeze(1)
        optimizers = [] if optimizer is None else [optimizer] if isinstance(optimizer, torch.optim.Optimizer) \
            else list(optimizer)
        self._materialise(rows, optimizers)
        with torch.no_grad():
            self.size_index[rows] += 1
        return len(rows)

    def set_shift(self, buckets: torch.Tensor | None) -> None:
        """Embed the ids of the `[fields, buckets]` selection one size up; None: every id at its size.

        One size up, an id at size k embeds as T_k[id] W_k + R[id], R[id] being its row in the next size's
        table (a residual, zero until trained): the size it would grow to, sharing its current row.
        """
        if buckets is None:
            self.shift.zero_()
            return
        self.shift.copy_(buckets[self.row_field, self.row_bucket].long())

    # ---- SearchableBlock ----------------------------------------------------------------------
    def choices(self) -> list[Choice]:
        """The size of every (field, frequency bucket)."""
        return [Choice(size_label(n, b), tuple(self.sizes)) for n in self.fields for b in range(self.n_buckets)]

    def arch_parameters(self) -> list[nn.Parameter]:
        """None: the sizes are chosen by a policy, not by gradients."""
        return []

    def set_sample(self, sample: Mapping[str, Any] | None) -> None:
        """Set every bucket's size (None: back to the smallest)."""
        with torch.no_grad():
            if sample is None:
                self.size_index.zero_()
                return
            index = torch.tensor([[self.sizes.index(int(sample[size_label(n, b)])) for b in range(self.n_buckets)]
                                  for n in self.fields], dtype=torch.long).reshape(len(self.fields), self.n_buckets)
            self.size_index.copy_(index[self.row_field, self.row_bucket])

    def export(self) -> Sample:
        """The current size of every bucket."""
        index = self.bucket_size_index()
        return {size_label(n, b): self.sizes[int(index[i, b])] for i, n in enumerate(self.fields)
                for b in range(self.n_buckets)}

    def export_probs(self) -> dict[str, list[float]]:
        """One-hot on the current sizes (the policy holds the preferences)."""
        sample = self.export()
        return {c.label: [1.0 if v == sample[c.label] else 0.0 for v in c.candidates] for c in self.choices()}

    def freeze(self, sample: Mapping[str, Any], inherit: bool = False, sparse: bool = False,
               norm_gamma: float | None = None) -> MixedWidthEmbedding:
        """An embedding storing each id at its bucket's size: fresh, or with `inherit` the searched weights.

        Inherited (serving the streamed model as it is), a group of size s_k stores T_k's rows and its
        projection is the field's lift chain W_k ... W_{K-1}, so it computes what this module computes
        when `sample` is the current sizes.
        """
        widths = {n: np.repeat([int(sample[size_label(n, b)]) for b in range(self.n_buckets)], self.rows[n])
                  for n in self.fields}
        frozen = MixedWidthEmbedding(self.schema, widths, self.sizes[-1], **self.encoding, sparse=sparse,
                                     norm_gamma=norm_gamma)
        if not inherit:
            return frozen
        with torch.no_grad():
            for i, n in enumerate(self.fields):
                offset = int(self.offsets[i])
                for t, proj, ids in frozen.groups(n):
                    k = self.sizes.index(t.weight.shape[1])
                    t.weight.copy_(self.tables[k].weight[torch.from_numpy(ids) + offset])
                    chain = torch.eye(self.sizes[k])
                    for lift in self.lifts[k:]:
                        chain = chain @ lift[i]
                    proj.copy_(chain)
        if self.rest is not None and frozen.rest is not None:
            frozen.rest.load_state_dict(self.rest.state_dict())
        return frozen

    # ---- forward ------------------------------------------------------------------------------
    def embed_categorical(self, batch: FieldBatch) -> torch.Tensor | None:
        """`[B, F_cat, sizes[-1]]`: each id at its size (one up where shifted), lifted through the maps."""
        if not self.fields:
            return None
        ids = batch.cat + self.offsets
        k_of = self.size_index[ids]
        up = self.shift[ids].bool() & (k_of < len(self.sizes) - 1)
        h = torch.zeros(*ids.shape, self.sizes[0])
        for k, table in enumerate(self.tables):
            use = (k_of == k) | (up & (k_of == k - 1))  # the id's row, or its residual one size up
            h = h + table(ids) * use.unsqueeze(-1).to(h.dtype)
            if k < len(self.lifts):
                h = torch.einsum("bfd,fde->bfe", h, self.lifts[k])
        return h

    def own_embedding_params(self) -> int:
        """Floats the current sizes store (not the allocated search tables)."""
        return int(sum(self.field_ep().values()))
