"""Search strategies (gradient one-shot, sampling) and their optimisers."""

from __future__ import annotations

from recnas.search.grda import GRDA, c_for_threshold, grda_threshold

__all__ = ["GRDA", "c_for_threshold", "grda_threshold"]
