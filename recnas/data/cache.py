"""Encode a dataset once into contiguous on-disk arrays, keyed by a hash of sources + schema + options.

Layout of one prepared dataset (`<cache root>/<name>-<key>/`):
`manifest.json` (key, sources, rows, array shapes, dtypes and sha256), `schema.json` + `vocab/`
(the fitted state), and `<split>/<array>.bin` raw little-endian arrays opened with `np.memmap`.
The folder is built under a temporary name and renamed at the end, so an interrupted prepare never
leaves a folder that looks valid. A second prepare with the same key checks the arrays against
their sha256 and does nothing; a stale key (changed source, schema or option) gets a new folder, and
a corrupt one is rebuilt. Processes preparing the same dataset at once (parallel tuning trials) take
turns on a lock file beside the folder, so one builds it and the others reuse it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recnas.data.batches import BatchIterator
from recnas.data.processor import ARRAY_DTYPES, EncodeReport, FeatureProcessor
from recnas.data.readers import DEFAULT_CHUNK_ROWS, ReadReport
from recnas.data.schema import Schema
from recnas.data.source import DatasetSource
from recnas.errors import CacheError, RecnasError
from recnas.fileio import file_sha256

CACHE_FORMAT = 2  # 2: numerical statistics hold the levels of few-valued integer fields
FULL_HASH_LIMIT = 256 << 20
SAMPLE_BYTES = 4 << 20


def default_cache_root() -> Path:
    """`$RECNAS_CACHE_DIR`, else `~/.cache/recnas`."""
    return Path(os.environ.get("RECNAS_CACHE_DIR", Path.home() / ".cache" / "recnas"))


def file_fingerprint(path: Path) -> dict[str, Any]:
    """Content hash of a source file: all of it up to 256 MiB, else size + head + tail samples."""
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if st.st_size <= FULL_HASH_LIMIT:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
            how = "full"
        else:
            h.update(fh.read(SAMPLE_BYTES))
            fh.seek(st.st_size - SAMPLE_BYTES)
            h.update(fh.read(SAMPLE_BYTES))
            h.update(str(st.st_mtime_ns).encode())
            how = "head+tail+mtime"
    return {"path": str(path.resolve()), "size": st.st_size, "sha256": h.hexdigest(), "hash": how}


def cache_key(source: DatasetSource, on_bad_row: str) -> tuple[str, dict[str, Any]]:
    """Hash of everything the encoded arrays depend on, and the description it was made from."""
    import recnas

    desc = {
        "cache_format": CACHE_FORMAT,
        "recnas": recnas.__version__,  # a new release may encode differently: never reuse across versions
        "sources": {s: file_fingerprint(p) for s, p in sorted(source.splits.items())},
        "schema": source.schema.to_dict(),
        "options": {"on_bad_row": on_bad_row},
    }
    blob = json.dumps({**desc, "sources": {s: d["sha256"] for s, d in desc["sources"].items()}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest(), desc


@dataclass
class PreparedDataset:
    """A prepared dataset: fitted schema plus memory-mapped arrays per split."""

    path: Path
    schema: Schema
    manifest: dict[str, Any]
    splits: dict[str, dict[str, np.ndarray]]
    reused: bool = False
    notes: list[str] = field(default_factory=list)

    def rows(self, split: str) -> int:
        """Number of rows of `split`."""
        return int(self.manifest["splits"][split]["rows"])

    def batches(self, split: str, batch_size: int = 4096, shuffle: bool | None = None,
                seed: int = 0, drop_last: bool = False) -> BatchIterator:
        """A batch iterator over `split` (shuffled by default for train only)."""
        if split not in self.splits:
            raise CacheError(f"{self.path}: no split {split!r}; it has {sorted(self.splits)}")
        shuffle = (split == "train") if shuffle is None else shuffle
        return BatchIterator(self.splits[split], batch_size, shuffle, seed, drop_last)


class _ArrayWriter:
    """Appends chunks to one raw array file while hashing them."""

    def __init__(self, path: Path, dtype: type) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.fh = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.hash = hashlib.sha256()
        self.rows = 0
        self.tail: tuple[int, ...] = ()

    def write(self, arr: np.ndarray) -> None:
        data = np.ascontiguousarray(arr, dtype=self.dtype)
        self.tail = data.shape[1:]
        buf = data.tobytes()
        self.fh.write(buf)
        self.hash.update(buf)
        self.rows += data.shape[0]

    def close(self) -> dict[str, Any]:
        self.fh.close()
        return {"dtype": self.dtype.str, "shape": [self.rows, *self.tail], "sha256": self.hash.hexdigest()}


def load_prepared(path: str | Path, verify: str = "size") -> PreparedDataset:
    """Open a prepared folder. `verify`: `size` (fast: shapes vs file sizes) or `full` (sha256).

    Where the folder has its lock file (`prepare` made it), the folder is read under a shared lock, so a reader waits
    while another process rebuilds it (`prepare(force=True)`) instead of reading a half-replaced folder.
    """
    path = Path(path)
    with _shared(path.parent / f".{path.name}.lock"):
        return _load_prepared(path, verify)


@contextmanager
def _shared(lock: Path) -> Iterator[None]:
    """A shared lock on `lock` where it exists and can be opened (no POSIX locks or no access: no lock)."""
    try:
        import fcntl

        fh = open(lock) if lock.is_file() else None  # noqa: SIM115  (closed below)
    except (ImportError, OSError):
        fh = None
    if fh is None:
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load_prepared(path: Path, verify: str) -> PreparedDataset:
    """`load_prepared` without the lock (`prepare` holds the exclusive one)."""
    man_path = path / "manifest.json"
    if not man_path.is_file():
        raise CacheError(f"{path}: no manifest.json; this is not a prepared dataset (run `recnas data prepare`)")
    try:
        manifest = json.loads(man_path.read_text())
    except json.JSONDecodeError as e:
        raise CacheError(f"{man_path}: corrupt manifest ({e}); delete the folder and prepare again") from e
    if not isinstance(manifest, dict) or manifest.get("cache_format") != CACHE_FORMAT:
        raise CacheError(f"{path}: not a recnas cache of format {CACHE_FORMAT}; prepare again")
    try:
        return _open_arrays(path, manifest, verify)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, RecnasError):
            raise
        raise CacheError(f"{man_path}: the manifest is damaged ({type(e).__name__}: {e}); prepare again") from e


def _open_arrays(path: Path, manifest: dict[str, Any], verify: str) -> PreparedDataset:
    schema = Schema.load(path)
    splits: dict[str, dict[str, np.ndarray]] = {}
    for split, info in manifest["splits"].items():
        arrays = {}
        for name, meta in info["arrays"].items():
            f = path / split / f"{name}.bin"
            dtype = np.dtype(meta["dtype"])
            shape = tuple(meta["shape"])
            expected = int(np.prod(shape)) * dtype.itemsize
            if not f.is_file() or f.stat().st_size != expected:
                have = f.stat().st_size if f.is_file() else "missing"
                raise CacheError(f"{f}: expected {expected} bytes, found {have}; the cache is corrupt")
            if verify == "full" and file_sha256(f) != meta["sha256"]:
                raise CacheError(f"{f}: checksum mismatch; the cache is corrupt")
            if expected == 0:
                arrays[name] = np.zeros(shape, dtype=dtype)
            else:
                arrays[name] = np.memmap(f, dtype=dtype, mode="c", shape=shape)
        splits[split] = arrays
    return PreparedDataset(path, schema, manifest, splits)


def prepare(
    source: DatasetSource, cache_root: str | Path | None = None, on_bad_row: str = "error",
    force: bool = False, chunk_rows: int = DEFAULT_CHUNK_ROWS, log: Callable[[str], None] | None = None,
) -> PreparedDataset:
    """Encode every split of `source` into the cache (a no-op when a valid copy exists)."""
    log = log or (lambda _m: None)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    key, desc = cache_key(source, on_bad_row)
    target = root / f"{source.schema.name}-{key[:16]}"
    if root.exists() and not root.is_dir():
        raise CacheError(f"{root}: the cache folder is a file; point data.cache_dir (or RECNAS_CACHE_DIR) at a folder")
    if target.exists() and not target.is_dir():
        raise CacheError(f"{target}: a file sits where this dataset's cache goes; move or delete it and run again")
    with _exclusive(root, target.name):
        return _prepare_unlocked(source, root, target, key, desc, on_bad_row, force, chunk_rows, log)


@contextmanager
def _exclusive(root: Path, name: str) -> Iterator[None]:
    """Hold an exclusive lock on `<root>/.<name>.lock` (released when the process dies, so never stale)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CacheError(f"{root}: a part of the cache path is a file, not a folder; point data.cache_dir (or "
                         "RECNAS_CACHE_DIR) at a folder") from None
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): concurrent prepares of one dataset are not guarded
        yield
        return
    with open(root / f".{name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _prepare_unlocked(
    source: DatasetSource, root: Path, target: Path, key: str, desc: dict[str, Any], on_bad_row: str,
    force: bool, chunk_rows: int, log: Callable[[str], None],
) -> PreparedDataset:
    """The body of `prepare`, run while holding the dataset's lock."""
    notes: list[str] = []
    if target.exists() and not force:
        try:
            ds = _load_prepared(target, verify="full")
            if ds.manifest.get("key") == key:
                ds.reused = True
                ds.notes = list(ds.manifest.get("notes", []))
                for note in ds.notes:  # what the fit saw is still true of this cache
                    log(note)
                return ds
            notes.append(f"cache {target} has another key; rebuilding")
        except RecnasError as e:  # a damaged manifest, array or schema.json: rebuild it
            notes.append(f"{e}; rebuilding")
        log(notes[-1])
    tmp = root / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except (FileExistsError, NotADirectoryError):
        raise CacheError(f"{root}: a part of the cache path is a file, not a folder; point data.cache_dir (or "
                         "RECNAS_CACHE_DIR) at a folder") from None
    t0 = time.perf_counter()
    try:
        proc = FeatureProcessor(source.schema, on_bad_row=on_bad_row, chunk_rows=chunk_rows)
        schema = proc.fit(source.train)
        log(f"fitted vocabularies on {source.train} ({proc.fit_report.rows:,} rows)")  # type: ignore[union-attr]
        for note in proc.notes:
            log(note)
        notes += proc.notes
        schema.save(tmp)
        split_info = {}
        for split, src_path in source.splits.items():
            (tmp / split).mkdir()
            writers = {k: _ArrayWriter(tmp / split / f"{k}.bin", dt) for k, dt in ARRAY_DTYPES.items()}
            total = EncodeReport()
            read = ReadReport(src_path)
            for arrays, rep in proc.transform_chunks(src_path, read):
                total.add(rep)
                for k, arr in arrays.items():
                    writers[k].write(arr)
            split_info[split] = {
                "rows": total.rows, "positives": total.positives, "skipped_rows": read.skipped,
                "skipped_lines": read.skipped_lines, "oov": total.oov, "truncated": total.truncated,
                "arrays": {k: w.close() for k, w in writers.items()},
            }
            oov = sum(total.oov.values())
            log(f"encoded {split}: {total.rows:,} rows, {oov:,} unseen values -> OOV"
                + (f", {read.skipped} malformed rows skipped" if read.skipped else ""))
        manifest = {**desc, "key": key, "name": source.schema.name, "created": time.time(), "notes": proc.notes,
                    "seconds": round(time.perf_counter() - t0, 3), "splits": split_info}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ds = _load_prepared(target, "size")
    ds.notes = notes
    return ds
