"""Atomic file writes: a run's stages are skipped when their output exists, so no half-written file may appear."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a sibling temporary file, then rename it over `path` (a kill leaves the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    """`path.write_text(text)`, atomically."""
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_jsonl_atomic(path: Path, records: Iterable[object]) -> None:
    """One JSON object per line (a search's history.jsonl), atomically."""
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks (an export's preprocess.json names its model.onnx by it)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
