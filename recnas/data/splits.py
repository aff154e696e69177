"""A prepared dataset with the batch iterators a run trains, validates and tests on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recnas.data.batches import BatchIterator
from recnas.data.cache import PreparedDataset


@dataclass
class Splits:
    """The prepared dataset and its batch iterators, as a run uses them."""

    ds: PreparedDataset
    train: BatchIterator
    valid: BatchIterator
    test: BatchIterator


def train_arrays(ds: PreparedDataset, max_rows: int | None) -> dict[str, np.ndarray]:
    """The train split, cut to its first `max_rows` rows when asked."""
    arrays = ds.splits["train"]
    if max_rows is None:
        return arrays
    return {k: v[:max_rows] for k, v in arrays.items()}
