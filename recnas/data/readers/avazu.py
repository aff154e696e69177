"""Raw Avazu reader: CSV `id, click, hour, C1, banner_pos, ...`.

`id` is dropped; `hour` (YYMMDDHH) becomes `hour` (hour of day, 00-23) and `weekday`
(0 = Monday); every other column is categorical.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from recnas.data.readers.common import ReadReport, shown, validate_chunk
from recnas.data.readers.delimited import open_csv, read_header
from recnas.data.schema import FieldSpec, FieldType, Schema, SourceFormat
from recnas.errors import DataError, SchemaError

HOUR_RE = r"^\d{8}$"


def avazu_schema(path: Path, name: str = "avazu") -> Schema:
    """Schema of a raw Avazu file, from its header."""
    header = read_header(path, ",")
    if "click" not in header or "hour" not in header:
        raise DataError(f"{path}: not an Avazu file (needs `click` and `hour` columns); header is {header}")
    fields = [FieldSpec("hour", FieldType.CATEGORICAL), FieldSpec("weekday", FieldType.CATEGORICAL)]
    fields += [FieldSpec(c, FieldType.CATEGORICAL) for c in header if c not in ("id", "click", "hour")]
    return Schema(tuple(fields), label="click", format=SourceFormat(kind="avazu"), name=name)


def read(
    path: Path, schema: Schema, report: ReadReport, on_bad_row: str, chunk_rows: int
) -> Iterator[pa.Table]:
    """Yield validated chunks of a raw Avazu file with the hour column expanded."""
    header = read_header(path, ",")
    missing = [f.name for f in schema.fields if f.name not in header and f.name not in ("hour", "weekday")]
    if "hour" not in header or "click" not in header or missing:
        raise SchemaError(
            f"{path}: the schema names column(s) {missing or ['click', 'hour']} that the file does not have "
            f"(it has {header}); fix the schema or the file"
        )
    raw_fields = tuple(FieldSpec(c, FieldType.CATEGORICAL) for c in header if c not in ("id", "click"))
    raw_schema = Schema(raw_fields, label="click", format=SourceFormat(kind="csv"))
    reader, _ = open_csv(path, raw_schema, report, on_bad_row, chunk_rows, column_names=header)
    try:
        yield from _expanded(reader, path, schema, report)
    finally:
        reader.close()


def _expanded(reader: Any, path: Path, schema: Schema, report: ReadReport) -> Iterator[pa.Table]:
    for batch in reader:
        report.raise_pending()
        table = pa.Table.from_batches([batch])
        hour = table["hour"].combine_chunks()
        ok = pc.match_substring_regex(hour, HOUR_RE)
        bad = pc.invert(pc.fill_null(ok, False)).to_numpy(zero_copy_only=False).nonzero()[0]
        if len(bad):
            raise DataError(
                f"{report.where(report.rows + bad[0])}: hour {shown(hour[bad[0]].as_py())} is not YYMMDDHH"
            )
        try:
            day = pc.strptime(pc.utf8_slice_codeunits(hour, 0, 6), format="%y%m%d", unit="s")
        except pa.ArrowInvalid as e:
            raise DataError(f"{path} near line {report.line_of(report.rows)}: an `hour` value is not a "
                            f"valid YYMMDDHH date ({e})") from e
        cols = {"click": table["click"], "hour": pc.utf8_slice_codeunits(hour, 6, 8),
                "weekday": pc.cast(pc.day_of_week(day), pa.string())}
        for f in schema.fields:
            if f.name not in cols:
                cols[f.name] = table[f.name]
        out = pa.table({k: cols[k] for k in [schema.label, *(f.name for f in schema.fields)]})
        out = validate_chunk(out, schema, report, report.rows)
        report.rows += out.num_rows
        yield out
    report.raise_pending()
