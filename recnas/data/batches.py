"""`FieldBatch` and the batch iterator: slices of a seeded per-epoch permutation, no per-row Python."""

from __future__ import annotations

from collections.abc import Iterator
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
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if shuffle_block < 1 or (shuffle_window is not None and shuffle_window < shuffle_block):
            raise ValueError(f"need 1 <= shuffle_block <= shuffle_window, got {shuffle_block} and {shuffle_window}")
        self.tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
        self.n = int(arrays["y"].shape[0])
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.shuffle_window = shuffle_window
        self.shuffle_block = shuffle_block
        self.epoch = 0

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
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
        t = self.tensors
        stop = self.n - (self.n % self.batch_size if self.drop_last else 0)
        first = start * self.batch_size
        if self.shuffle and self.shuffle_window is not None:
            pending, served = np.zeros(0, dtype=np.int64), first
            for rows in self._windows(epoch, first):
                pending = np.concatenate([pending, rows])
                while len(pending) >= self.batch_size and served < stop:
                    yield self._gather(torch.from_numpy(pending[: self.batch_size]))
                    pending, served = pending[self.batch_size :], served + self.batch_size
            if len(pending) and served < stop:
                yield self._gather(torch.from_numpy(pending))
        elif self.shuffle:
            perm = self.permutation(epoch)
            for i in range(first, stop, self.batch_size):
                yield self._gather(perm[i : i + self.batch_size])
        else:
            for i in range(first, stop, self.batch_size):
                j = i + self.batch_size
                yield FieldBatch(
                    cat=t["cat"][i:j], num=t["num"][i:j], num_bucket=t["num_bucket"][i:j],
                    mv=t["mv"][i:j], mv_len=t["mv_len"][i:j], y=t["y"][i:j],
                )

    def __iter__(self) -> Iterator[FieldBatch]:
        epoch = self.epoch
        self.epoch += 1
        return self.iter_epoch(epoch)
