"""recnas: AutoML for recommender (click-through-rate) models."""

from __future__ import annotations

__version__ = "0.1.0"

from recnas.errors import RecnasError

__all__ = ["RecnasError", "__version__"]
