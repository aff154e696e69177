"""Locating a dataset: a folder of train/valid/test files (+ optional schema.yaml) or one file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from recnas.data.infer import infer_schema, sniff_format
from recnas.data.readers.common import short_list
from recnas.data.readers.delimited import label_value_counts
from recnas.data.schema import Schema, SourceFormat
from recnas.data.schema_yaml import load_schema_yaml
from recnas.errors import ConfigError, DataError, SchemaError

SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "validation", "val"), "test": ("test",)}
DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".libfm", ".libsvm", ".svm", ".csv.gz")


@dataclass
class DatasetSource:
    """Where a dataset's splits are and the (unfitted) schema to read them with."""

    root: Path
    splits: dict[str, Path]
    schema: Schema
    notes: list[str] = field(default_factory=list)

    @property
    def train(self) -> Path:
        """The split vocabularies and statistics are fitted on."""
        return self.splits["train"]


def find_split_files(folder: Path) -> dict[str, Path]:
    """Find train/valid/test files in `folder` by their stem (train.csv, valid.parquet, ...)."""
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or not p.name.lower().endswith(DATA_SUFFIXES):
            continue
        stem = p.name.lower().split(".")[0]
        for split, names in SPLIT_NAMES.items():
            if stem in names and split not in found:
                found[split] = p
    return found


def open_dataset(
    path: str | Path, fmt: SourceFormat | None = None, label: str | None = None,
    schema: Schema | None = None, field_names: list[str] | None = None, positive: list[str] | None = None,
) -> DatasetSource:
    """Resolve `path` (a dataset folder or a single data file) into a `DatasetSource`.

    A folder's `schema.yaml` wins; without one the schema is inferred from the train file and
    the inference notes say what was decided. `label` names the label column (over schema.yaml's) and
    `positive` the label value(s) meaning positive (a text label); without declared negatives, the other
    values of the train file are the negatives.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; check the path")
    notes: list[str] = []
    if path.is_dir():
        yaml_path = path / "schema.yaml"
        files: dict[str, str] = {}
        if schema is None and yaml_path.is_file():
            schema, files = load_schema_yaml(yaml_path, name=path.name)
            notes.append(f"schema from {yaml_path}")
        splits = {s: path / f for s, f in files.items()} if files else find_split_files(path)
        if "train" not in splits:
            raise DataError(
                f"{path}: no train file found; a dataset folder holds train.<ext> "
                "(and valid/test) with ext csv, tsv, parquet or libfm"
            )
        for s, p in splits.items():
            if not p.is_file():
                raise DataError(f"{p}: the {s} file named by schema.yaml does not exist")
    else:
        splits = {"train": path}
    if schema is None:
        inf = infer_schema(splits["train"], fmt=fmt, label=label, name=path.stem.split(".")[0])
        schema = inf.schema
        notes += ["inferred schema:"] + [f"  {n}" for n in inf.notes]
    elif fmt is not None:
        schema = dataclasses.replace(schema, format=fmt)
    if field_names:
        if len(field_names) != len(schema.fields):
            raise DataError(
                f"--fields gives {len(field_names)} names but the data has {len(schema.fields)} fields"
            )
        renamed = [dataclasses.replace(f, name=n) for f, n in zip(schema.fields, field_names, strict=True)]
        schema = schema.replace_fields(renamed)
    if label is not None and label != schema.label:
        schema = relabelled(schema, label, splits["train"])
    if positive:
        pos = tuple(dict.fromkeys(str(v).strip() for v in positive))
        schema = dataclasses.replace(schema, label_positive=pos,
                                     label_negative=tuple(v for v in schema.label_negative if v not in pos))
    if schema.label_positive and not schema.label_negative:
        schema = with_negatives_from(schema, splits["train"])
    if schema.label_positive:
        notes.append(f"label {schema.label}: positive {list(schema.label_positive)}, negative "
                     f"{list(schema.label_negative)}")
    return DatasetSource(root=path, splits=splits, schema=schema, notes=notes)


def relabelled(schema: Schema, label: str, train: Path) -> Schema:
    """`schema` with `label` as its label column: the old label column leaves, the new one stops being a field."""
    if label not in [f.name for f in schema.fields]:
        raise SchemaError(f"{train}: label column {label!r} is not a column of the data (its columns: "
                          f"{short_list([schema.label, *(f.name for f in schema.fields)])}); fix --label / data.label")
    fields = tuple(f for f in schema.fields if f.name != label)
    return dataclasses.replace(schema, fields=fields, label=label, label_values=(0.0, 1.0), label_positive=(),
                               label_negative=())


def with_negatives_from(schema: Schema, train: Path) -> Schema:
    """`schema` whose text label's negatives are the train file's values other than the positive ones."""
    if schema.format.kind not in ("csv", "parquet"):
        raise SchemaError(f"{train}: a {schema.format.kind} file has a numeric label; --positive / `positive` names "
                          "the values of a text label in CSV or Parquet files")
    counts = label_value_counts(train, schema)
    missing = [p for p in schema.label_positive if p not in counts]
    if missing:
        raise DataError(f"{train}: label {schema.label!r} never takes the positive value(s) {missing}; its values are "
                        f"{short_list(sorted(counts))}: fix --positive / data.positive / schema.yaml's `positive`")
    neg = tuple(sorted(v for v in counts if v not in schema.label_positive))
    if not neg:
        raise DataError(f"{train}: every label value of {schema.label!r} is positive ({short_list(sorted(counts))}); "
                        "the train split needs negatives too")
    return dataclasses.replace(schema, label_negative=neg)


def with_field_option(schema: Schema, option: str, values: dict[str, int], key: str) -> Schema:
    """`schema` with `option` set to the given value on each named field (a config's override of schema.yaml)."""
    names = [f.name for f in schema.fields]
    unknown = [n for n in values if n not in names]
    if unknown:
        raise ConfigError(f"{key} names {unknown}, not fields of this data (its fields: {short_list(names)})")
    fields = []
    for f in schema.fields:
        if f.name in values:
            try:
                f = dataclasses.replace(f, **{option: int(values[f.name])})
            except SchemaError as e:
                raise ConfigError(f"{key}.{f.name}: {e}") from None
        fields.append(f)
    return schema.replace_fields(fields)


def with_hash_buckets(schema: Schema, buckets: dict[str, int], key: str = "data.hash_buckets") -> Schema:
    """`schema` whose named fields are hashed into the given bucket counts (the config's override of schema.yaml)."""
    return with_field_option(schema, "hash_buckets", buckets, key)


def with_min_count(schema: Schema, floors: dict[str, int], key: str = "data.min_count") -> Schema:
    """`schema` whose named fields keep only the tokens seen at least so often in train (the rest share the OOV id)."""
    plain = [f.name for f in schema.fields if f.name in floors and not f.type.embedded and f.buckets == "none"]
    if plain:
        raise ConfigError(f"{key} names {plain}: numerical fields without buckets have no vocabulary to floor; name "
                          f"categorical, multi-valued or bucketised numerical fields")
    return with_field_option(schema, "min_count", floors, key)


__all__ = ["DatasetSource", "open_dataset", "sniff_format", "with_field_option", "with_hash_buckets", "with_min_count"]
