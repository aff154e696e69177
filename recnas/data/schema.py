"""Field types, field specs and the dataset schema (with its fitted vocabularies and statistics).

A schema says how to read a dataset (its `SourceFormat`) and what each column is. After
`FeatureProcessor.fit` every field also carries its fitted state: a `Vocabulary` for embedded
fields and `NumericStats` for numerical ones. `Schema.save`/`Schema.load` round-trip it as JSON
plus Arrow arrays, never pickle.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from recnas.data.hashing import HashedVocabulary, load_vocabulary, vocabulary_from_table
from recnas.data.vocab import Vocabulary, vocab_table_from_json, vocab_table_to_json
from recnas.errors import SchemaError


class FieldType(StrEnum):
    """The kinds of input field; behaviour the rest of recnas needs hangs off these properties."""

    CATEGORICAL = "categorical"
    NUMERICAL = "numerical"
    MULTI_CATEGORICAL = "multi_categorical"

    @property
    def embedded(self) -> bool:
        """Whether the field is looked up in an embedding table by id."""
        return self is not FieldType.NUMERICAL

    @property
    def needs_lengths(self) -> bool:
        """Whether the field is a variable-length token list (padded ids plus lengths)."""
        return self is FieldType.MULTI_CATEGORICAL


# Names accepted in schema.yaml for each type (derived datasets write `sequence`).
TYPE_ALIASES: dict[str, FieldType | None] = {
    "categorical": FieldType.CATEGORICAL,
    "sparse": FieldType.CATEGORICAL,
    "numerical": FieldType.NUMERICAL,
    "numeric": FieldType.NUMERICAL,
    "dense": FieldType.NUMERICAL,
    "multi_categorical": FieldType.MULTI_CATEGORICAL,
    "sequence": FieldType.MULTI_CATEGORICAL,
    "multi_valued": FieldType.MULTI_CATEGORICAL,
    "label": None,
}

Bucketing = Literal["none", "log", "quantile"]


@dataclass(frozen=True)
class NumericStats:
    """Train-split statistics of a numerical field (z-score, bucketing and AutoDis use them)."""

    count: int
    missing: int
    mean: float
    std: float
    min: float
    max: float
    quantiles: tuple[float, ...] = ()
    levels: tuple[float, ...] = ()  # the distinct values of an integer field with few of them (else empty)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericStats:
        """Inverse of `to_dict`."""
        d = dict(d)
        d["quantiles"] = tuple(d.get("quantiles", ()))
        d["levels"] = tuple(d.get("levels", ()))
        return cls(**d)


@dataclass(frozen=True)
class FieldSpec:
    """One input field: its name, type and encoding options, plus fitted state once fitted.

    `vocab` holds the token vocabulary of categorical and multi-valued fields, and the bucket
    vocabulary of numerical fields bucketised with `buckets="log"` or `"quantile"`.
    """

    name: str
    type: FieldType
    separator: str = "|"
    min_count: int = 1
    max_len: int | None = None
    buckets: Bucketing = "none"
    n_buckets: int = 16
    hash_buckets: int | None = None
    vocab: Vocabulary | HashedVocabulary | None = field(default=None, compare=False, repr=False)
    stats: NumericStats | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise SchemaError(f"field {self.name!r}: min_count must be >= 1, got {self.min_count}")
        if self.max_len is not None and self.max_len < 1:
            raise SchemaError(f"field {self.name!r}: max_len must be >= 1, got {self.max_len}")
        if self.buckets not in ("none", "log", "quantile"):
            raise SchemaError(
                f"field {self.name!r}: buckets must be none, log or quantile, got {self.buckets!r}"
            )
        if self.n_buckets < 2:
            raise SchemaError(f"field {self.name!r}: n_buckets must be >= 2, got {self.n_buckets}")
        if self.hash_buckets is not None:
            if self.type is FieldType.NUMERICAL:
                raise SchemaError(f"field {self.name!r}: hash_buckets applies to categorical and multi-valued fields; "
                                  f"a numerical field has buckets/n_buckets")
            if self.hash_buckets < 2:
                raise SchemaError(f"field {self.name!r}: hash_buckets must be >= 2, got {self.hash_buckets}")

    @property
    def fitted(self) -> bool:
        """Whether `FeatureProcessor.fit` has filled in this field's state."""
        if self.type is FieldType.NUMERICAL:
            return self.stats is not None and (self.buckets == "none" or self.vocab is not None)
        return self.vocab is not None

    @property
    def cardinality(self) -> int:
        """Embedding rows the field needs (padding and OOV included); 0 when not embedded."""
        return self.vocab.size if self.vocab is not None else 0

    def options_dict(self) -> dict[str, Any]:
        """The user-set options (no fitted state), as written in schema.json."""
        d: dict[str, Any] = {"name": self.name, "type": self.type.value}
        if self.type is FieldType.MULTI_CATEGORICAL:
            d["separator"] = self.separator
            d["max_len"] = self.max_len
        if self.type.embedded:
            d["min_count"] = self.min_count
            if self.hash_buckets is not None:  # only when set: the cache keys of unhashed data stay as they were
                d["hash_buckets"] = self.hash_buckets
        if self.type is FieldType.NUMERICAL:
            d["buckets"] = self.buckets
            d["n_buckets"] = self.n_buckets
            if self.buckets != "none":
                d["min_count"] = self.min_count
        return d


@dataclass(frozen=True)
class SourceFormat:
    """How to read a dataset's files.

    `kind` is one of csv, parquet, libfm, criteo, avazu. For libfm, `libfm_fields` says how an
    index maps to a field: `position` (k-th index belongs to the k-th field), `ranges` (per-field
    index ranges in `libfm_ranges`) or `single` (one multi-valued field holding every index).
    """

    kind: str = "csv"
    delimiter: str = ","
    header: bool = True
    libfm_fields: str = "position"
    libfm_ranges: tuple[tuple[str, int, int], ...] = ()
    columns: tuple[str, ...] = ()  # file column order of a headerless CSV (label included)

    def __post_init__(self) -> None:
        if self.kind not in ("csv", "parquet", "libfm", "criteo", "avazu"):
            raise SchemaError(
                f"format kind {self.kind!r} is unknown; use csv, parquet, libfm, criteo or avazu"
            )
        if self.libfm_fields not in ("position", "ranges", "single"):
            raise SchemaError(
                f"libfm field mapping {self.libfm_fields!r} is unknown; use position, ranges or single"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = dataclasses.asdict(self)
        d["libfm_ranges"] = [list(r) for r in self.libfm_ranges]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SourceFormat:
        """Inverse of `to_dict`."""
        d = dict(d)
        d["libfm_ranges"] = tuple(tuple(r) for r in d.get("libfm_ranges", ()))
        d["columns"] = tuple(d.get("columns", ()))
        return cls(**d)


def is_folder_name(name: str) -> bool:
    """Whether `name` names one folder inside its parent: not empty, no path separator or NUL, no leading dot."""
    return bool(name) and not any(c in name for c in "/\\\x00") and not name.startswith(".")


@dataclass(frozen=True)
class Schema:
    """The ordered input fields of a dataset, its label column and how its files are read."""

    fields: tuple[FieldSpec, ...]
    label: str = "label"
    format: SourceFormat = SourceFormat()
    name: str = "dataset"
    label_values: tuple[float, float] = (0.0, 1.0)
    inferred: bool = False
    # a text label: the cell texts that mean positive (1) and negative (0); empty: the label is numeric
    label_positive: tuple[str, ...] = ()
    label_negative: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SchemaError(f"schema names field(s) {sorted(dup)} more than once; rename them")
        if self.label in names:
            raise SchemaError(f"label column {self.label!r} is also listed as an input field")
        if not self.fields:
            raise SchemaError("schema has no input fields; list at least one column")
        if not is_folder_name(self.name):
            raise SchemaError(f"schema name {self.name!r} would name a folder outside the cache (it holds a path "
                              "separator or starts with a dot); use letters, digits, '-', '_' and '.'")
        both = sorted(set(self.label_positive) & set(self.label_negative))
        if both:
            raise SchemaError(f"label value(s) {both} are listed as both positive and negative; list each once")
        if self.label_negative and not self.label_positive:
            raise SchemaError("negative label values are given but no positive one; name the positive value(s)")

    # ---- views by type ------------------------------------------------------------------
    def of_type(self, ftype: FieldType) -> list[FieldSpec]:
        """Fields of one type, in schema order."""
        return [f for f in self.fields if f.type is ftype]

    @property
    def categorical(self) -> list[FieldSpec]:
        """Categorical fields, in schema order (the columns of `FieldBatch.cat`)."""
        return self.of_type(FieldType.CATEGORICAL)

    @property
    def numerical(self) -> list[FieldSpec]:
        """Numerical fields, in schema order (the columns of `FieldBatch.num`)."""
        return self.of_type(FieldType.NUMERICAL)

    @property
    def bucketized(self) -> list[FieldSpec]:
        """Numerical fields with bucket ids (the columns of `FieldBatch.num_bucket`)."""
        return [f for f in self.numerical if f.buckets != "none"]

    @property
    def multi_categorical(self) -> list[FieldSpec]:
        """Multi-valued fields, in schema order (the fields of `FieldBatch.mv`)."""
        return self.of_type(FieldType.MULTI_CATEGORICAL)

    @property
    def fitted(self) -> bool:
        """Whether every field carries its fitted state."""
        return all(f.fitted for f in self.fields)

    @property
    def max_len(self) -> int:
        """Padded length of the multi-valued id lists (0 without such fields)."""
        return max((f.max_len or 0 for f in self.multi_categorical), default=0)

    def __getitem__(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise SchemaError(f"schema has no field {name!r}; fields are {[f.name for f in self.fields]}")

    def replace_fields(self, fields: list[FieldSpec]) -> Schema:
        """A copy with new field specs (same format and label)."""
        return dataclasses.replace(self, fields=tuple(fields))

    # ---- serialisation ------------------------------------------------------------------
    def vocab_file(self, i: int) -> str:
        """Relative path of field `i`'s vocabulary (the index keeps odd field names safe)."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.fields[i].name)
        return f"vocab/{i:03d}-{safe}.arrow"

    def to_dict(self, inline_vocab: bool = False) -> dict[str, Any]:
        """JSON-ready form; vocabularies are referenced by file, or held in it with `inline_vocab`.

        Inlined (`vocab.inline`: the vocabulary's table as JSON columns), the dict is self-contained, for serving.
        """
        fields = []
        for i, f in enumerate(self.fields):
            d = f.options_dict()
            if f.stats is not None:
                d["stats"] = f.stats.to_dict()
            if f.vocab is not None and inline_vocab:
                d["vocab"] = {**f.vocab.summary(), "inline": vocab_table_to_json(f.vocab.table())}
            elif f.vocab is not None:
                d["vocab"] = {"file": self.vocab_file(i), **f.vocab.summary()}
            fields.append(d)
        return {
            "name": self.name,
            "label": self.label,
            "label_values": list(self.label_values),
            "format": self.format.to_dict(),
            "inferred": self.inferred,
            **({"label_positive": list(self.label_positive), "label_negative": list(self.label_negative)}
               if self.label_positive else {}),
            "fields": fields,
        }

    def save(self, directory: str | Path) -> Path:
        """Write `schema.json` and one Arrow file per vocabulary under `directory`."""
        directory = Path(directory)
        (directory / "vocab").mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(self.fields):
            if f.vocab is not None:
                f.vocab.save(directory / self.vocab_file(i))
        path = directory / "schema.json"
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any], directory: Path | None = None) -> Schema:
        """Inverse of `to_dict`; vocabularies are read from `directory` when referenced."""
        fields = []
        for fd in d["fields"]:
            fd = dict(fd)
            stats = NumericStats.from_dict(fd.pop("stats")) if "stats" in fd else None
            vocab_ref = fd.pop("vocab", None)
            vocab = None
            if vocab_ref is not None and "inline" in vocab_ref:
                where = f"field {fd['name']!r}"
                table = vocab_table_from_json(vocab_ref["inline"], where)
                try:
                    vocab = vocabulary_from_table(table, Path(where))
                except (KeyError, ValueError) as e:
                    raise SchemaError(f"{where}: not a vocabulary recnas wrote ({e}); export again") from None
            elif vocab_ref is not None:
                if directory is None:
                    raise SchemaError(f"field {fd['name']!r} references a vocabulary file but no folder")
                vocab = load_vocabulary(directory / vocab_ref["file"])
            fd["type"] = FieldType(fd["type"])
            fields.append(FieldSpec(**fd, vocab=vocab, stats=stats))
        return cls(
            fields=tuple(fields),
            label=d["label"],
            format=SourceFormat.from_dict(d["format"]),
            name=d.get("name", "dataset"),
            label_values=tuple(d.get("label_values", (0.0, 1.0))),  # type: ignore[arg-type]
            inferred=bool(d.get("inferred", False)),
            label_positive=tuple(d.get("label_positive", ())),
            label_negative=tuple(d.get("label_negative", ())),
        )

    @classmethod
    def load(cls, directory: str | Path) -> Schema:
        """Read a schema written by `save` (the folder holding `schema.json`)."""
        directory = Path(directory)
        path = directory / "schema.json"
        if not path.is_file():
            raise SchemaError(f"{path}: no schema.json here; run `recnas data prepare` first")
        try:
            return cls.from_dict(json.loads(path.read_text()), directory)
        except json.JSONDecodeError as e:
            raise SchemaError(f"{path}: not valid JSON ({e}); delete it and prepare again") from e
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, SchemaError):
                raise
            raise SchemaError(f"{path}: not a schema written by recnas ({type(e).__name__}: {e}); "
                              "prepare or train again") from e
