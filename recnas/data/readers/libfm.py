"""libFM/libSVM reader: `label idx:val idx:val ...` with label -1/0/1.

The field of each index is given by its position (one index per field, in field order: the NFM
Frappe files), by per-field index ranges, or all indices form one multi-valued field. A
categorical field's token is the index; a numerical field (position or ranges mode) takes the value.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recnas.data.readers.common import ReadReport, read_lines, validate_chunk
from recnas.data.schema import FieldType, Schema
from recnas.errors import DataError, SchemaError

INT_RE = r"^\d+$"


def split_tokens(
    lines: pa.Array, path: Path, report: ReadReport, first_line: int
) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split lines into (labels, per-row token counts, row of each token, index, value)."""
    lists = pc.utf8_split_whitespace(lines)
    n_tok = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    empty = np.flatnonzero(n_tok == 0)
    if len(empty):
        raise DataError(f"{path} line {first_line + empty[0]}: empty line; remove it")
    offsets = lists.offsets.to_numpy()
    labels = pc.take(lists.values, pa.array(offsets[:-1]))
    flat = pc.list_flatten(pc.list_slice(lists, 1))
    parents = pc.list_parent_indices(pc.list_slice(lists, 1)).to_numpy()
    parts = pc.split_pattern(flat, ":", max_splits=1)
    n_parts = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    idx_txt = pc.list_element(parts, 0)
    ok = pc.match_substring_regex(idx_txt, INT_RE).to_numpy(zero_copy_only=False) & (n_parts == 2)
    bad = np.flatnonzero(~ok)
    if len(bad):
        row = parents[bad[0]]
        raise DataError(
            f"{path} line {first_line + row}: token {flat[bad[0]].as_py()!r} is not `index:value`; "
            "libFM rows are `label idx:val idx:val ...`"
        )
    idx = pc.cast(idx_txt, pa.int64()).to_numpy()
    val_txt = pc.list_element(parts, 1)
    try:
        val = pc.cast(val_txt, pa.float64()).to_numpy()
    except pa.ArrowInvalid as e:
        raise DataError(f"{path} near line {first_line}: a feature value is not a number ({e})") from e
    return labels, n_tok - 1, parents, idx, val


def read(
    path: Path, schema: Schema, report: ReadReport, on_bad_row: str, chunk_rows: int
) -> Iterator[pa.Table]:
    """Yield validated chunks of a libFM file."""
    fmt = schema.format
    fields = list(schema.fields)
    line_no = 1
    for lines in read_lines(path, report, chunk_rows):
        n = len(lines)
        labels, n_feat, parents, idx, val = split_tokens(lines, path, report, line_no)
        keep = np.ones(n, dtype=bool)
        cols: dict[str, pa.Array] = {}
        if fmt.libfm_fields == "position":
            wrong = np.flatnonzero(n_feat != len(fields))
            for r in wrong:
                if on_bad_row == "error":
                    raise DataError(
                        f"{path} line {line_no + r}: expected {len(fields)} features (one per field), "
                        f"found {n_feat[r]}; fix the row or pass --on-bad-row skip"
                    )
                report.skip(line_no + int(r), "feature count")
            keep[wrong] = False
            tok_keep = keep[parents]
            k_idx = idx[tok_keep].reshape(-1, len(fields))
            k_val = val[tok_keep].reshape(-1, len(fields))
            for j, f in enumerate(fields):
                cols[f.name] = (
                    pa.array(k_val[:, j]) if f.type is FieldType.NUMERICAL else pa.array(k_idx[:, j]).cast(pa.string())
                )
        elif fmt.libfm_fields == "ranges":
            cols = by_ranges(path, schema, parents, idx, val, n, line_no)
        else:  # single
            if len(fields) != 1 or fields[0].type is not FieldType.MULTI_CATEGORICAL:
                raise SchemaError(
                    f"{path}: libfm single-field mode needs exactly one multi_categorical field"
                )
            nonbinary = np.flatnonzero(val != 1.0)
            if len(nonbinary):
                raise DataError(
                    f"{path} line {line_no + parents[nonbinary[0]]}: value {val[nonbinary[0]]:g} is not 1; "
                    "single-field mode reads binary features only"
                )
            offsets = np.zeros(n + 1, dtype=np.int32)
            np.cumsum(n_feat, out=offsets[1:])
            cols[fields[0].name] = pa.ListArray.from_arrays(
                pa.array(offsets), pa.array(idx).cast(pa.string())
            )
        label = pa.array(labels).filter(pa.array(keep)) if not keep.all() else labels
        table = pa.table({schema.label: label, **cols})
        start = report.rows
        report.header_lines = 0
        table = validate_libfm(table, schema, report, start)
        report.rows += table.num_rows
        line_no += n
        yield table


def validate_libfm(table: pa.Table, schema: Schema, report: ReadReport, start: int) -> pa.Table:
    """Map label -1 to 0, then validate as any other chunk (labels must be -1, 0 or 1)."""
    label = pc.cast(table[schema.label], pa.string())
    label = pc.if_else(pc.match_substring_regex(label, r"^-1(\.0*)?$"), "0", label)
    table = table.set_column(0, schema.label, label)
    return validate_chunk(table, schema, report, start)


def by_ranges(
    path: Path, schema: Schema, parents: np.ndarray, idx: np.ndarray, val: np.ndarray, n: int, line_no: int
) -> dict[str, pa.Array]:
    """Columns for `ranges` mode: each index belongs to the field whose [lo, hi] holds it."""
    ranges = schema.format.libfm_ranges
    names = [r[0] for r in ranges]
    if sorted(names) != sorted(f.name for f in schema.fields):
        raise SchemaError(f"{path}: libfm_ranges name {names}, but the fields are {[f.name for f in schema.fields]}")
    order = np.argsort([r[1] for r in ranges])
    los = np.array([ranges[i][1] for i in order])
    his = np.array([ranges[i][2] for i in order])
    pos = np.searchsorted(los, idx, side="right") - 1
    outside = (pos < 0) | (idx > his[np.clip(pos, 0, None)])
    if outside.any():
        t = np.flatnonzero(outside)[0]
        raise DataError(f"{path} line {line_no + parents[t]}: index {idx[t]} lies in no field's range")
    cols = {}
    for k, i in enumerate(order):
        name = ranges[i][0]
        sel = pos == k
        rows = parents[sel]
        if len(np.unique(rows)) != len(rows):
            dup = rows[np.flatnonzero(np.diff(np.sort(rows)) == 0)[0]]
            raise DataError(f"{path} line {line_no + dup}: field {name!r} has more than one index")
        spec = schema[name]
        src = val[sel] if spec.type is FieldType.NUMERICAL else idx[sel]
        full = np.zeros(n, dtype=src.dtype)
        mask = np.ones(n, dtype=bool)
        full[rows] = src
        mask[rows] = False
        arr = pa.array(full, mask=mask)
        cols[name] = arr if spec.type is FieldType.NUMERICAL else arr.cast(pa.string())
    return {f.name: cols[f.name] for f in schema.fields}
