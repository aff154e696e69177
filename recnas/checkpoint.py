"""Saving and resuming state: saves are atomic, and a damaged or mismatched checkpoint is one clear error."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from recnas.errors import CacheError, RecnasError
from recnas.fileio import write_atomic

T = TypeVar("T")

# What torch.load and load_state_dict raise on a truncated, foreign or mismatched file (missing keys, other shapes).
_DAMAGED = (RuntimeError, KeyError, ValueError, TypeError, IndexError, EOFError, OSError, pickle.UnpicklingError)


def save_checkpoint(path: Path, blob: dict[str, Any]) -> None:
    """`torch.save(blob)` to `path` through a temporary file, so a kill mid-save keeps the previous checkpoint."""
    write_atomic(path, lambda tmp: torch.save(blob, tmp))


def resume_from(path: Path, restore: Callable[[dict[str, Any]], T], what: str) -> T:
    """Load `path` with torch's restricted unpickler and pass the dict to `restore`.

    The unpickler admits tensors, numbers, strings and containers, never code. Any failure of loading or restoring
    becomes a CacheError that names the file and says to delete it and start `what` again.
    """
    try:
        blob = torch.load(path, weights_only=True)
        if not isinstance(blob, dict):
            raise TypeError(f"expected a dict, found {type(blob).__name__}")
        return restore(blob)
    except RecnasError:
        raise
    except _DAMAGED as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise CacheError(f"{path}: cannot resume the {what} from this checkpoint ({reason}); "
                         f"delete it to start the {what} again") from None
