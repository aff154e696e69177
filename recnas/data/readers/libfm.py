"""libFM/libSVM reader: `label idx:val idx:val ...` with label -1/0/1.

The field of each index is given by its position (one index per field, in field order: the NFM
Frappe files), by per-field index ranges, or all indices form one multi-valued field. A
categorical field's token is the index; a numerical field (position or ranges mode) takes the value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recnas.data.readers.common import ReadReport, column_from_lists, read_lines, shown, validate_chunk
from recnas.data.schema import FieldType, Schema
from recnas.errors import DataError, SchemaError

INT_RE = r"^\d+$"
NUM_RE = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"


@dataclass
class ParsedLines:
    """Tokens of a chunk of libFM lines: labels, feature counts, and per token its row, index and value."""

    labels: pa.Array
    n_feat: np.ndarray
    parents: np.ndarray
    idx: np.ndarray
    val: np.ndarray


def parse_lines(lines: pa.Array, path: Path, line_numbers: np.ndarray) -> ParsedLines:
    """Split non-blank lines into labels and `index:value` tokens, naming the line of a bad token."""
    lists = pc.utf8_split_whitespace(lines)
    n_tok = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    offsets = lists.offsets.to_numpy()
    labels = pc.take(lists.values, pa.array(offsets[:-1]))
    feats = pc.list_slice(lists, 1)
    flat = pc.list_flatten(feats)
    parents = pc.list_parent_indices(feats).to_numpy()
    parts = pc.split_pattern(flat, ":", max_splits=1)
    n_parts = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    idx_txt = pc.list_element(parts, 0)
    val_txt = column_from_lists(parts, 1)  # null where a token has no colon
    ok = n_parts == 2
    ok &= pc.match_substring_regex(idx_txt, INT_RE).to_numpy(zero_copy_only=False)
    ok &= pc.fill_null(pc.match_substring_regex(val_txt, NUM_RE), False).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~ok)
    if len(bad):
        raise DataError(
            f"{path} line {line_numbers[parents[bad[0]]]}: token {shown(flat[bad[0]].as_py())} is not `index:value` "
            "with an integer index and a numeric value; libFM rows are `label idx:val idx:val ...`"
        )
    idx = pc.cast(idx_txt, pa.int64()).to_numpy()
    val = pc.cast(val_txt, pa.float64()).to_numpy()
    return ParsedLines(labels, n_tok - 1, parents, idx, val)


def reject_or_skip(rows: np.ndarray, line_numbers: np.ndarray, on_bad_row: str, report: ReadReport,
                   message: str) -> None:
    """Raise for the first bad row (`error`) or record every bad row as skipped (`skip`)."""
    if len(rows) and on_bad_row == "error":
        r = rows[0]
        raise DataError(f"{report.path} line {line_numbers[r]}: {message}; "
                        "fix the row or pass --on-bad-row skip")
    for r in rows:
        report.skip(int(line_numbers[r]))


def read(
    path: Path, schema: Schema, report: ReadReport, on_bad_row: str, chunk_rows: int
) -> Iterator[pa.Table]:
    """Yield validated chunks of a libFM file."""
    fmt = schema.format
    fields = list(schema.fields)
    if fmt.libfm_fields == "ranges":
        check_ranges(path, schema)
    report.header_lines = 0
    line_no = 1
    for lines in read_lines(path, chunk_rows):
        n_lines = len(lines)
        blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(lines)), 0).to_numpy(zero_copy_only=False)
        reject_or_skip(np.flatnonzero(blank), line_no + np.arange(n_lines), on_bad_row, report, "empty line")
        line_numbers = line_no + np.flatnonzero(~blank)
        lines = lines.filter(pa.array(~blank))
        n = len(lines)
        p = parse_lines(lines, path, line_numbers)
        keep = np.ones(n, dtype=bool)
        cols: dict[str, pa.Array] = {}
        if fmt.libfm_fields == "position":
            wrong = np.flatnonzero(p.n_feat != len(fields))
            if len(wrong) and on_bad_row == "error":
                raise DataError(
                    f"{path} line {line_numbers[wrong[0]]}: expected {len(fields)} features (one per field), "
                    f"found {p.n_feat[wrong[0]]}; fix the row or pass --on-bad-row skip"
                )
            reject_or_skip(wrong, line_numbers, on_bad_row, report, "")
            keep[wrong] = False
            tok_keep = keep[p.parents]
            k_idx = p.idx[tok_keep].reshape(-1, len(fields))
            k_val = p.val[tok_keep].reshape(-1, len(fields))
            for j, f in enumerate(fields):
                num = f.type is FieldType.NUMERICAL
                cols[f.name] = pa.array(k_val[:, j]) if num else pa.array(k_idx[:, j]).cast(pa.string())
        elif fmt.libfm_fields == "ranges":
            cols = by_ranges(path, schema, p, n, line_numbers)
        else:  # single
            if len(fields) != 1 or fields[0].type is not FieldType.MULTI_CATEGORICAL:
                raise SchemaError(f"{path}: libfm single-field mode needs exactly one multi_categorical field")
            nonbinary = np.flatnonzero(p.val != 1.0)
            if len(nonbinary):
                raise DataError(
                    f"{path} line {line_numbers[p.parents[nonbinary[0]]]}: value {p.val[nonbinary[0]]:g} is not 1; "
                    "single-field mode reads binary features only"
                )
            offsets = np.zeros(n + 1, dtype=np.int32)
            np.cumsum(p.n_feat, out=offsets[1:])
            cols[fields[0].name] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(p.idx).cast(pa.string()))
        label = p.labels.filter(pa.array(keep)) if not keep.all() else p.labels
        table = pa.table({schema.label: label, **cols})
        table = validate_libfm(table, schema, report, report.rows)
        report.rows += table.num_rows
        line_no += n_lines
        yield table


def validate_libfm(table: pa.Table, schema: Schema, report: ReadReport, start: int) -> pa.Table:
    """Map label -1 to 0, then validate as any other chunk (labels must be -1, 0 or 1)."""
    label = pc.cast(table[schema.label], pa.string())
    label = pc.if_else(pc.match_substring_regex(label, r"^-1(\.0*)?$"), "0", label)
    table = table.set_column(0, schema.label, label)
    return validate_chunk(table, schema, report, start)


def check_ranges(path: Path, schema: Schema) -> None:
    """Ranges must name exactly the schema's fields and must not overlap."""
    ranges = schema.format.libfm_ranges
    names = [r[0] for r in ranges]
    if sorted(names) != sorted(f.name for f in schema.fields):
        raise SchemaError(f"{path}: libfm_ranges name {names}, but the fields are {[f.name for f in schema.fields]}")
    spans = sorted((lo, hi, name) for name, lo, hi in ranges)
    for (lo, hi, name), (lo2, _hi2, name2) in zip(spans, spans[1:], strict=False):
        if lo > hi:
            raise SchemaError(f"libfm_ranges: {name!r} has lo {lo} > hi {hi}")
        if lo2 <= hi:
            raise SchemaError(f"libfm_ranges: {name!r} [{lo}, {hi}] overlaps {name2!r} starting at {lo2}")


def by_ranges(path: Path, schema: Schema, p: ParsedLines, n: int, line_numbers: np.ndarray) -> dict[str, pa.Array]:
    """Columns for `ranges` mode: each index belongs to the field whose [lo, hi] holds it."""
    ranges = schema.format.libfm_ranges
    order = np.argsort([r[1] for r in ranges])
    los = np.array([ranges[i][1] for i in order])
    his = np.array([ranges[i][2] for i in order])
    pos = np.searchsorted(los, p.idx, side="right") - 1
    outside = (pos < 0) | (p.idx > his[np.clip(pos, 0, None)])
    if outside.any():
        t = np.flatnonzero(outside)[0]
        raise DataError(f"{path} line {line_numbers[p.parents[t]]}: index {p.idx[t]} lies in no field's range")
    cols = {}
    for k, i in enumerate(order):
        name = ranges[i][0]
        sel = pos == k
        rows = p.parents[sel]
        if len(np.unique(rows)) != len(rows):
            dup = np.sort(rows)[np.flatnonzero(np.diff(np.sort(rows)) == 0)[0]]
            raise DataError(f"{path} line {line_numbers[dup]}: field {name!r} has more than one index")
        spec = schema[name]
        src = p.val[sel] if spec.type is FieldType.NUMERICAL else p.idx[sel]
        full = np.zeros(n, dtype=src.dtype)
        mask = np.ones(n, dtype=bool)
        full[rows] = src
        mask[rows] = False
        arr = pa.array(full, mask=mask)
        cols[name] = arr if spec.type is FieldType.NUMERICAL else arr.cast(pa.string())
    return {f.name: cols[f.name] for f in schema.fields}
