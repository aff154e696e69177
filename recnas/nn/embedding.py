"""Field embeddings: every field of a fitted schema turned into a vector per row.

Categorical ids, bucketised numerical ids and multi-valued ids share one concatenated table with
per-field row offsets (one lookup for all fields). Other numerical fields go through a numerical
encoder (`recnas.nn.numerical`: scalar, hard buckets, log-square, AutoDis), one vectorised module per
encoder kind and dimension, each with a learned vector for missing values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.data.schema import FieldSpec, Schema
from recnas.errors import SchemaError
from recnas.nn.numerical import (
    BUILTIN_KINDS,
    NUMERICAL_ENCODERS,
    SCHEMA_KINDS,
    NumericalEncoder,
    auto_kind,
    build_encoder,
)

FieldGroups = tuple[list[FieldSpec], list[FieldSpec], list[FieldSpec], list[FieldSpec]]
NumericalSpec = str | Mapping[str, str]


def numerical_kinds(schema: Schema, numerical: NumericalSpec = "auto") -> dict[str, str]:
    """Encoder kind per numerical field: `bucket` (the schema's bucket ids) or a numerical encoder's name.

    `numerical` is one kind for every field or a mapping field -> kind (unnamed fields take `auto`).
    `bucket` uses the schema's bucket ids where the field declares buckets, `scalar` elsewhere; `auto` chooses
    per field from its train statistics (`recnas.nn.numerical.auto_kind`).
    """
    names = [f.name for f in schema.numerical]
    if isinstance(numerical, str):
        wanted = dict.fromkeys(names, numerical)
    else:
        unknown = sorted(set(numerical) - set(names))
        if unknown:
            raise SchemaError(f"numerical encoder given for unknown numerical field(s) {unknown}; "
                              f"numerical fields are {names}")
        wanted = {n: numerical.get(n, "auto") for n in names}
    known = {*SCHEMA_KINDS, *BUILTIN_KINDS, *NUMERICAL_ENCODERS}
    out = {}
    for f in schema.numerical:
        kind = wanted[f.name]
        if kind not in known:
            raise SchemaError(f"field {f.name!r}: unknown numerical encoder {kind!r}; choose one of {sorted(known)}")
        if kind == "auto":
            kind = auto_kind(f)
        elif kind in SCHEMA_KINDS:
            kind = "bucket" if f.buckets != "none" else "scalar"
        out[f.name] = kind
    return out


def field_order(schema: Schema, numerical: NumericalSpec = "auto") -> FieldGroups:
    """(categorical, bucketised numerical, encoded numerical, multi-valued) fields, in output order.

    Encoded numerical fields are grouped by encoder kind (first appearance order), one module per group.
    """
    return _group_fields(schema, numerical_kinds(schema, numerical))


def embedded_field_names(schema: Schema, numerical: NumericalSpec = "auto") -> list[str]:
    """Field names in the order a `FieldEmbedding` outputs them (without building one)."""
    return [f.name for group in field_order(schema, numerical) for f in group]


def _group_fields(schema: Schema, kinds: Mapping[str, str]) -> FieldGroups:
    bucket = [f for f in schema.numerical if kinds[f.name] == "bucket"]
    order = list(dict.fromkeys(k for k in kinds.values() if k != "bucket"))
    encoded = [f for k in order for f in schema.numerical if kinds[f.name] == k]
    return schema.categorical, bucket, encoded, schema.multi_categorical


class FieldEmbedding(nn.Module):
    """Embeds every field of a fitted schema: `[batch, fields, dim]` (or flat `[batch, sum dims]`).

    Args:
        schema: a fitted schema (vocabularies give table sizes).
        dim: one dimension for all fields, or a mapping field -> dimension.
        numerical: one numerical encoder for every numerical field, or a mapping field -> encoder:
            `auto`/`bucket` (the schema's bucket ids where declared, scalar elsewhere), `scalar`,
            `bucket_equal_width`, `bucket_equal_freq`, `log_square` or `autodis` (see `numerical_kinds`).
        numerical_options: options of the numerical encoders (`n_buckets`; AutoDis's options).
        pooling: `mean` or `sum` over the tokens of multi-valued fields.
        sparse: sparse gradients for the id table (pair with SparseAdam/Adagrad).
        init_std: std of the normal initialisation of all embedding rows.
    """

    def __init__(
        self, schema: Schema, dim: int | Mapping[str, int], numerical: NumericalSpec = "auto", pooling: str = "mean",
        sparse: bool = False, init_std: float = 1e-4, numerical_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not schema.fitted:
            raise SchemaError("FieldEmbedding needs a fitted schema (run FeatureProcessor.fit or prepare first)")
        if pooling not in ("mean", "sum"):
            raise SchemaError(f"pooling must be mean or sum, got {pooling!r}")
        self.numerical_kinds = numerical_kinds(schema, numerical)
        cat, bucket, encoded, multi = _group_fields(schema, self.numerical_kinds)
        self.field_names = [f.name for f in (*cat, *bucket, *encoded, *multi)]
        dims = {n: dim for n in self.field_names} if isinstance(dim, int) else dict(dim)
        missing = [n for n in self.field_names if n not in dims]
        if missing:
            raise SchemaError(f"no embedding dimension given for field(s) {missing}")
        unknown = sorted(set(dims) - set(self.field_names))
        if unknown:
            raise SchemaError(f"embedding dimensions name unknown field(s) {unknown}; fields are {self.field_names}")
        if any(d < 1 for d in dims.values()):
            raise SchemaError(f"embedding dimensions must be >= 1, got {dims}")
        self.dims = [int(dims[n]) for n in self.field_names]
        self.pooling = pooling
        self.n_cat, self.n_bucket, self.n_encoded, self.n_multi = len(cat), len(bucket), len(encoded), len(multi)
        self.bucket_cols = [schema.bucketized.index(f) for f in bucket]
        id_fields = [*cat, *bucket, *multi]
        self.id_fields = id_fields
        sizes = [f.cardinality for f in id_fields]
        offsets = torch.tensor([0, *sizes[:-1]], dtype=torch.long).cumsum(0)
        n_cb = self.n_cat + self.n_bucket
        self.register_buffer("cat_offsets", offsets[: self.n_cat].clone(), persistent=False)
        self.register_buffer("bucket_offsets", offsets[self.n_cat : n_cb].clone(), persistent=False)
        self.register_buffer("multi_offsets", offsets[n_cb:].clone(), persistent=False)
        self.equal_dims = len(set(self.dims)) <= 1
        self.dim = self.dims[0] if self.equal_dims and self.dims else 0
        self.n_rows = int(sum(sizes))
        if self.equal_dims:
            self.table = nn.Embedding(max(self.n_rows, 1), self.dim, sparse=sparse)
            nn.init.normal_(self.table.weight, 0.0, init_std)
        else:  # slow path for mixed sizes: one table per field
            id_dims = [dims[f.name] for f in id_fields]
            self.tables = nn.ModuleList(nn.Embedding(s, d, sparse=sparse) for s, d in zip(sizes, id_dims, strict=True))
            for t in self.tables:
                nn.init.normal_(t.weight, 0.0, init_std)
        self.numerical_options = dict(numerical_options or {})
        self.encoders = nn.ModuleList()
        groups: dict[tuple[str, int], list[FieldSpec]] = {}
        for f in encoded:  # already grouped by kind; split further by dimension (mixed sizes only)
            groups.setdefault((self.numerical_kinds[f.name], dims[f.name]), []).append(f)
        slot = {f.name: (g, j) for g, fields in enumerate(groups.values()) for j, f in enumerate(fields)}
        self._encoded_slots = [slot[f.name] for f in encoded]  # (group, column) of each encoded field, in order
        for g, ((kind, d), fields) in enumerate(groups.items()):
            self.encoders.append(build_encoder(kind, fields, d, init_std, self.numerical_options))
            cols = torch.tensor([schema.numerical.index(f) for f in fields], dtype=torch.long)
            self.register_buffer(f"num_cols_{g}", cols, persistent=False)
        self.track_rows = False  # record looked-up rows for the lazy L2 of the sparse path
        self._touched: list[tuple[nn.Embedding, torch.Tensor]] = []

    def _lookup(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        if self.track_rows and self.training and torch.is_grad_enabled():
            self._touched.append((table, ids.reshape(-1)))
        return table(ids)

    def touched_squared_norm(self) -> torch.Tensor:
        """||E_rows||^2 over the distinct rows looked up since the last call (then forgets them).

        The lazy L2 of the sparse path: only rows a batch touched are penalised, so gradients stay sparse.
        """
        total = torch.zeros(())
        by_table: dict[int, tuple[nn.Embedding, list[torch.Tensor]]] = {}
        for table, ids in self._touched:
            by_table.setdefault(id(table), (table, []))[1].append(ids)
        for table, ids in by_table.values():
            total = total + table(torch.unique(torch.cat(ids))).pow(2).sum()
        self._touched = []
        return total

    @property
    def num_fields(self) -> int:
        """Number of embedded fields (the F of `[batch, F, dim]`)."""
        return len(self.field_names)

    @property
    def flat_dim(self) -> int:
        """Width of the flat output, the sum of the field dimensions."""
        return sum(self.dims)

    def embedding_params(self) -> int:
        """Embedding parameters (EP): every table row plus the numerical encoders' value vectors.

        An encoder's maps that compute weights (AutoDis's discretiser) are dense parameters, not EP.
        """
        tables = sum(w.numel() for w in self.tables_weights())
        return tables + sum(e.embedding_params() for e in self.numerical_encoders())

    def field_rows(self) -> dict[str, int]:
        """Embedding rows per field, in output order: vocabulary sizes of id fields, encoder rows of numerical ones."""
        rows = {f.name: f.cardinality for f in self.id_fields}
        for enc in self.numerical_encoders():
            rows.update(zip(enc.field_names, enc.rows, strict=True))
        return {n: rows[n] for n in self.field_names}

    def numerical_encoders(self) -> list[NumericalEncoder]:
        """The numerical encoder modules, in output order."""
        return list(self.encoders)  # type: ignore[arg-type]

    def _encoded(self, batch: FieldBatch) -> list[torch.Tensor]:
        """`[B, F_g, D_g]` per numerical encoder group."""
        return [enc(batch.num.index_select(1, getattr(self, f"num_cols_{g}")))
                for g, enc in enumerate(self.encoders)]

    def _pool(self, e: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Masked sum or mean over tokens: `[B, F, L, D]` -> `[B, F, D]`."""
        mask = torch.arange(e.shape[2], device=e.device) < lengths.unsqueeze(-1)
        pooled = (e * mask.unsqueeze(-1).to(e.dtype)).sum(2)
        if self.pooling == "mean":
            pooled = pooled / lengths.clamp(min=1).unsqueeze(-1).to(e.dtype)
        return pooled

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Stacked field embeddings `[batch, fields, dim]` (needs equal dimensions)."""
        if not self.equal_dims:
            raise SchemaError(f"fields have different embedding dimensions {self.dims}; use flat()")
        parts = []
        if self.n_cat:
            parts.append(self._lookup(self.table, batch.cat + self.cat_offsets))
        if self.n_bucket:
            parts.append(self._lookup(self.table, batch.num_bucket[:, self.bucket_cols] + self.bucket_offsets))
        if self.n_encoded:
            parts.extend(self._encoded(batch))
        if self.n_multi:
            ids = batch.mv + self.multi_offsets.view(1, -1, 1)
            parts.append(self._pool(self._lookup(self.table, ids), batch.mv_len))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def flat(self, batch: FieldBatch) -> torch.Tensor:
        """Concatenated field embeddings `[batch, sum of dims]` (works for mixed dimensions)."""
        if self.equal_dims:
            return self.forward(batch).flatten(1)
        vecs: list[torch.Tensor] = []
        k = 0
        for j in range(self.n_cat):
            vecs.append(self._lookup(self.tables[k], batch.cat[:, j]))
            k += 1
        for j, col in enumerate(self.bucket_cols):
            vecs.append(self._lookup(self.tables[k + j], batch.num_bucket[:, col]))
        k += self.n_bucket
        encoded = self._encoded(batch)  # per group; fields of one kind may sit in several size groups
        vecs.extend(encoded[g][:, j] for g, j in self._encoded_slots)
        for j in range(self.n_multi):
            e = self._lookup(self.tables[k + j], batch.mv[:, j : j + 1])
            vecs.append(self._pool(e, batch.mv_len[:, j : j + 1]).squeeze(1))
        return torch.cat(vecs, dim=1)

    def tables_weights(self) -> list[torch.Tensor]:
        """The id tables' weights (what embedding L2 and sparse optimisers act on)."""
        return [self.table.weight] if self.equal_dims else [t.weight for t in self.tables]
