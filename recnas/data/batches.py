"""`FieldBatch` and the batch iterator: slices of a seeded per-epoch permutation, no per-row Python."""

from __future__ import annotations

import mmap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch


@dataclass
class FieldBatch:
    """One mini-batch of encoded fields.

    cat `[B, F_cat]` long, num `[B, F_num]` float (NaN = missing), num_bucket `[B, F_bucketized]`
    long, mv `[B, F_mv, L]` long (0 = padding), mv_len `[B, F_mv]` long, y `[B]` float.
    """

    cat: torch.Tensor
    num: torch.Tensor
    num_bucket: torch.Tensor
    mv: torch.Tensor
    mv_len: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device | str) -> FieldBatch:
        """The same batch on `device`."""
        return FieldBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FieldBatch:
        """Wrap encoded numpy arrays (shared memory, no copy)."""
        return cls(**{f.name: torch.from_numpy(np.ascontiguousarray(arrays[f.name])) for f in fields(cls)})


READ_BLOCKS = 8  # blocks of the block-wise shuffle read between two drops of the mapped pages


def file_mappings(arrays: Iterable[np.ndarray]) -> list[mmap.mmap]:
    """The memory maps under `arrays` (np.memmap and its views), each once."""
    found: dict[int, mmap.mmap] = {}
    for a in arrays:
        base = a
        while base is not None and not isinstance(base, mmap.mmap):
            base = getattr(base, "base", None)
        if isinstance(base, mmap.mmap):
            found[id(base)] = base
    return list(found.values())


class BatchIterator:
    """Serves `FieldBatch`es from encoded arrays.

    With `shuffle`, epoch `e` gathers rows in the order `default_rng([seed, e]).permutation(n)`, so the same seed
    gives the same batches on every run; without it, batches are zero-copy slices. With `shuffle_window` (rows),
    the shuffle is block-wise instead, for data read from disk: blocks of `shuffle_block` consecutive rows are
    visited in a seeded order, and the rows of each window of `shuffle_window // shuffle_block` blocks are
    permuted among themselves. The epoch's order then holds at most one window of indices in memory (a full
    permutation holds n), and the rows a batch reads lie in at most that many runs of the file. Iterating it again
    starts the next epoch.
    """

    def __init__(
        self, arrays: dict[str, np.ndarray], batch_size: int = 4096, shuffle: bool = True,
        seed: int = 0, drop_last: bool = False, shuffle_window: int | None = None, shuffle_block: int = 1024,
        rank: int = 0, world: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if shuffle_block < 1 or (shuffle_window is not None and shuffle_window < shuffle_block):
            raise ValueError(f"need 1 <= shuffle_block <= shuffle_window, got {shuffle_block} and {shuffle_window}")
        self.tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
        self._maps = file_mappings(arrays.values())
        self.n = int(arrays["y"].shape[0])
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.shuffle_window = shuffle_window
        self.shuffle_block = shuffle_block
        if not 0 <= rank < world:
            raise ValueError(f"need 0 <= rank < world, got rank {rank} of {world}")
        self.rank, self.world = rank, world
        self.epoch = 0

    def release_pages(self) -> None:
        """Drop the pages of memory-mapped arrays this process has read (they stay in the OS page cache).

        Without it, every page an epoch touched counts in the process's resident memory until the end, so RSS grows
        with the data; with it, RSS holds one window (block-wise shuffle) or one batch (unshuffled scoring).
        """
        for m in self._maps:
            m.madvise(mmap.MADV_DONTNEED)

    def shard(self, rank: int, world: int) -> BatchIterator:
        """The same batches, as rank `rank` of `world` data-parallel processes reads them.

        Shuffled: the same seeded order on every rank; each global batch of `batch_size` rows is dealt out row by
        row (rank r takes rows r, r + world, ...), so ranks see disjoint rows and the same number of batches, and
        together the batches of one process. A last global batch under two rows per rank is left out (batch norm
        cannot train on one row, and every rank must take the same steps). Unshuffled (scoring): rank r reads the
        r-th contiguous share of the rows.
        """
        return BatchIterator({k: t.numpy() for k, t in self.tensors.items()}, self.batch_size, self.shuffle,
                             self.seed, self.drop_last, self.shuffle_window, self.shuffle_block, rank, world)

    def _rows(self) -> tuple[int, int]:
        """The rows this iterator reads unshuffled: this rank's contiguous share."""
        return self.n * self.rank // self.world, self.n * (self.rank + 1) // self.world

    def _smallest(self) -> int:
        """Fewest rows a shuffled global batch must hold to be served (2 per rank when sharded)."""
        return 2 * self.world if self.world > 1 else 1

    def __len__(self) -> int:
        if not self.shuffle:
            lo, hi = self._rows()
            full, rest = divmod(hi - lo, self.batch_size)
        else:
            full, rest = divmod(self.n, self.batch_size)
            rest = rest if rest >= self._smallest() else 0
        return full if (self.drop_last or rest == 0) else full + 1

    def permutation(self, epoch: int) -> torch.Tensor:
        """Row order of `epoch` (the whole order at once; the block-wise shuffle yields it window by window)."""
        if self.shuffle_window is not None:
            return torch.from_numpy(np.concatenate([*self._windows(epoch, 0), np.zeros(0, dtype=np.int64)]))
        return torch.from_numpy(np.random.default_rng([self.seed, epoch]).permutation(self.n))

    def _windows(self, epoch: int, skip: int) -> Iterator[np.ndarray]:
        """The block-wise order of `epoch`, one window of row indices at a time, its first `skip` rows left out."""
        assert self.shuffle_window is not None
        b = self.shuffle_block
        per_window = max(self.shuffle_window // b, 1)
        blocks = np.random.default_rng([self.seed, epoch]).permutation(-(-self.n // b))
        for w, lo in enumerate(range(0, len(blocks), per_window)):
            starts = blocks[lo : lo + per_window] * b
            sizes = np.minimum(b, self.n - starts)
            size = int(sizes.sum())
            if skip >= size:  # a resumed epoch: whole windows before the restart point need no indices
                skip -= size
                continue
            rows = np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(size)
            yield rows[np.random.default_rng([self.seed, epoch, w]).permutation(size)][skip:]
            skip = 0

    def _gather(self, idx: torch.Tensor) -> FieldBatch:
        t = self.tensors
        return FieldBatch(
            cat=t["cat"].index_select(0, idx), num=t["num"].index_select(0, idx),
            num_bucket=t["num_bucket"].index_select(0, idx), mv=t["mv"].index_select(0, idx),
            mv_len=t["mv_len"].index_select(0, idx), y=t["y"].index_select(0, idx),
        )

    def iter_epoch(self, epoch: int, start: int = 0) -> Iterator[FieldBatch]:
        """Batches of one epoch, from batch number `start` on (a resumed fit continues mid-epoch)."""
        if not self.shuffle:
            lo, hi = self._rows()
            stop = hi - ((hi - lo) % self.batch_size if self.drop_last else 0)
            t = self.tensors
            for i in range(lo + start * self.batch_size, stop, self.batch_size):
                j = min(i + self.batch_size, hi)
                yield FieldBatch(
                    cat=t["cat"][i:j], num=t["num"][i:j], num_bucket=t["num_bucket"][i:j],
                    mv=t["mv"][i:j], mv_len=t["mv_len"][i:j], y=t["y"][i:j],
                )
                self.release_pages()  # views of the batch stay valid: a dropped page is read again from the file
            return
        if self.shuffle_window is not None:
            for columns in self._window_batches(epoch, start):
                if len(columns["y"]) < self._smallest():
                    continue
                if self.world > 1:
                    columns = {k: v[self.rank :: self.world].contiguous() for k, v in columns.items()}
                yield FieldBatch(**columns)
            return
        perm = self.permutation(epoch).numpy()
        stop = self.n - (self.n % self.batch_size if self.drop_last else 0)
        for i in range(start * self.batch_size, stop, self.batch_size):
            rows = perm[i : i + self.batch_size]
            if len(rows) >= self._smallest():
                yield self._gather(torch.from_numpy(np.ascontiguousarray(rows[self.rank :: self.world])))

    def _window_batches(self, epoch: int, start: int) -> Iterator[dict[str, torch.Tensor]]:
        """The global batches of a block-wise epoch, from batch number `start` on, as columns.

        Each window's rows are copied out of the arrays (`_read_rows`) and served in their shuffled order from the
        copy: a process reading a memory-mapped cache holds one window of rows, not every page the epoch touched.
        """
        stop = self.n - (self.n % self.batch_size if self.drop_last else 0)
        served = start * self.batch_size
        left: dict[str, torch.Tensor] | None = None  # rows of the last window not served yet (under one batch)
        for order in self._windows(epoch, served):
            rows = np.sort(order)
            window = self._read_rows(rows)
            local = torch.from_numpy(np.searchsorted(rows, order))  # the shuffled order, as positions in the copy
            at, size = 0, len(order)
            if left is not None and len(left["y"]):  # a batch across the two windows: their rows in order
                at = min(self.batch_size - len(left["y"]), size)
                joined = {k: torch.cat([left[k], v.index_select(0, local[:at])]) for k, v in window.items()}
                if len(joined["y"]) < self.batch_size:  # a window shorter than the gap: keep collecting
                    left = joined
                    continue
                if served < stop:
                    yield joined
                    served += self.batch_size
            while size - at >= self.batch_size and served < stop:
                yield {k: v.index_select(0, local[at : at + self.batch_size]) for k, v in window.items()}
                at, served = at + self.batch_size, served + self.batch_size
            left = {k: v.index_select(0, local[at:]) for k, v in window.items()}
        if left is not None and len(left["y"]) and served < stop:
            yield left

    def _read_rows(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """Copies of the arrays' `rows` (sorted), read a few blocks at a time, dropping the mapped pages after each.

        A page fault maps a whole page-cache folio (up to 2 MiB), so reading a window's blocks before dropping any
        would map up to a folio per block: dropping them every `READ_BLOCKS` blocks bounds that to a few MiB.
        """
        out = {k: torch.empty((len(rows), *t.shape[1:]), dtype=t.dtype) for k, t in self.tensors.items()}
        step = READ_BLOCKS * self.shuffle_block
        for lo in range(0, len(rows), step):
            idx = torch.from_numpy(rows[lo : lo + step])
            for k, t in self.tensors.items():
                torch.index_select(t, 0, idx, out=out[k][lo : lo + len(idx)])
            self.release_pages()
        return out

    def __iter__(self) -> Iterator[FieldBatch]:
        epoch = self.epoch
        self.epoch += 1
        return self.iter_epoch(epoch)
