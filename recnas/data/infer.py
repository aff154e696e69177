"""Schema inference: guess the format of a file and the type of each column, and say why.

Rules (applied to the first rows): a column named like a label (label, click, clicked, target,
y) is the label; float-looking values -> numerical; integers -> categorical when they have few
distinct values (<= `max_int_categories`) or the name says id (ends in `id`, holds `_id`, or is one of
ID_NAMES: user, item, ...), else numerical; text with a
list separator (`|` or `;`) in most rows -> multi_categorical; other text -> categorical.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

from recnas.data.readers.common import (
    NUMBER_RE,
    SPECIAL_FLOAT_RE,
    check_file,
    check_parquet_types,
    check_text,
    head_lines,
    is_token_list,
)
from recnas.data.readers.criteo import CAT_NAMES, N_COLS, NUM_NAMES, criteo_schema
from recnas.data.readers.delimited import read_header
from recnas.data.schema import FieldSpec, FieldType, Schema, SourceFormat
from recnas.errors import DataError, SchemaError

ID_NAMES = ("user", "item", "movie", "product", "ad", "campaign", "advertiser", "app", "site", "device", "shop",
            "store", "author", "book", "isbn", "song", "artist", "query", "category", "brand")  # integer ids by name
LABEL_NAMES = ("label", "click", "clicked", "is_click", "target", "y")
LIST_SEPARATORS = ("|", ";")
SAMPLE_ROWS = 100_000
LIBFM_LINE = re.compile(r"^[-+]?\d+(\.\d+)?(\s+\d+:[-+.\deE]+)+\s*$")


@dataclass
class Inference:
    """An inferred schema and one human-readable reason per decision."""

    schema: Schema
    notes: list[str] = field(default_factory=list)


def sniff_format(path: Path) -> SourceFormat:
    """Guess how `path` is laid out from its extension and first lines."""
    check_file(path)
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return SourceFormat(kind="parquet")
    check_text(path)
    lines = [ln for ln in head_lines(path, 5) if ln]
    if not lines:
        raise DataError(f"{path}: the file is empty; it holds no header and no rows")
    first = lines[0]
    if name.endswith((".libfm", ".libsvm", ".svm")) or LIBFM_LINE.match(first):
        return SourceFormat(kind="libfm", delimiter=" ", header=False)
    tabs, commas = first.count("\t"), first.count(",")
    delim = "\t" if tabs > commas else ","
    cells = first.split(delim)
    header = not any(re.match(NUMBER_RE, c) for c in cells if c)
    if delim == "\t" and not header and 30 <= len(cells) <= N_COLS and cells[0] in ("0", "1"):
        return SourceFormat(kind="criteo", delimiter="\t", header=False)
    lowered = [c.strip().lower() for c in cells]
    if header and "click" in lowered and "hour" in lowered and "id" in lowered:
        return SourceFormat(kind="avazu")
    return SourceFormat(kind="csv", delimiter=delim, header=header)


def infer_schema(
    path: Path, fmt: SourceFormat | None = None, label: str | None = None,
    max_int_categories: int = 200, name: str | None = None,
) -> Inference:
    """Infer a schema for `path` (format sniffed unless given)."""
    fmt = fmt or sniff_format(path)
    name = name or path.stem.split(".")[0]
    if fmt.kind == "criteo":
        return Inference(criteo_schema(name), ["raw Criteo layout: label, I1..I13 numerical, C1..C26 categorical"])
    if fmt.kind == "avazu":
        from recnas.data.readers.avazu import avazu_schema

        return Inference(avazu_schema(path, name), ["raw Avazu layout: click label, hour -> hour + weekday"])
    if fmt.kind == "libfm":
        return infer_libfm(path, fmt, name)
    table = sample_table(path, fmt)
    cols = table.column_names
    if not fmt.header:
        fmt = dataclasses.replace(fmt, columns=tuple(cols))
    if label is None:
        label = next((c for c in cols if c.lower() in LABEL_NAMES), None)
        if label is None:
            raise SchemaError(
                f"{path}: no label column found (looked for {list(LABEL_NAMES)}); name it with --label "
                "(or data.label in a config)"
            )
    elif label not in cols:
        raise SchemaError(f"{path}: label column {label!r} is not in the file (columns: {cols})")
    notes = [f"{label}: label"]
    fields = []
    list_columns = ({f.name for f in pq.ParquetFile(str(path)).schema_arrow if is_token_list(f.type)}
                    if fmt.kind == "parquet" else set())
    criteo_names = set(NUM_NAMES + CAT_NAMES) == {c for c in cols if c != label}
    for c in cols:
        if c == label:
            continue
        if criteo_names:
            num = c in NUM_NAMES
            spec = FieldSpec(c, FieldType.NUMERICAL if num else FieldType.CATEGORICAL)
            why = "Criteo column names: I* numerical, C* categorical"
        elif c in list_columns:
            spec, why = FieldSpec(c, FieldType.MULTI_CATEGORICAL, separator="|"), "a Parquet list column"
        else:
            spec, why = infer_column(c, table[c], max_int_categories)
        fields.append(spec)
        notes.append(f"{c}: {spec.type.value} ({why})")
    schema = Schema(tuple(fields), label=label, format=fmt, name=name, inferred=True)
    return Inference(schema, notes)


def _as_text(col: pa.Array) -> pa.Array:
    """A Parquet column as text; a list of values as the values joined by '|' (inferred multi-valued)."""
    if is_token_list(col.type):
        return pc.binary_join(pc.cast(col, pa.list_(pa.string())), "|")
    return pc.cast(col, pa.string())


def sample_table(path: Path, fmt: SourceFormat) -> pa.Table:
    """The first rows of a CSV or Parquet file, every column as text."""
    if fmt.kind == "parquet":
        try:
            pf = pq.ParquetFile(str(path))
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0][:160]})") from None
        check_parquet_types(path, pf.schema_arrow, pf.schema_arrow.names)
        batch = next(pf.iter_batches(batch_size=SAMPLE_ROWS), None)
        if batch is None or batch.num_rows == 0:
            raise DataError(f"{path}: the Parquet file holds no rows")
        return pa.table({n: _as_text(batch.column(n)) for n in batch.schema.names})
    try:
        return _sample_csv(path, fmt)
    except pa.ArrowException as e:
        raise DataError(f"{path}: cannot be read as delimited text ({str(e).splitlines()[0][:160]}); check the "
                        "file") from None


def _sample_csv(path: Path, fmt: SourceFormat) -> pa.Table:
    read_opts = pv.ReadOptions(use_threads=False, block_size=1 << 24, autogenerate_column_names=not fmt.header)
    reader = pv.open_csv(
        str(path), read_options=read_opts,
        parse_options=pv.ParseOptions(delimiter=fmt.delimiter, invalid_row_handler=lambda r: "skip"),
        convert_options=pv.ConvertOptions(strings_can_be_null=False, null_values=[""],
                                          column_types=_all_strings(path, fmt)),
    )
    try:
        batch = reader.read_next_batch()
    except StopIteration:
        raise DataError(f"{path}: holds no data rows") from None
    finally:
        reader.close()  # stop pyarrow's reader thread now: left to interpreter exit, it can abort the process
    table = pa.Table.from_batches([batch]).slice(0, SAMPLE_ROWS)
    if not fmt.header:
        names = ["label" if i == 0 else f"c{i}" for i in range(table.num_columns)]
        table = table.rename_columns(names)
    return table


def _all_strings(path: Path, fmt: SourceFormat) -> dict[str, pa.DataType]:
    if fmt.header:
        names = read_header(path, fmt.delimiter)
    else:
        n_cells = len(next((ln for ln in head_lines(path, 5) if ln), "").split(fmt.delimiter))
        names = [f"f{i}" for i in range(n_cells)]
    return {n: pa.string() for n in names}


def infer_column(name: str, col: pa.ChunkedArray, max_int_categories: int) -> tuple[FieldSpec, str]:
    """Type of one text column and the reason, from its values."""
    col = pc.drop_null(col.combine_chunks())
    if not pa.types.is_string(col.type):
        col = col.cast(pa.string())
    col = col.filter(pc.not_equal(col, ""))
    if len(col) == 0:
        return FieldSpec(name, FieldType.CATEGORICAL), "no values seen"
    numeric = pc.all(pc.or_(pc.match_substring_regex(col, NUMBER_RE),
                            pc.match_substring_regex(col, SPECIAL_FLOAT_RE))).as_py()
    if numeric:
        is_int = pc.all(pc.match_substring_regex(col, r"^\s*[-+]?\d+\s*$")).as_py()
        distinct = pc.count_distinct(col).as_py()
        if not is_int:
            return FieldSpec(name, FieldType.NUMERICAL), "decimal numbers"
        if distinct <= max_int_categories:
            return FieldSpec(name, FieldType.CATEGORICAL), f"integers, {distinct} distinct"
        low = name.lower()
        if low.endswith("id") or "_id" in low or low in ID_NAMES:
            return FieldSpec(name, FieldType.CATEGORICAL), f"integer ids, {distinct} distinct"
        return FieldSpec(name, FieldType.NUMERICAL), (f"integers, {distinct} distinct > {max_int_categories} (if these "
                                                      "are ids, declare the field categorical in schema.yaml)")
    for sep in LIST_SEPARATORS:
        share = pc.mean(pc.cast(pc.match_substring(col, sep), pa.int8())).as_py()
        if share >= 0.2:
            return FieldSpec(name, FieldType.MULTI_CATEGORICAL, separator=sep), f"{share:.0%} of values hold {sep!r}"
    return FieldSpec(name, FieldType.CATEGORICAL), "text"


def infer_libfm(path: Path, fmt: SourceFormat, name: str) -> Inference:
    """libFM: same token count on every sampled line -> one field per position, else one list field."""
    lines = [line for line in head_lines(path, 1000) if line.strip()]
    if lines and not LIBFM_LINE.match(lines[0]):  # the first line says whether it is libFM at all; the reader names
        raise DataError(f"{path} line 1: not a libFM line ('label index:value ...'): {lines[0][:80]!r}; "  # bad later
                        "pass the file's real --format (csv, tsv, parquet) or fix the line")  # tokens itself
    counts = {len(line.split()) - 1 for line in lines}
    if len(counts) == 1:
        n = counts.pop()
        fields = tuple(FieldSpec(f"f{i + 1}", FieldType.CATEGORICAL) for i in range(n))
        note = f"libFM with {n} indices on every line: one categorical field per position (f1..f{n})"
        fmt = SourceFormat(kind="libfm", delimiter=" ", header=False, libfm_fields="position")
    else:
        fields = (FieldSpec("features", FieldType.MULTI_CATEGORICAL),)
        note = "libFM with varying index counts: one multi-valued field `features`"
        fmt = SourceFormat(kind="libfm", delimiter=" ", header=False, libfm_fields="single")
    return Inference(Schema(fields, label="label", format=fmt, name=name, inferred=True), [note])
