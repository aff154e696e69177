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

    With `shuffle`, epoch `e` gathers rows in the order `default_rng([seed, e]).permutation(n)`,
    so the same seed gives the same batches on every run; without it, batches are zero-copy slices.
    Iterating it again starts the next epoch.
    """

    def __init__(
        self, arrays: dict[str, np.ndarray], batch_size: int = 4096, shuffle: bool = True,
        seed: int = 0, drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
        self.n = int(arrays["y"].shape[0])
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def permutation(self, epoch: int) -> torch.Tensor:
        """Row order of `epoch`."""
        return torch.from_numpy(np.random.default_rng([self.seed, epoch]).permutation(self.n))

    def iter_epoch(self, epoch: int, start: int = 0) -> Iterator[FieldBatch]:
        """Batches of one epoch, from batch number `start` on (a resumed fit continues mid-epoch)."""
        t = self.tensors
        stop = self.n - (self.n % self.batch_size if self.drop_last else 0)
        first = start * self.batch_size
        if self.shuffle:
            perm = self.permutation(epoch)
            for i in range(first, stop, self.batch_size):
                idx = perm[i : i + self.batch_size]
                yield FieldBatch(
                    cat=t["cat"].index_select(0, idx), num=t["num"].index_select(0, idx),
                    num_bucket=t["num_bucket"].index_select(0, idx), mv=t["mv"].index_select(0, idx),
                    mv_len=t["mv_len"].index_select(0, idx), y=t["y"].index_select(0, idx),
                )
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
