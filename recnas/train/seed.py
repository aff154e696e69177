"""Seeding: same seed and config, same metrics."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_seed(seed: int, threads: int) -> None:
    """Seed every generator and fix the thread count (same seed + config -> same metrics)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    # Denormal floats (e.g. Adam moments of rarely updated embedding rows decaying toward zero) make CPU
    # arithmetic many times slower; flushing them to zero changes no result that matters.
    torch.set_flush_denormal(True)
