"""Data layer: schema, readers, encoding, cache, batches and synthetic data (no torch.nn here).

Names are loaded on first use, so `recnas.data.processor` (what ONNX serving needs) imports no torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_NAMES = {
    "BatchIterator": "batches", "FieldBatch": "batches", "PreparedDataset": "cache", "load_prepared": "cache",
    "prepare": "cache", "FeatureProcessor": "processor", "FieldSpec": "schema", "FieldType": "schema",
    "NumericStats": "schema", "Schema": "schema", "SourceFormat": "schema", "DatasetSource": "source",
    "open_dataset": "source", "SynthConfig": "synthetic", "write_synthetic": "synthetic", "OOV_ID": "vocab",
    "PAD_ID": "vocab", "Vocabulary": "vocab",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'recnas.data' has no attribute {name!r}")
    return getattr(import_module(f"recnas.data.{_NAMES[name]}"), name)
