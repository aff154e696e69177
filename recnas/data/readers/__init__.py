"""Readers turn data files (CSV/TSV, Parquet, libFM, raw Criteo, raw Avazu) into Arrow chunks.

Every reader yields `pa.Table` chunks whose columns are the schema's label (float64) and fields
(strings for categorical and multi-valued, float64 for numerical), so memory stays bounded and the
encoder downstream sees one shape whatever the file format.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from recnas.data.readers.common import ReadReport, check_file, check_text
from recnas.data.schema import Schema

DEFAULT_CHUNK_ROWS = 262_144


def read_chunks(
    path: str | Path,
    schema: Schema,
    report: ReadReport | None = None,
    on_bad_row: str = "error",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    require_label: bool = True,
) -> Iterator[pa.Table]:
    """Yield validated chunks of `path` read as `schema.format` says.

    `on_bad_row` is `error` (stop at the first row with the wrong number of fields) or `skip`
    (drop such rows and count them in `report`). With `require_label=False`, a CSV or Parquet file
    without the label column is read with a placeholder label of 0 and `report.labeled` is False
    (scoring new data).
    """
    from recnas.data.readers import avazu, criteo, delimited, libfm

    if on_bad_row not in ("error", "skip"):
        from recnas.errors import ConfigError

        raise ConfigError(f"--on-bad-row must be 'error' or 'skip', got {on_bad_row!r}")
    path = check_file(Path(path))
    report = report if report is not None else ReadReport(path)
    kind = schema.format.kind
    if kind != "parquet":
        check_text(path)
    try:
        if kind in ("csv", "parquet"):
            yield from delimited.read(path, schema, report, on_bad_row, chunk_rows, require_label)
        elif kind == "libfm":
            yield from libfm.read(path, schema, report, on_bad_row, chunk_rows)
        elif kind == "criteo":
            yield from criteo.read(path, schema, report, on_bad_row, chunk_rows)
        elif kind == "avazu":
            yield from avazu.read(path, schema, report, on_bad_row, chunk_rows)
        else:  # SourceFormat validates kind, so this is a programming error
            raise AssertionError(kind)
    except (pa.ArrowException, UnicodeDecodeError, EOFError, OSError) as e:  # the parsers' own errors, last: named
        from recnas.errors import DataError

        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise DataError(f"{path}: cannot be read as {kind} ({reason}); check the file and its format") from None
    if report.rows == 0:
        from recnas.errors import DataError

        raise DataError(f"{path}: the file holds no data rows; check that it is the right file")


__all__ = ["DEFAULT_CHUNK_ROWS", "ReadReport", "read_chunks"]
