"""Reading a dataset's `schema.yaml`: typed (pydantic), with errors that name the bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from recnas.data.schema import TYPE_ALIASES, FieldSpec, Schema, SourceFormat
from recnas.errors import SchemaError, describe_validation_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnYaml(_Strict):
    """One column entry; the documentation-only keys are accepted and ignored."""

    name: str
    type: str
    separator: str | None = None
    min_count: int = 1
    max_len: int | None = None
    buckets: str = "none"
    n_buckets: int = 16
    hash_buckets: int | None = None
    # documentation keys (kept by the derived datasets), not used by recnas
    description: str | None = None
    definition: str | None = None
    unit: str | None = None
    missing: str | None = None
    encoding: str | None = None
    notes: str | None = None
    values: list[Any] | None = None
    positive: list[Any] | None = None  # label only: the value(s) meaning positive (a text label, or a multi-class one)


class FormatYaml(_Strict):
    """How the files are read."""

    kind: str | None = None
    delimiter: str = ","
    header: bool = True
    encoding: str = "utf-8"
    libfm_fields: str = "position"
    libfm_ranges: list[tuple[str, int, int]] = []


class SchemaYaml(_Strict):
    """Top level of schema.yaml."""

    name: str | None = None
    description: str | None = None
    files: dict[str, str] = {}
    format: FormatYaml = FormatYaml()
    label: str = "label"
    columns: list[ColumnYaml]


def _number(value: Any) -> float | None:
    """`value` as a float when it is a number (YAML's 1, 0.5 or "1"), else None."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def label_coding(path: Path, values: list[Any] | None,
                 positive: list[Any] | None) -> tuple[tuple[float, float], tuple[str, ...], tuple[str, ...]]:
    """How schema.yaml's label column maps cells to 0/1: numeric (negative, positive) or text positive/negative.

    `values: [0, 1]` (numbers) keeps a numeric label; `values: [no, yes]` (text) means negative then positive;
    `positive: [...]` names the positive value(s), the rest of `values` are negative (without `values`, the
    other values of the train file, found when the data is opened).
    """
    if values is not None and not values:
        raise SchemaError(f"{path}: the label's values list is empty; list the (negative, positive) values")
    if positive is None:
        if values is None:
            return (0.0, 1.0), (), ()
        if len(values) != 2:
            raise SchemaError(f"{path}: label values must be two (negative, positive), got {values}; with more, "
                              "name the positive one(s) with `positive: [...]`")
        nums = [_number(v) for v in values]
        if all(n is not None for n in nums):
            return (nums[0], nums[1]), (), ()  # type: ignore[return-value]
        return (0.0, 1.0), (str(values[1]).strip(),), (str(values[0]).strip(),)
    pos = tuple(dict.fromkeys(str(v).strip() for v in positive))
    if not pos or any(not p for p in pos):
        raise SchemaError(f"{path}: the label's positive values {positive} must be non-empty values")
    if values is None:
        return (0.0, 1.0), pos, ()
    texts = [str(v).strip() for v in values]
    unknown = [p for p in pos if p not in texts]
    if unknown:
        raise SchemaError(f"{path}: the label's positive value(s) {unknown} are not among its values {texts}; "
                          "list them in `values` or fix `positive`")
    neg = tuple(dict.fromkeys(t for t in texts if t not in pos))
    if not neg:
        raise SchemaError(f"{path}: every label value {texts} is positive; list the negative value(s) in `values`")
    return (0.0, 1.0), pos, neg


def load_schema_yaml(path: str | Path, name: str | None = None) -> tuple[Schema, dict[str, str]]:
    """Parse schema.yaml into an unfitted `Schema` plus its split -> file name mapping."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SchemaError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(raw, dict):
        raise SchemaError(f"{path}: expected a mapping with `columns`, got {type(raw).__name__}")
    try:
        doc = SchemaYaml.model_validate(raw)
    except ValidationError as e:
        raise SchemaError(describe_validation_error(e, str(path))) from None
    fields = []
    label = doc.label
    label_values: tuple[float, float] = (0.0, 1.0)
    label_positive: tuple[str, ...] = ()
    label_negative: tuple[str, ...] = ()
    for i, col in enumerate(doc.columns):
        if col.type not in TYPE_ALIASES:
            raise SchemaError(
                f"{path}: columns.{i} ({col.name!r}) has type {col.type!r}; use one of {sorted(TYPE_ALIASES)}"
            )
        ftype = TYPE_ALIASES[col.type]
        if ftype is None:
            label = col.name
            label_values, label_positive, label_negative = label_coding(path, col.values, col.positive)
            continue
        if col.positive is not None:
            raise SchemaError(f"{path}: columns.{i} ({col.name!r}) sets `positive`, which only the label column takes")
        try:
            fields.append(FieldSpec(
                col.name, ftype, separator=col.separator or "|", min_count=col.min_count,
                max_len=col.max_len, buckets=col.buckets, n_buckets=col.n_buckets,  # type: ignore[arg-type]
                hash_buckets=col.hash_buckets,
            ))
        except SchemaError as e:
            raise SchemaError(f"{path}: columns.{i}: {e}") from None
    f = doc.format
    if f.encoding.lower().replace("-", "") not in ("utf8", "utf8sig", "ascii"):
        raise SchemaError(f"{path}: format.encoding {f.encoding!r} is not supported; convert the files to UTF-8")
    kind = f.kind or ("csv" if not doc.files else kind_from_name(next(iter(doc.files.values()))))
    fmt = SourceFormat(
        kind=kind, delimiter=f.delimiter, header=f.header, libfm_fields=f.libfm_fields,
        libfm_ranges=tuple(tuple(r) for r in f.libfm_ranges),  # type: ignore[misc]
        columns=tuple(c.name for c in doc.columns) if not f.header else (),
    )
    try:
        schema = Schema(tuple(fields), label=label, format=fmt, name=doc.name or name or path.parent.name,
                        label_values=label_values, label_positive=label_positive, label_negative=label_negative)
    except SchemaError as e:
        raise SchemaError(f"{path}: {e}") from None
    return schema, dict(doc.files)


def kind_from_name(filename: str) -> str:
    """Format kind suggested by a file name's extension."""
    low = filename.lower()
    if low.endswith((".parquet", ".pq")):
        return "parquet"
    if low.endswith((".libfm", ".libsvm", ".svm")):
        return "libfm"
    return "csv"
