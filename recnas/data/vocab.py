"""Per-field vocabularies: tokens sorted by train frequency, with padding and OOV ids reserved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recnas.errors import SchemaError

PAD_ID = 0
OOV_ID = 1
N_RESERVED = 2
MISSING_TOKEN = ""  # a missing categorical value is this token; printed as <missing>


class Vocabulary:
    """Maps tokens to ids: 0 = padding, 1 = out-of-vocabulary, then tokens by descending count.

    `counts[i]` is the train frequency of id `i`; `counts[OOV_ID]` sums the tokens dropped by
    `min_count`. The frequencies are what NIS and ESAPN partition ids by.
    """

    def __init__(self, tokens: pa.Array, counts: np.ndarray, min_count: int = 1) -> None:
        tokens = tokens.cast(pa.string())
        if len(counts) != len(tokens) + N_RESERVED:
            raise SchemaError(
                f"vocabulary has {len(tokens)} tokens but {len(counts)} counts; "
                f"expected {len(tokens) + N_RESERVED}"
            )
        self.tokens = tokens
        self.counts = np.asarray(counts, dtype=np.int64)
        self.min_count = int(min_count)

    @classmethod
    def from_counts(cls, tokens: pa.Array, counts: np.ndarray, min_count: int = 1) -> Vocabulary:
        """Build from (token, count) pairs: keep tokens seen `min_count` times, sort by count.

        Ties are broken by token text so the same data always gives the same ids.
        """
        tokens = tokens.cast(pa.string())
        counts = np.asarray(counts, dtype=np.int64)
        keep = counts >= min_count
        order_tokens = tokens.filter(pa.array(keep))
        kept_counts = counts[keep]
        if len(order_tokens):
            table = pa.table({"t": order_tokens, "c": kept_counts})
            table = table.sort_by([("c", "descending"), ("t", "ascending")])
            order_tokens = table["t"].combine_chunks()
            kept_counts = table["c"].to_numpy()
        full = np.zeros(len(order_tokens) + N_RESERVED, dtype=np.int64)
        full[N_RESERVED:] = kept_counts
        full[OOV_ID] = int(counts[~keep].sum())
        return cls(order_tokens, full, min_count)

    def with_min_count(self, min_count: int) -> Vocabulary:
        """The vocabulary the same train counts give at floor `min_count` (this one where the floor is not higher).

        Equal to what fitting at that floor builds, so a table's rows at a higher floor are known without a re-read.
        """
        if min_count <= self.min_count:
            return self
        raised = Vocabulary.from_counts(self.tokens, self.counts[N_RESERVED:], min_count)
        raised.counts[OOV_ID] += int(self.counts[OOV_ID])  # the tokens the lower floor dropped stay dropped
        return raised

    @property
    def size(self) -> int:
        """Number of ids, reserved ones included (rows of the embedding table)."""
        return len(self.tokens) + N_RESERVED

    def __len__(self) -> int:
        return self.size

    def lookup(self, values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int]:
        """Ids of `values` (strings; null = missing token) and how many fell to OOV."""
        values = pc.fill_null(values.cast(pa.string()), MISSING_TOKEN)
        idx = pc.index_in(values, value_set=self.tokens)
        n_oov = idx.null_count
        # index_in gives null for unknown tokens: -1 + N_RESERVED is exactly OOV_ID
        ids = pc.fill_null(idx, OOV_ID - N_RESERVED).to_numpy(zero_copy_only=False).astype(np.int64) + N_RESERVED
        return ids, int(n_oov)

    def token(self, i: int) -> str:
        """Readable token of id `i`."""
        if i == PAD_ID:
            return "<pad>"
        if i == OOV_ID:
            return "<oov>"
        t = self.tokens[i - N_RESERVED].as_py()
        return "<missing>" if t == MISSING_TOKEN else t

    def summary(self) -> dict[str, Any]:
        """Size and counts summary kept in schema.json next to the file reference."""
        return {"size": self.size, "min_count": self.min_count, "oov_count": int(self.counts[OOV_ID])}

    def table(self) -> pa.Table:
        """Tokens and counts as an Arrow table, the reserved ids' facts in its metadata (what `save` writes)."""
        counts = pa.array(self.counts[N_RESERVED:])
        table = pa.table({"token": self.tokens, "count": counts})
        meta = {b"min_count": str(self.min_count).encode(), b"oov_count": str(self.counts[OOV_ID]).encode()}
        return table.replace_schema_metadata(meta)

    def save(self, path: Path) -> None:
        """Write tokens and counts as one Arrow IPC file (memory-mappable, no pickle)."""
        write_vocab_table(self.table(), path)

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read a file written by `save`."""
        return cls.from_table(read_vocab_table(path))

    @classmethod
    def from_table(cls, table: pa.Table) -> Vocabulary:
        """The vocabulary of a table read by `read_vocab_table`."""
        meta = table.schema.metadata or {}
        counts = np.zeros(table.num_rows + N_RESERVED, dtype=np.int64)
        counts[N_RESERVED:] = table["count"].to_numpy()
        counts[OOV_ID] = int(meta.get(b"oov_count", b"0"))
        return cls(table["token"].combine_chunks(), counts, int(meta.get(b"min_count", b"1")))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return (
            self.min_count == other.min_count
            and self.tokens.equals(other.tokens)
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]


def read_vocab_table(path: Path) -> pa.Table:
    """The Arrow table of a vocabulary file, with a clear error for a missing or damaged one."""
    if not Path(path).is_file():
        raise SchemaError(f"{path}: vocabulary file is missing; prepare the dataset again")
    try:
        with pa.memory_map(str(path), "r") as source:
            return pa.ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, OSError) as e:
        raise SchemaError(f"{path}: vocabulary file is corrupt ({e}); prepare again") from e


def write_vocab_table(table: pa.Table, path: Path) -> None:
    """Write a vocabulary's table as one Arrow IPC file."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


VOCAB_COLUMN_TYPES = {"token": pa.string(), "count": pa.int64(), "rank": pa.int64()}


def vocab_table_to_json(table: pa.Table) -> dict[str, Any]:
    """A vocabulary's table as plain JSON (columns as lists, metadata as text), for files served without Arrow."""
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return {"columns": {name: table[name].to_pylist() for name in table.column_names}, "metadata": meta}


def vocab_table_from_json(doc: Any, where: str) -> pa.Table:
    """Inverse of `vocab_table_to_json`, with a clear error naming `where` for a damaged entry."""
    try:
        columns = {name: pa.array(values, type=VOCAB_COLUMN_TYPES[name]) for name, values in doc["columns"].items()}
        table = pa.table(columns)
        return table.replace_schema_metadata({str(k): str(v) for k, v in doc.get("metadata", {}).items()})
    except (KeyError, TypeError, AttributeError, pa.ArrowException) as e:
        raise SchemaError(f"{where}: not a vocabulary recnas wrote ({e.__class__.__name__}: {e}); "
                          "export again") from None
