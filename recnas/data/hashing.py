"""The hashing trick: a field's ids from a hash of its tokens into a fixed number of buckets, with no vocabulary.

A field with `hash_buckets: B` keeps no token list: a token's bucket is a 64-bit FNV-1a hash of its UTF-8 bytes,
mixed by the splitmix64 finaliser, modulo B. It is the same on every machine and in every process, and a token never
seen in train still gets a bucket (nothing is out of vocabulary). Fitting counts the train tokens per bucket, in
memory that grows with B and not with the rows or the distinct tokens, and numbers the buckets by descending count,
so that id order is frequency order as it is for a vocabulary (NIS, ESAPN and the tiered layouts rely on that).

How many distinct tokens share buckets is estimated, not counted (counting would hold every token): from the share
of occupied buckets by linear counting (Whang et al., 1990), exact in expectation for uniform hashing and accurate
while most buckets are still empty.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recnas.data.vocab import (
    MISSING_TOKEN,
    N_RESERVED,
    OOV_ID,
    PAD_ID,
    Vocabulary,
    read_vocab_table,
    write_vocab_table,
)
from recnas.errors import SchemaError

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
KIND = b"hashed"


def mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64, wrapping): a well-spread 64-bit value of any integer key.

    Here it spreads FNV's weak low bits over the whole word before the modulo.
    """
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _fnv1a(strings: pa.Array) -> np.ndarray:
    """64-bit FNV-1a of every string's UTF-8 bytes, vectorised over the strings (work: their total length)."""
    strings = strings.cast(pa.large_string())
    n = len(strings)
    h = np.full(n, FNV_OFFSET, dtype=np.uint64)
    if n == 0:
        return h
    _, offsets_buf, data_buf = strings.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[strings.offset: strings.offset + n + 1]
    if data_buf is None:  # every string is empty
        return h
    data = np.frombuffer(data_buf, dtype=np.uint8).astype(np.uint64)
    starts, lengths = offsets[:-1], np.diff(offsets)
    rows = np.arange(n)
    with np.errstate(over="ignore"):
        for k in range(int(lengths.max())):
            rows = rows[lengths[rows] > k]
            h[rows] = (h[rows] ^ data[starts[rows] + k]) * FNV_PRIME
    return h


def _tokens(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`values` as one string array, a null as the missing token."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return pc.fill_null(values.cast(pa.string()), MISSING_TOKEN)


def hash_buckets_of(values: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """The bucket (0..buckets-1) of every value; a null is the missing token. Each distinct value is hashed once."""
    return _buckets_of_tokens(_tokens(values), buckets)


def _buckets_of_tokens(tokens: pa.Array, buckets: int) -> np.ndarray:
    """`hash_buckets_of` for tokens already made one null-free string array by `_tokens`."""
    enc = pc.dictionary_encode(tokens)
    unique = mix64(_fnv1a(enc.dictionary)) % np.uint64(buckets)
    return unique.astype(np.int64)[enc.indices.to_numpy(zero_copy_only=False)]


class HashedVocabulary:
    """Ids of a hashed field: 0 = padding, 1 = the buckets under the floor, then the other buckets, fullest first.

    `counts[i]` is the train count of id `i`, as in `Vocabulary`. Every bucket has an id, empty ones included (an
    unseen token still gets one), unless `min_count` > 1: then a bucket whose train count is below it goes to the
    OOV id with its count: the floor is exact on bucket counts, and so approximate on
    tokens (a rare token that shares its bucket with frequent ones keeps its bucket). It needs only the B counts.

    Args:
        buckets: B.
        bucket_counts: the train count of every bucket (length B).
        missing: train rows (tokens) that were missing: their bucket also holds other tokens, so it is kept apart.
        min_count: the bucket floor.
    """

    def __init__(self, buckets: int, bucket_counts: np.ndarray, missing: int = 0, min_count: int = 1) -> None:
        if buckets < 1 or len(bucket_counts) != buckets:
            raise SchemaError(f"a hashed vocabulary of {buckets} buckets needs {buckets} bucket counts, got "
                              f"{len(bucket_counts)}; prepare again")
        self.buckets = int(buckets)
        self.bucket_counts = np.asarray(bucket_counts, dtype=np.int64)
        self.missing = int(missing)
        self.min_count = int(min_count)
        kept = self.bucket_counts >= self.min_count if self.min_count > 1 else np.ones(buckets, dtype=bool)
        order = np.lexsort((np.arange(buckets), -self.bucket_counts))  # fullest first, ties by bucket
        order = order[kept[order]]
        self.rank = np.full(buckets, OOV_ID - N_RESERVED, dtype=np.int64)  # under the floor: OOV after the offset
        self.rank[order] = np.arange(len(order))
        self.counts = np.zeros(len(order) + N_RESERVED, dtype=np.int64)
        self.counts[N_RESERVED:] = self.bucket_counts[order]
        self.counts[OOV_ID] = int(self.bucket_counts[~kept].sum())

    @classmethod
    def from_bucket_counts(cls, bucket_counts: np.ndarray, missing: int = 0, min_count: int = 1) -> HashedVocabulary:
        """Number the buckets at or above `min_count` by descending train count (ties by bucket)."""
        return cls(len(bucket_counts), bucket_counts, missing, min_count)

    @property
    def size(self) -> int:
        """Rows of the embedding table: the buckets at or above the floor plus the reserved ids."""
        return len(self.counts)

    def __len__(self) -> int:
        return self.size

    def lookup(self, values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int]:
        """Ids of `values` (null = missing token) and how many fell in buckets under the floor (OOV)."""
        ids = self.rank[hash_buckets_of(values, self.buckets)] + N_RESERVED
        return ids, int((ids == OOV_ID).sum()) if self.min_count > 1 else 0

    def token(self, i: int) -> str:
        """A readable name of id `i` (its hash bucket: the tokens in it are not kept)."""
        if i == PAD_ID:
            return "<pad>"
        if i == OOV_ID:
            return "<oov>"
        return f"<bucket {int(np.flatnonzero(self.rank == i - N_RESERVED)[0])}>"

    def collisions(self) -> dict[str, Any]:
        """Occupied buckets and the linear-counting estimates of distinct train tokens and of their share in a bucket.

        The share counts the tokens that share their bucket with another; saturated (every bucket occupied): the
        distinct estimate is a lower bound.
        """
        occupied = int((self.bucket_counts > 0).sum())
        b = self.buckets
        saturated = occupied >= b
        distinct = b * math.log(b) if saturated else -b * math.log1p(-occupied / b)
        shared = 0.0 if distinct <= 1 else 1.0 - math.exp(-(distinct - 1) / b)
        return {"occupied": occupied, "distinct_estimate": round(distinct), "shared_share": round(shared, 4),
                "saturated": saturated}

    def summary(self) -> dict[str, Any]:
        """What schema.json keeps beside the file reference."""
        floor = {"min_count": self.min_count, "floored_buckets": int(((self.bucket_counts > 0) & (
            self.bucket_counts < self.min_count)).sum())} if self.min_count > 1 else {}
        return {"size": self.size, "hash_buckets": self.buckets, **self.collisions(), **floor}

    def table(self) -> pa.Table:
        """Per bucket its id offset (-1: under the floor) and count, marked as hashed (what `save` writes)."""
        table = pa.table({"rank": pa.array(self.rank), "count": pa.array(self.bucket_counts)})
        return table.replace_schema_metadata({b"kind": KIND, b"hash_buckets": str(self.buckets).encode(),
                                              b"missing": str(self.missing).encode(),
                                              b"min_count": str(self.min_count).encode()})

    def save(self, path: Path) -> None:
        """One Arrow IPC file of `table()`."""
        write_vocab_table(self.table(), path)

    @classmethod
    def from_table(cls, table: pa.Table, path: Path) -> HashedVocabulary:
        """Inverse of `save` (`load_vocabulary` reads the file and dispatches here)."""
        meta = table.schema.metadata or {}
        try:
            buckets = int(meta[b"hash_buckets"])
            missing = int(meta.get(b"missing", b"0"))
            min_count = int(meta.get(b"min_count", b"1"))
            vocab = cls(buckets, table["count"].to_numpy(), missing, min_count)
        except (KeyError, ValueError, IndexError) as e:
            raise SchemaError(f"{path}: hashed vocabulary file is corrupt ({e}); prepare again") from e
        if not np.array_equal(vocab.rank, table["rank"].to_numpy()):
            raise SchemaError(f"{path}: hashed vocabulary file is corrupt (its ids do not follow its counts); "
                              "prepare again")
        return vocab

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HashedVocabulary):
            return NotImplemented
        return (self.buckets, self.min_count) == (other.buckets, other.min_count) and np.array_equal(
            self.bucket_counts, other.bucket_counts)

    __hash__ = None  # type: ignore[assignment]


class BucketCounter:
    """Train tokens counted per hash bucket while fitting: memory of B counts, whatever the rows."""

    def __init__(self, buckets: int) -> None:
        self.buckets = buckets
        self.counts = np.zeros(buckets, dtype=np.int64)
        self.missing = 0

    def update(self, values: pa.Array | pa.ChunkedArray) -> None:
        """Count one chunk of tokens (a null is the missing token, counted apart too)."""
        tokens = _tokens(values)
        self.counts += np.bincount(_buckets_of_tokens(tokens, self.buckets), minlength=self.buckets)
        self.missing += int(pc.sum(pc.equal(tokens, MISSING_TOKEN)).as_py() or 0)

    def vocabulary(self, min_count: int = 1) -> HashedVocabulary:
        """The hashed vocabulary of everything counted, buckets under `min_count` sent to OOV."""
        return HashedVocabulary.from_bucket_counts(self.counts, self.missing, min_count)


def load_vocabulary(path: Path) -> Vocabulary | HashedVocabulary:
    """A `Vocabulary`, or a `HashedVocabulary` where the file says the field is hashed."""
    return vocabulary_from_table(read_vocab_table(path), Path(path))


def vocabulary_from_table(table: pa.Table, where: Path) -> Vocabulary | HashedVocabulary:
    """The vocabulary a table written by `table()` holds (hashed where its metadata says so)."""
    if (table.schema.metadata or {}).get(b"kind") == KIND:
        return HashedVocabulary.from_table(table, where)
    return Vocabulary.from_table(table)
