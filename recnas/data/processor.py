"""`FeatureProcessor`: fit vocabularies and statistics on train, then encode any split to arrays.

Both passes stream the file chunk by chunk, so memory is bounded by the chunk size and the number
of distinct tokens, not by the number of rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recnas.data.hashing import BucketCounter
from recnas.data.numeric import NumericAccumulator, bucket_keys
from recnas.data.readers import DEFAULT_CHUNK_ROWS, ReadReport, read_chunks
from recnas.data.schema import FieldSpec, FieldType, Schema
from recnas.data.vocab import MISSING_TOKEN, PAD_ID, Vocabulary
from recnas.errors import DataError, SchemaError

DEFAULT_MAX_LEN_CAP = 64
OUTLIER_SCALES = 1e6  # how far (in train standard deviations or ranges) a value may lie from the train values
ARRAY_DTYPES = {
    "cat": np.int64, "num": np.float32, "num_bucket": np.int64, "mv": np.int64, "mv_len": np.int64, "y": np.float32,
}


class CountAccumulator:
    """Token frequencies summed over chunks, compacted now and then to bound memory."""

    def __init__(self) -> None:
        self.parts: list[pa.Table] = []

    def update(self, values: pa.Array) -> None:
        """Count one chunk of tokens."""
        vc = pc.value_counts(values)
        self.parts.append(pa.table({"t": vc.field("values"), "c": vc.field("counts").cast(pa.int64())}))
        if len(self.parts) >= 16:
            self.parts = [self._merged()]

    def _merged(self) -> pa.Table:
        table = pa.concat_tables(self.parts)
        return table.group_by("t").aggregate([("c", "sum")]).rename_columns(["t", "c"])

    def vocabulary(self, min_count: int) -> Vocabulary:
        """The vocabulary of everything counted."""
        if not self.parts:
            return Vocabulary.from_counts(pa.array([], pa.string()), np.zeros(0, np.int64), min_count)
        t = self._merged()
        return Vocabulary.from_counts(t["t"].combine_chunks(), t["c"].to_numpy(), min_count)


def split_tokens(col: pa.Array | pa.ChunkedArray, sep: str) -> pa.ListArray:
    """Token lists of a multi-valued column (already lists, or text joined by `sep`); empties dropped."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_list(col.type):
        col = pc.split_pattern(pc.fill_null(col.cast(pa.string()), ""), sep)
    flat = pc.list_flatten(col).cast(pa.string())
    parents = pc.list_parent_indices(col)
    keep = pc.fill_null(pc.not_equal(flat, MISSING_TOKEN), False)
    flat = flat.filter(keep)
    parents = parents.filter(keep).to_numpy()
    counts = np.bincount(parents, minlength=len(col))
    offsets = np.zeros(len(col) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), flat)


@dataclass
class EncodeReport:
    """Rows encoded, unseen tokens mapped to OOV per field, list tokens cut by `max_len`."""

    rows: int = 0
    positives: int = 0
    oov: dict[str, int] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)
    skipped: int = 0

    def add(self, other: EncodeReport) -> None:
        """Merge the report of another chunk into this one."""
        self.rows += other.rows
        self.positives += other.positives
        for k, v in other.oov.items():
            self.oov[k] = self.oov.get(k, 0) + v
        for k, v in other.truncated.items():
            self.truncated[k] = self.truncated.get(k, 0) + v


def encode_table(schema: Schema, table: pa.Table) -> tuple[dict[str, np.ndarray], EncodeReport]:
    """Encode one validated chunk into the arrays of a `FieldBatch` (see ARRAY_DTYPES)."""
    n = table.num_rows
    rep = EncodeReport(rows=n)
    y = table[schema.label].to_numpy().astype(np.float32)
    rep.positives = int(y.sum())
    cats = schema.categorical
    cat = np.empty((n, len(cats)), dtype=np.int64)
    for j, f in enumerate(cats):
        cat[:, j], rep.oov[f.name] = f.vocab.lookup(table[f.name])  # type: ignore[union-attr]
    nums = schema.numerical
    num = np.empty((n, len(nums)), dtype=np.float32)
    raw: dict[str, np.ndarray] = {}
    for j, f in enumerate(nums):
        raw[f.name] = table[f.name].to_numpy().astype(np.float64)
        num[:, j] = raw[f.name]
    buck = schema.bucketized
    num_bucket = np.empty((n, len(buck)), dtype=np.int64)
    for j, f in enumerate(buck):
        keys = bucket_keys(f, raw[f.name], f.stats)  # type: ignore[arg-type]
        num_bucket[:, j], rep.oov[f.name] = f.vocab.lookup(keys)  # type: ignore[union-attr]
    mvs = schema.multi_categorical
    length = schema.max_len
    mv = np.full((n, len(mvs), length), PAD_ID, dtype=np.int64)
    mv_len = np.zeros((n, len(mvs)), dtype=np.int64)
    for j, f in enumerate(mvs):
        lists = split_tokens(table[f.name], f.separator)
        ids, rep.oov[f.name] = f.vocab.lookup(pc.list_flatten(lists))  # type: ignore[union-attr]
        rows = pc.list_parent_indices(lists).to_numpy()
        pos = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
        fits = pos < (f.max_len or length)
        rep.truncated[f.name] = int((~fits).sum())
        mv[rows[fits], j, pos[fits]] = ids[fits]
        mv_len[:, j] = np.minimum(np.bincount(rows, minlength=n), f.max_len or length)
    arrays = {"cat": cat, "num": num, "num_bucket": num_bucket, "mv": mv, "mv_len": mv_len, "y": y}
    return arrays, rep


class FeatureProcessor:
    """Fits a schema's vocabularies and statistics on train, then encodes splits chunk by chunk."""

    def __init__(
        self, schema: Schema, on_bad_row: str = "error", chunk_rows: int = DEFAULT_CHUNK_ROWS, seed: int = 0,
        require_label: bool = True,
    ) -> None:
        self.schema = schema
        self.require_label = require_label  # False: transform may read files without labels (fit never does)
        self.on_bad_row = on_bad_row
        self.chunk_rows = chunk_rows
        self.seed = seed
        self.fit_report: ReadReport | None = None
        self.notes: list[str] = []  # what fitting saw that the user should know (e.g. runaway list lengths)

    def _chunks(self, path: Path, report: ReadReport, require_label: bool = True) -> Iterator[pa.Table]:
        return read_chunks(path, self.schema, report, self.on_bad_row, self.chunk_rows, require_label)

    def fit(self, train_path: str | Path) -> Schema:
        """Fit on the train file; returns (and keeps) the fitted schema."""
        train_path = Path(train_path)
        fields = self.schema.fields
        counts: dict[str, CountAccumulator | BucketCounter] = {
            f.name: BucketCounter(f.hash_buckets) if f.hash_buckets else CountAccumulator()
            for f in fields if f.type.embedded or f.buckets == "log"}
        numeric = {f.name: NumericAccumulator(seed=self.seed + i) for i, f in enumerate(fields)
                   if f.type is FieldType.NUMERICAL}
        longest = {f.name: 0 for f in self.schema.multi_categorical}
        longest_at: dict[str, int] = {}
        report = ReadReport(train_path)
        for table in self._chunks(train_path, report):
            for f in fields:
                col = table[f.name]
                if f.type is FieldType.CATEGORICAL:
                    counts[f.name].update(pc.fill_null(col, MISSING_TOKEN))
                elif f.type is FieldType.MULTI_CATEGORICAL:
                    lists = split_tokens(col, f.separator)
                    cap = f.max_len or DEFAULT_MAX_LEN_CAP  # tokens past it are dropped, so they take no id either
                    counts[f.name].update(pc.list_flatten(pc.list_slice(lists, 0, cap)))
                    if len(lists):
                        lengths = pc.list_value_length(lists)
                        top = pc.max(lengths).as_py() or 0
                        if top > longest[f.name]:
                            longest[f.name] = top
                            if top > cap:
                                longest_at[f.name] = report.rows - table.num_rows + int(pc.index(lengths, top).as_py())
                else:
                    x = col.to_numpy().astype(np.float64)
                    numeric[f.name].update(x)
                    if f.buckets == "log":
                        counts[f.name].update(pc.fill_null(bucket_keys(f, x, None), MISSING_TOKEN))  # type: ignore[arg-type]
        fitted: list[FieldSpec] = []
        for f in fields:
            upd: dict = {}
            if f.type is FieldType.NUMERICAL:
                upd["stats"] = numeric[f.name].stats()
            if f.name in counts:
                upd["vocab"] = counts[f.name].vocabulary(f.min_count)
            if f.type is FieldType.MULTI_CATEGORICAL and f.max_len is None:
                upd["max_len"] = max(1, min(longest[f.name], DEFAULT_MAX_LEN_CAP))
            fitted.append(dataclasses.replace(f, **upd))
        quantile = [f for f in fitted if f.buckets == "quantile"]
        if quantile:
            qcounts = {f.name: CountAccumulator() for f in quantile}
            for table in self._chunks(train_path, ReadReport(train_path)):
                for f in quantile:
                    x = table[f.name].to_numpy().astype(np.float64)
                    qcounts[f.name].update(pc.fill_null(bucket_keys(f, x, f.stats), MISSING_TOKEN))  # type: ignore[arg-type]
            fitted = [dataclasses.replace(f, vocab=qcounts[f.name].vocabulary(f.min_count))
                      if f.name in qcounts else f for f in fitted]
        self.schema = self.schema.replace_fields(fitted)
        self.fit_report = report
        self.notes = [f"{report.where(row)}: field {name!r} lists {longest[name]:,} values, more than its max_len "
                      f"{self.schema[name].max_len}; values past it are dropped (and take no id); set max_len for "
                      f"{name!r} in schema.yaml to keep more" for name, row in longest_at.items()]
        return self.schema

    def transform_chunks(self, path: str | Path, report: ReadReport | None = None
                         ) -> Iterator[tuple[dict[str, np.ndarray], EncodeReport]]:
        """Encode `path` chunk by chunk with the fitted state."""
        if not self.schema.fitted:
            raise SchemaError("the processor is not fitted; call fit(train) first")
        path = Path(path)
        report = report or ReadReport(path)
        for table in self._chunks(path, report, self.require_label):
            self._check_range(table, report)
            yield encode_table(self.schema, table)

    def _check_range(self, table: pa.Table, report: ReadReport) -> None:
        """Refuse a numerical value a million train standard deviations (and ranges) from the train values.

        Such a value is a unit or parse error far more often than data, and it would make the model's scores
        overflow; it is named here, before any training.
        """
        offset = report.rows - table.num_rows
        for f in self.schema.numerical:
            st = f.stats
            if st is None or st.count == 0:
                continue
            scale = max(st.std, st.max - st.min, 1e-12)
            x = table[f.name].to_numpy(zero_copy_only=False).astype(np.float64)
            far = np.abs(x - st.mean) > OUTLIER_SCALES * scale
            if far.any():
                i = int(np.argmax(far))
                raise DataError(f"{report.where(offset + i)}: field {f.name!r} is {x[i]:g}, more than "
                                f"{OUTLIER_SCALES:g} times the train range ({st.min:g} to {st.max:g}) away from the "
                                "train values; a unit or parse error? fix or clip the value")

    def transform(self, path: str | Path) -> tuple[dict[str, np.ndarray], EncodeReport]:
        """Encode a whole file in memory (convenient for small data; `prepare` streams to disk)."""
        total = EncodeReport()
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ARRAY_DTYPES}
        read = ReadReport(Path(path))
        for arrays, rep in self.transform_chunks(path, read):
            total.add(rep)
            for k, v in arrays.items():
                parts[k].append(v)
        total.skipped = read.skipped
        return {k: np.concatenate(v) for k, v in parts.items()}, total

    def save(self, directory: str | Path) -> Path:
        """Save the fitted state (schema.json + vocab/*.arrow)."""
        return self.schema.save(directory)

    @classmethod
    def load(cls, directory: str | Path) -> FeatureProcessor:
        """Reload a processor saved by `save`."""
        return cls(Schema.load(directory))
