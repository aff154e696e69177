"""CSV/TSV (with or without header) and Parquet readers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

from recnas.data.readers.common import ReadReport, check_parquet_types, head_lines, short_list, validate_chunk
from recnas.data.schema import Schema
from recnas.errors import DataError, SchemaError


def wanted_columns(schema: Schema) -> list[str]:
    """Columns a reader must deliver: the label, then every field."""
    return [schema.label, *(f.name for f in schema.fields)]


def check_columns(path: Path, have: list[str], schema: Schema, report: ReadReport | None = None,
                  require_label: bool = True) -> None:
    """Fail when the schema names a column the file does not have (the label may be absent if not required)."""
    label_absent_ok = not require_label and schema.label not in have
    if label_absent_ok and report is not None:
        report.labeled = False
    missing = [c for c in wanted_columns(schema) if c not in have and not (label_absent_ok and c == schema.label)]
    if missing:
        raise SchemaError(
            f"{path}: the schema names column(s) {short_list(missing)} that the file does not have "
            f"(it has {short_list(have)}); fix schema.yaml or the file"
        )


def open_csv(
    path: Path, schema: Schema, report: ReadReport, on_bad_row: str, chunk_rows: int,
    column_names: list[str] | None = None, require_label: bool = True, only: list[str] | None = None,
) -> tuple[pv.CSVStreamingReader, list[str]]:
    """Open a delimited file as a stream of string columns (`only`: just these); returns the reader and columns."""
    fmt = schema.format
    if column_names is None:
        column_names = read_header(path, fmt.delimiter) if fmt.header else list(fmt_columns(schema))
    report.header_lines = 1 if fmt.header else 0
    check_columns(path, column_names, schema, report, require_label)

    def on_invalid(row: pv.InvalidRow) -> str:
        # An exception cannot cross pyarrow's callback: remember the first bad row and let
        # `raise_pending` raise it before the chunk holding it is used.
        if on_bad_row == "skip":
            report.skip(row.number)
        elif report.pending_error is None:
            report.pending_error = (
                f"{path} line {row.number}: expected {row.expected_columns} fields, found "
                f"{row.actual_columns} ({row.text[:80]!r}); fix the row or pass --on-bad-row skip"
            )
        return "skip"

    wanted = set(only if only is not None else wanted_columns(schema))
    reader = pv.open_csv(
        str(path),
        read_options=pv.ReadOptions(
            column_names=column_names,
            skip_rows=1 if fmt.header else 0,
            use_threads=False,
            block_size=max(1 << 20, chunk_rows * 100),
        ),
        parse_options=pv.ParseOptions(delimiter=fmt.delimiter, invalid_row_handler=on_invalid),
        convert_options=pv.ConvertOptions(
            include_columns=[c for c in column_names if c in wanted],
            column_types={c: pa.string() for c in column_names},
            strings_can_be_null=False,
            null_values=[""],
        ),
    )
    return reader, column_names


def open_parquet(path: Path) -> pq.ParquetFile:
    """A Parquet file opened for reading; one that is not Parquet is a DataError naming it."""
    try:  # no pre-buffering: with it, iter_batches keeps every buffered range to the end of the file (the pool
        # grew by about 60 MiB per million Criteo-shaped rows, 2.2 GiB over a 40M-row train file), without it flat
        return pq.ParquetFile(str(path), pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path}: not a readable Parquet file ({e})") from e


MAX_LABEL_VALUES = 100


def label_value_counts(path: Path, schema: Schema) -> dict[str, int]:
    """Rows per distinct label text in a CSV/TSV or Parquet file (trimmed; empty cells left out).

    Used to find a text label's negative values when only the positive ones are named; more than
    `MAX_LABEL_VALUES` distinct values means the column is not a label, which is an error.
    """
    report = ReadReport(path)
    counts: dict[str, int] = {}

    def add(col: pa.Array) -> None:
        text = pc.utf8_trim_whitespace(col.cast(pa.string()))
        for item in pc.value_counts(text).to_pylist():
            if item["values"]:
                counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
        if len(counts) > MAX_LABEL_VALUES:
            raise DataError(f"{path}: label {schema.label!r} holds more than {MAX_LABEL_VALUES} distinct values; "
                            "is it the label column? Name it with --label (or data.label in the config)")

    if schema.format.kind == "parquet":
        pf = open_parquet(path)
        check_columns(path, pf.schema_arrow.names, schema)
        for batch in pf.iter_batches(batch_size=1 << 16, columns=[schema.label]):
            add(batch.column(0))
        return counts
    reader, _ = open_csv(path, schema, report, "skip", 1 << 16, only=[schema.label])
    try:
        for batch in reader:
            add(batch.column(0))
    except pa.ArrowInvalid as e:
        raise DataError(f"{path}: cannot be parsed as delimited text ({e}); check the delimiter") from e
    finally:
        reader.close()
    return counts


def fmt_columns(schema: Schema) -> list[str]:
    """Column order of a headerless file: as declared, else the label then the fields."""
    if schema.format.columns:
        return list(schema.format.columns)
    return [schema.label, *(f.name for f in schema.fields)]


def read_header(path: Path, delimiter: str) -> list[str]:
    """Column names from the first line of a delimited file."""
    lines = head_lines(path, 1)
    first = lines[0] if lines else ""
    if not first.strip():
        raise DataError(f"{path} line 1: the header line is empty; the file needs a header row")
    names = [c.strip().strip('"') for c in first.split(delimiter)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{path} line 1: the header names column(s) {short_list(dup)} more than once; rename them")
    return names


def with_placeholder_label(table: pa.Table, schema: Schema, report: ReadReport) -> pa.Table:
    """Add a label column of zeros when the file has none (`report.labeled` is False)."""
    if report.labeled:
        return table
    return table.append_column(schema.label, pa.array([0.0] * table.num_rows, pa.float64()))


def read(
    path: Path, schema: Schema, report: ReadReport, on_bad_row: str, chunk_rows: int, require_label: bool = True
) -> Iterator[pa.Table]:
    """Yield validated chunks of a CSV/TSV or Parquet file."""
    if schema.format.kind == "parquet":
        yield from read_parquet(path, schema, report, chunk_rows, require_label)
        return
    reader, _ = open_csv(path, schema, report, on_bad_row, chunk_rows, require_label=require_label)
    try:
        yield from _validated(reader, path, schema, report)
    finally:
        reader.close()  # stop pyarrow's reader thread now, not at interpreter exit


def _validated(reader: pv.CSVStreamingReader, path: Path, schema: Schema, report: ReadReport) -> Iterator[pa.Table]:
    try:
        for batch in reader:
            report.raise_pending()
            if batch.num_rows == 0:
                continue
            table = with_placeholder_label(pa.Table.from_batches([batch]), schema, report)
            table = validate_chunk(table, schema, report, report.rows)
            report.rows += table.num_rows
            yield table
        report.raise_pending()
    except pa.ArrowInvalid as e:
        report.raise_pending()
        raise DataError(f"{path}: cannot be parsed as delimited text ({e}); check the delimiter") from e


def read_parquet(
    path: Path, schema: Schema, report: ReadReport, chunk_rows: int, require_label: bool = True
) -> Iterator[pa.Table]:
    """Yield validated chunks of a Parquet file (row numbers are 1-based data rows)."""
    report.line_based = False
    pf = open_parquet(path)
    check_columns(path, pf.schema_arrow.names, schema, report, require_label)
    columns = [c for c in wanted_columns(schema) if report.labeled or c != schema.label]
    check_parquet_types(path, pf.schema_arrow, columns, {f.name for f in schema.multi_categorical})
    for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns):
        table = with_placeholder_label(pa.Table.from_batches([batch]), schema, report)
        table = validate_chunk(table, schema, report, report.rows)
        report.rows += table.num_rows
        yield table
