"""Field embeddings: every field of a fitted schema turned into a vector per row.

Categorical ids, bucketised numerical ids and multi-valued ids share one concatenated table with
per-field row offsets (one lookup for all fields). Numerical fields without buckets use the
scalar x vector encoder: e = z(x) * v_f, plus a learned vector for missing values.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.data.schema import FieldSpec, Schema
from recnas.errors import SchemaError

FieldGroups = tuple[list[FieldSpec], list[FieldSpec], list[FieldSpec], list[FieldSpec]]


def field_order(schema: Schema, numerical: str = "auto") -> FieldGroups:
    """(categorical, bucketised numerical, scalar numerical, multi-valued) fields, in output order."""
    if numerical not in ("auto", "scalar", "bucket"):
        raise SchemaError(f"numerical encoder must be auto, scalar or bucket, got {numerical!r}")
    bucket = [f for f in schema.numerical if numerical != "scalar" and f.buckets != "none"]
    scalar = [f for f in schema.numerical if f not in bucket]
    return schema.categorical, bucket, scalar, schema.multi_categorical


class FieldEmbedding(nn.Module):
    """Embeds every field of a fitted schema: `[batch, fields, dim]` (or flat `[batch, sum dims]`).

    Args:
        schema: a fitted schema (vocabularies give table sizes).
        dim: one dimension for all fields, or a mapping field -> dimension.
        numerical: `auto`/`bucket` (look up the bucket id of fields that declare buckets, scalar for
            the others) or `scalar` (z-score x learned vector for every numerical field).
        pooling: `mean` or `sum` over the tokens of multi-valued fields.
        sparse: sparse gradients for the id table (pair with SparseAdam/Adagrad).
        init_std: std of the normal initialisation of all embedding rows.
    """

    def __init__(
        self, schema: Schema, dim: int | Mapping[str, int], numerical: str = "auto", pooling: str = "mean",
        sparse: bool = False, init_std: float = 1e-4,
    ) -> None:
        super().__init__()
        if not schema.fitted:
            raise SchemaError("FieldEmbedding needs a fitted schema (run FeatureProcessor.fit or prepare first)")
        if pooling not in ("mean", "sum"):
            raise SchemaError(f"pooling must be mean or sum, got {pooling!r}")
        cat, bucket, scalar, multi = field_order(schema, numerical)
        self.field_names = [f.name for f in (*cat, *bucket, *scalar, *multi)]
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
        self.n_cat, self.n_bucket, self.n_scalar, self.n_multi = len(cat), len(bucket), len(scalar), len(multi)
        self.bucket_cols = [schema.bucketized.index(f) for f in bucket]
        self.scalar_cols = [schema.numerical.index(f) for f in scalar]
        id_fields = [*cat, *bucket, *multi]
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
        scalar_dims = [dims[f.name] for f in scalar]
        self.scalar_vectors = nn.ParameterList(nn.Parameter(torch.randn(d) * init_std) for d in scalar_dims)
        self.scalar_missing = nn.ParameterList(nn.Parameter(torch.zeros(d)) for d in scalar_dims)
        means = [f.stats.mean for f in scalar]  # type: ignore[union-attr]
        stds = [f.stats.std if f.stats.std > 0 else 1.0 for f in scalar]  # type: ignore[union-attr]
        self.track_rows = False  # record looked-up rows for the lazy L2 of the sparse path
        self._touched: list[tuple[nn.Embedding, torch.Tensor]] = []
        self.register_buffer("scalar_mean", torch.tensor(means, dtype=torch.float32), persistent=False)
        self.register_buffer("scalar_std", torch.tensor(stds, dtype=torch.float32), persistent=False)

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
        """Embedding parameters (EP): every table row plus the scalar-field vectors."""
        return sum(p.numel() for p in self.parameters())

    def _scalar(self, batch: FieldBatch) -> list[torch.Tensor]:
        x = batch.num[:, self.scalar_cols] if self.n_scalar else batch.num[:, :0]
        miss = torch.isnan(x)
        z = torch.where(miss, torch.zeros_like(x), (x - self.scalar_mean) / self.scalar_std)
        out = []
        for j in range(self.n_scalar):
            m = miss[:, j : j + 1].to(z.dtype)
            out.append(z[:, j : j + 1] * self.scalar_vectors[j] + m * self.scalar_missing[j])
        return out

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
        if self.n_scalar:
            parts.append(torch.stack(self._scalar(batch), dim=1))
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
        vecs.extend(self._scalar(batch))
        for j in range(self.n_multi):
            e = self._lookup(self.tables[k + j], batch.mv[:, j : j + 1])
            vecs.append(self._pool(e, batch.mv_len[:, j : j + 1]).squeeze(1))
        return torch.cat(vecs, dim=1)

    def tables_weights(self) -> list[torch.Tensor]:
        """The id tables' weights (what embedding L2 and sparse optimisers act on)."""
        return [self.table.weight] if self.equal_dims else [t.weight for t in self.tables]
