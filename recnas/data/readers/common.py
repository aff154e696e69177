"""Shared reader pieces: file checks, row bookkeeping, numeric parsing and chunk validation."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from recnas.data.schema import FieldType, Schema
from recnas.errors import DataError

FLOAT32_MAX = float(np.finfo(np.float32).max)
NUMBER_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
SPECIAL_FLOAT_RE = r"(?i)^\s*[-+]?(nan|inf|infinity)\s*$"
MAX_SKIPPED_KEPT = 20


def shown(value: object, width: int = 60) -> str:
    """A value as a message quotes it: its repr, cut to `width` characters (a runaway cell stays one short line)."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 4] + "...'"


def read_head(path: Path, max_bytes: int) -> bytes:
    """The first bytes of a file, decompressed as its extension says (.gz, .bz2); a file that is not is named."""
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            return stream.read(max_bytes)
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"{path}: cannot be read as its extension says ({str(e).splitlines()[0][:120]}); is it "
                        "really compressed? rename it or fix it") from None


def head_lines(path: Path, n: int = 5, max_bytes: int = 4 << 20) -> list[str]:
    """The first `n` text lines of a file (gzip/bz2 decompressed by extension, BOM dropped)."""
    data = read_head(path, max_bytes)
    lines = data.decode("utf-8-sig", errors="replace").splitlines()
    if len(data) == max_bytes and lines:
        lines = lines[:-1]  # the last line may be cut
    return lines[:n]


def check_file(path: Path) -> Path:
    """Fail with a clear message when `path` is missing, a folder, or empty."""
    if not path.exists():
        raise DataError(f"{path}: file not found; check the path (and the dataset folder layout)")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a data file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; it holds no header and no rows")
    return path


def check_text(path: Path, sample_bytes: int = 1 << 16) -> Path:
    """Fail with the cause when a text-format file is not UTF-8 text: UTF-16/32 (by BOM), binary (NUL bytes), other."""
    head = read_head(path, sample_bytes)
    boms = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16",
            b"\xfe\xff": "UTF-16"}
    for bom, name in boms.items():
        if head.startswith(bom):
            raise DataError(f"{path}: the file is {name} text; recnas reads UTF-8: save it as UTF-8 (e.g. "
                            f"`iconv -f {name} -t UTF-8`)")
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path}: holds binary data (a NUL byte at byte {nul}), not delimited text; is it the right "
                        "file, or a Parquet file without the .parquet extension?")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut by the sample's end
            raise DataError(f"{path}: is not UTF-8 text (byte {e.start} is {head[e.start:e.start + 1]!r}); "
                            "convert it to UTF-8") from None
    return path


def _scalar_ok(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
            or pa.types.is_boolean(t) or pa.types.is_null(t))


def is_token_list(t: pa.DataType) -> bool:
    """A Parquet list of numbers or text: a multi-valued field."""
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and _scalar_ok(t.value_type)


def check_parquet_types(path: Path, schema: pa.Schema, names: list[str], lists: set[str] | None = None) -> None:
    """Fail naming the column when a Parquet column holds what recnas cannot read.

    That is structs, bytes, times, and lists outside `lists` (the multi-valued fields; None: lists anywhere).
    """
    for name in names:
        if name not in schema.names:
            continue
        t = schema.field(name).type
        if _scalar_ok(t) or (is_token_list(t) and (lists is None or name in lists)):
            continue
        what = "a multi-valued field (multi_categorical)" if is_token_list(t) else "numbers and text"
        raise DataError(f"{path}: column {name!r} has Parquet type {t}; recnas reads it only as {what}: declare it "
                        "so in schema.yaml or cast it (a time to a number or text) before reading")


def short_list(names: list[str], keep: int = 12, width: int = 40) -> str:
    """A list of names for a message: at most `keep` of them, each cut to `width` characters."""
    shown = [n if len(n) <= width else n[:width] + "..." for n in names[:keep]]
    return str(shown) + (f" and {len(names) - keep} more" if len(names) > keep else "")


@dataclass
class ReadReport:
    """What a read saw: data rows kept, malformed rows skipped, and where they were.

    `header_lines` and the skipped line numbers let errors name the physical (1-based) line
    of a kept row.
    """

    path: Path
    rows: int = 0
    skipped: int = 0
    skipped_lines: list[int] = field(default_factory=list)
    header_lines: int = 0
    line_based: bool = True
    pending_error: str | None = None
    padded: int = 0  # Criteo rows whose stripped trailing empty fields were restored
    labeled: bool = True  # False when the file has no label column (placeholder labels of 0)
    _all_skipped: list[int] = field(default_factory=list, repr=False)

    def skip(self, line: int | None) -> None:
        """Record a skipped malformed row."""
        self.skipped += 1
        if line is not None:
            bisect.insort(self._all_skipped, line)
            if len(self.skipped_lines) < MAX_SKIPPED_KEPT:
                self.skipped_lines.append(line)

    def raise_pending(self) -> None:
        """Raise the malformed-row error a parser callback recorded, if any."""
        if self.pending_error is not None:
            raise DataError(self.pending_error)

    def line_of(self, index: int) -> int:
        """1-based physical line (or row, for Parquet) of the kept data row `index` (0-based)."""
        line = index + self.header_lines + 1
        for s in self._all_skipped:
            if s <= line:
                line += 1
            else:
                break
        return line

    def where(self, index: int) -> str:
        """`path line N` (or `row N`) for messages."""
        unit = "line" if self.line_based else "row"
        return f"{self.path} {unit} {self.line_of(index)}"


def first_true(mask: pa.Array | np.ndarray) -> int | None:
    """Index of the first true value, or None."""
    arr = np.asarray(mask.to_numpy(zero_copy_only=False) if hasattr(mask, "to_numpy") else mask)
    hits = np.flatnonzero(arr)
    return int(hits[0]) if len(hits) else None


def to_float(
    col: pa.Array | pa.ChunkedArray, name: str, report: ReadReport, offset: int, is_label: bool = False
) -> pa.Array:
    """Parse a text column to float64 (empty = null), naming the row of a non-numeric value."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_boolean(col.type):
        return col.cast(pa.float64())
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise DataError(f"{report.path}: field {name!r} has type {col.type}, expected numbers")
    col = col.cast(pa.string())
    empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0)
    col = pc.if_else(empty, pa.scalar(None, pa.string()), col)
    ok = pc.or_(pc.match_substring_regex(col, NUMBER_RE), pc.match_substring_regex(col, SPECIAL_FLOAT_RE))
    bad = first_true(pc.invert(pc.fill_null(ok, True)))
    if bad is not None and is_label:
        raise DataError(
            f"{report.where(offset + bad)}: label {name!r} is {shown(col[bad].as_py())}, expected 0 or 1; "
            "for a text label name its positive value: --positive VALUE (data.positive, or schema.yaml's `positive:`)"
        )
    if bad is not None:
        raise DataError(
            f"{report.where(offset + bad)}: field {name!r} expects a number but holds "
            f"{shown(col[bad].as_py())}; fix the value, leave it empty if missing, or declare the "
            "field categorical in schema.yaml"
        )
    return pc.cast(pc.utf8_trim_whitespace(col), pa.float64())


def validate_chunk(table: pa.Table, schema: Schema, report: ReadReport, offset: int) -> pa.Table:
    """Parse label and numerical columns and reject NaN/inf and labels outside the allowed set.

    Returns the table with the label as float64 in {0, 1} and numerical fields as float64.
    """
    cols = {}
    for name in table.column_names:  # pyarrow lets a quote run over line ends: that fuses rows, so refuse it
        col = table[name]
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            bad = first_true(pc.fill_null(pc.match_substring_regex(col, "[\r\n]"), False))
            if bad is not None:
                raise DataError(
                    f"{report.where(offset + bad)}: column {name!r} holds a quoted value that runs over the end of "
                    "the line (an unclosed quote?), which would fuse rows; close the quote (values spanning lines "
                    "are not read)")
    for f in schema.fields:
        col = table[f.name]
        if f.type is FieldType.NUMERICAL:
            col = to_float(col, f.name, report, offset)
            bad = first_true(pc.fill_null(pc.or_(pc.is_nan(col), pc.is_inf(col)), False))
            if bad is not None:
                raise DataError(
                    f"{report.where(offset + bad)}: field {f.name!r} is {col[bad].as_py()}; "
                    "NaN and infinity are not allowed, leave the cell empty for a missing value"
                )
            bad = first_true(pc.fill_null(pc.greater(pc.abs(col), FLOAT32_MAX), False))
            if bad is not None:
                raise DataError(
                    f"{report.where(offset + bad)}: field {f.name!r} is {col[bad].as_py():g}, beyond the float32 "
                    "range the model computes in (about 3.4e38); rescale the field (e.g. take its log) or fix the "
                    "value")
        elif f.type is FieldType.CATEGORICAL:
            col = col.cast(pa.string()) if not pa.types.is_string(col.type) else col
        cols[f.name] = col
    if not report.labeled:  # the placeholder label of a file without one
        label = table[schema.label]
    elif schema.label_positive:
        label = text_label(table[schema.label], schema, report, offset)
    else:
        label = numeric_label(table[schema.label], schema, report, offset)
    out = {schema.label: label, **cols}
    return pa.table(out)


def numeric_label(col: pa.Array, schema: Schema, report: ReadReport, offset: int) -> pa.Array:
    """A numeric label column as 0/1 floats; an empty cell or a value other than the two is an error naming the row."""
    label = to_float(col, schema.label, report, offset, is_label=True)
    missing = first_true(pc.is_null(label))
    if missing is not None:
        raise DataError(
            f"{report.where(offset + missing)}: label {schema.label!r} is empty; every row needs a label"
        )
    lo, hi = schema.label_values
    ok = pc.or_(pc.equal(label, lo), pc.equal(label, hi))
    bad = first_true(pc.invert(ok))
    if bad is not None:
        raw = col[bad].as_py()
        raise DataError(
            f"{report.where(offset + bad)}: label {schema.label!r} is {shown(raw)}, expected "
            f"{lo:g} or {hi:g}; binarise the label first (e.g. rating >= 4 -> 1), or name the positive value(s): "
            "`positive: [...]` on the label in schema.yaml, or --positive"
        )
    return pc.if_else(pc.equal(label, hi), 1.0, 0.0)


def text_label(col: pa.Array, schema: Schema, report: ReadReport, offset: int) -> pa.Array:
    """A text label as 0/1 floats by its declared positive and negative values (cell text, trimmed).

    A value that is neither is an error naming the row (a typo such as '>50K.' must not become a negative).
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    text = pc.utf8_trim_whitespace(col.cast(pa.string()))
    missing = first_true(pc.or_(pc.is_null(text), pc.equal(pc.utf8_length(pc.fill_null(text, "")), 0)))
    if missing is not None:
        raise DataError(f"{report.where(offset + missing)}: label {schema.label!r} is empty; every row needs a label")
    positive = pc.is_in(text, value_set=pa.array(list(schema.label_positive), pa.string()))
    known = pc.or_(positive, pc.is_in(text, value_set=pa.array(list(schema.label_negative), pa.string())))
    bad = first_true(pc.invert(known))
    if bad is not None:
        raise DataError(
            f"{report.where(offset + bad)}: label {schema.label!r} is {shown(text[bad].as_py())}, neither a positive "
            f"value {short_list(list(schema.label_positive))} nor a negative one "
            f"{short_list(list(schema.label_negative))}; fix the row, or list the value in the label's `values` "
            "(and `positive` if it means a click) in schema.yaml")
    return pc.if_else(positive, 1.0, 0.0)


def read_lines(path: Path, chunk_rows: int) -> Iterator[pa.Array]:
    """Yield the text lines of `path` as string arrays, chunk by chunk (empty lines kept)."""
    block = max(1 << 20, chunk_rows * 64)
    reader = pv.open_csv(
        str(path),
        read_options=pv.ReadOptions(
            column_names=["line"], use_threads=False, block_size=block
        ),
        parse_options=pv.ParseOptions(
            delimiter="\x1f", quote_char=False, escape_char=False, ignore_empty_lines=False
        ),
        convert_options=pv.ConvertOptions(
            column_types={"line": pa.string()}, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )
    try:
        for batch in reader:
            yield batch.column(0)
    finally:
        reader.close()


def column_from_lists(lists: pa.ListArray, j: int) -> pa.Array:
    """The `j`-th element of every (non-null) list, null where a list is shorter: a vectorised padding."""
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    offsets = lists.offsets.to_numpy()[:-1]
    idx = offsets + j
    mask = lengths <= j
    return pc.take(lists.values, pa.array(np.where(mask, 0, idx), mask=mask))
