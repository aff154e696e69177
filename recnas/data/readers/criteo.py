"""Raw Criteo reader: tab-separated `label, I1..I13, C1..C26`, no header, empty = missing.

Rows whose trailing empty fields were stripped (fewer than 40 fields; 37 and 38 in the Kaggle head)
are padded with missing values and counted in `ReadReport.padded`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recnas.data.readers.common import ReadReport, column_from_lists, read_lines, validate_chunk
from recnas.data.schema import FieldSpec, FieldType, Schema, SourceFormat
from recnas.errors import SchemaError

N_NUM, N_CAT = 13, 26
N_COLS = 1 + N_NUM + N_CAT
NUM_NAMES = [f"I{i}" for i in range(1, N_NUM + 1)]
CAT_NAMES = [f"C{i}" for i in range(1, N_CAT + 1)]


def criteo_schema(name: str = "criteo", buckets: str = "log") -> Schema:
    """The fixed 39-field Criteo schema; numerical fields get the log-square buckets by default."""
    fields = [FieldSpec(n, FieldType.NUMERICAL, buckets=buckets) for n in NUM_NAMES]  # type: ignore[arg-type]
    fields += [FieldSpec(n, FieldType.CATEGORICAL) for n in CAT_NAMES]
    fmt = SourceFormat(kind="criteo", delimiter="\t", header=False)
    return Schema(tuple(fields), label="label", format=fmt, name=name)


def read(
    path: Path, schema: Schema, report: ReadReport, on_bad_row: str, chunk_rows: int
) -> Iterator[pa.Table]:
    """Yield validated chunks of a raw Criteo file."""
    from recnas.errors import DataError

    names = ["label", *NUM_NAMES, *CAT_NAMES]
    unknown = [f.name for f in schema.fields if f.name not in names]
    unknown += [schema.label] if schema.label != "label" else []
    if unknown:
        raise SchemaError(
            f"{path}: the raw Criteo layout has fixed column names (label, I1..I13, C1..C26); "
            f"{unknown} are not among them (do not rename its fields)"
        )
    line_no = 1
    for lines in read_lines(path, chunk_rows):
        n = len(lines)
        lists = pc.split_pattern(lines, "\t")
        lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero((lengths > N_COLS) | (lengths < 2))
        keep = np.ones(n, dtype=bool)
        for r in bad:
            if on_bad_row == "error":
                raise DataError(
                    f"{path} line {line_no + r}: expected up to {N_COLS} tab-separated fields, found "
                    f"{lengths[r]}; fix the row or pass --on-bad-row skip"
                )
            report.skip(line_no + int(r))
            keep[r] = False
        report.padded += int(((lengths < N_COLS) & keep).sum())
        cols = {}
        for j, name in enumerate(names):
            col = column_from_lists(lists, j)
            if not keep.all():
                col = col.filter(pa.array(keep))
            cols[name] = pc.fill_null(col, "")
        table = pa.table(cols).select([schema.label, *(f.name for f in schema.fields)])
        table = validate_chunk(table, schema, report, report.rows)
        report.rows += table.num_rows
        line_no += n
        yield table
