"""`recnas data inspect`: the schema of a dataset and a per-field summary fitted on its train split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.compute as pc

from recnas.data.hashing import HashedVocabulary
from recnas.data.processor import FeatureProcessor
from recnas.data.readers import ReadReport, read_chunks
from recnas.data.schema import FieldType, Schema
from recnas.data.source import DatasetSource
from recnas.data.vocab import MISSING_TOKEN, N_RESERVED


@dataclass
class FieldSummary:
    """One row of the inspect table."""

    name: str
    type: str
    cardinality: int | None
    top: list[tuple[str, float]]
    missing_rate: float
    extra: str = ""


@dataclass
class DatasetSummary:
    """Everything `inspect` prints."""

    schema: Schema
    splits: dict[str, dict[str, Any]]
    fields: list[FieldSummary] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def split_counts(source: DatasetSource, split: str, on_bad_row: str) -> dict[str, Any]:
    """Rows, positives and skipped rows of one split (reads only what the reader must)."""
    report = ReadReport(source.splits[split])
    pos = 0.0
    for table in read_chunks(source.splits[split], source.schema, report, on_bad_row):
        pos += pc.sum(table[source.schema.label]).as_py() or 0.0
    return {"rows": report.rows, "positives": int(pos), "positive_rate": pos / max(report.rows, 1),
            "skipped": report.skipped, "path": str(source.splits[split])}


def summarize(source: DatasetSource, on_bad_row: str = "error", top_k: int = 3) -> DatasetSummary:
    """Fit the schema on train (with its own min_count) and describe every field."""
    proc = FeatureProcessor(source.schema, on_bad_row=on_bad_row)
    schema = proc.fit(source.train)
    rows = proc.fit_report.rows  # type: ignore[union-attr]
    splits = {s: split_counts(source, s, on_bad_row) for s in source.splits}
    out = DatasetSummary(schema, splits, notes=list(source.notes))
    for f in schema.fields:
        if f.type is FieldType.NUMERICAL:
            st = f.stats
            assert st is not None
            extra = f"mean {st.mean:.4g}, std {st.std:.4g}, min {st.min:.4g}, max {st.max:.4g}"
            if f.vocab is not None:
                extra += f"; {f.vocab.size - N_RESERVED} {f.buckets} buckets"
            out.fields.append(FieldSummary(f.name, f.type.value, None, [], st.missing / max(rows, 1), extra))
            continue
        v = f.vocab
        assert v is not None
        if isinstance(v, HashedVocabulary):
            out.fields.append(hashed_summary(f.name, f.type.value, v, rows, top_k))
            continue
        tokens = v.tokens
        counts = v.counts[N_RESERVED:]
        total = max(int(v.counts.sum()), 1)
        miss_idx = np.flatnonzero(pc.equal(tokens, MISSING_TOKEN).to_numpy(zero_copy_only=False))
        missing = int(counts[miss_idx[0]]) if len(miss_idx) else 0
        top = [(v.token(i + N_RESERVED), counts[i] / total) for i in range(min(top_k, len(tokens)))]
        extra = f"max_len {f.max_len}, separator {f.separator!r}" if f.type.needs_lengths else ""
        denom = rows if f.type is FieldType.CATEGORICAL else total
        card = len(tokens) - (1 if len(miss_idx) else 0)
        out.fields.append(FieldSummary(f.name, f.type.value, card, top, missing / max(denom, 1), extra))
    return out


def hashed_summary(name: str, ftype: str, v: HashedVocabulary, rows: int, top_k: int) -> FieldSummary:
    """A hashed field: its fullest buckets, and the estimated distinct tokens and how many of them share a bucket."""
    counts = v.counts[N_RESERVED:]
    total = max(int(counts.sum()), 1)
    top = [(v.token(i + N_RESERVED), counts[i] / total) for i in range(min(top_k, int((counts > 0).sum())))]
    c = v.collisions()
    extra = (f"hashed into {v.buckets:,} buckets, {c['occupied']:,} used; cardinality estimated (linear counting)"
             f"{', at least' if c['saturated'] else ''}; ~{c['shared_share']:.0%} of the tokens share a bucket")
    denom = rows if ftype == FieldType.CATEGORICAL.value else total
    return FieldSummary(name, ftype, c["distinct_estimate"], top, v.missing / max(denom, 1), extra)
