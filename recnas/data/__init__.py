"""Data layer: schema, readers, encoding, cache, batches and synthetic data (no torch.nn here)."""

from __future__ import annotations

from recnas.data.batches import BatchIterator, FieldBatch
from recnas.data.cache import PreparedDataset, load_prepared, prepare
from recnas.data.processor import FeatureProcessor
from recnas.data.schema import FieldSpec, FieldType, NumericStats, Schema, SourceFormat
from recnas.data.source import DatasetSource, open_dataset
from recnas.data.synthetic import SynthConfig, write_synthetic
from recnas.data.vocab import OOV_ID, PAD_ID, Vocabulary

__all__ = [
    "OOV_ID", "PAD_ID", "BatchIterator", "DatasetSource", "FeatureProcessor", "FieldBatch", "FieldSpec",
    "FieldType", "NumericStats", "PreparedDataset", "Schema", "SourceFormat", "SynthConfig", "Vocabulary",
    "load_prepared", "open_dataset", "prepare", "write_synthetic",
]
