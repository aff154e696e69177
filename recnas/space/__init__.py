"""Searchable blocks: the model space (`Choice`, `Space`, the `SearchableBlock` protocol)."""

from __future__ import annotations

from recnas.space import autodis  # noqa: F401  (registers the `autodis` numerical encoder)
from recnas.space.choice import Choice, Sample, SearchableBlock, Space

__all__ = ["Choice", "Sample", "SearchableBlock", "Space"]
