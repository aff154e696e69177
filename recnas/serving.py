"""Serving an exported model: preprocess.json + onnxruntime, with no torch and none of recnas's training code.

`OnnxModel.load(folder)` reads an export written by `recnas export` (or a run folder holding one in `export/`),
checks that preprocess.json and model.onnx belong together, and scores encoded arrays; `predict_onnx` scores raw
CSV/Parquet rows chunk by chunk through the same encoding (`recnas.data.processor`) and the same writer
(`recnas.scoring`) as the torch path, so both write the same predictions.csv and count unseen values alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recnas.data.processor import EncodeReport
from recnas.data.schema import Schema
from recnas.errors import ConfigError, DataError, RecnasError
from recnas.fileio import file_sha256
from recnas.scoring import data_file, score_file

PREPROCESS = "preprocess.json"
MODEL_FILE = "model.onnx"
FORMAT = "recnas-preprocess"
FORMAT_VERSION = 1  # what `recnas export` writes
SUPPORTED_VERSIONS = (FORMAT_VERSION,)
DTYPES = {"int64": np.int64, "float32": np.float32}


def export_folder(path: Path) -> Path:
    """`path` if it holds preprocess.json, else its `export/` (a run folder exported with the default --out)."""
    for candidate in (path, path / "export", path / "retrain" / "export"):
        if (candidate / PREPROCESS).is_file():
            return candidate
    raise DataError(f"{path}: no {PREPROCESS} here or in {path / 'export'}; run `recnas export {path}` first")


@dataclass
class OnnxModel:
    """An exported model ready to score: its schema (with vocabularies), input layout and onnxruntime session."""

    folder: Path
    schema: Schema
    meta: dict[str, Any]
    session: Any

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None) -> OnnxModel:
        """Read and check an export folder (or a run folder with `export/`); `threads` defaults to the run's."""
        folder = export_folder(Path(path))
        meta = _read_preprocess(folder / PREPROCESS)
        model_path = folder / str(meta.get("model_file", MODEL_FILE))
        if not model_path.is_file():
            raise DataError(f"{model_path}: missing; export again (`recnas export`)")
        if meta.get("model_sha256") != file_sha256(model_path):
            raise DataError(f"{folder / PREPROCESS}: written for another {model_path.name} (its checksum differs); "
                            "the two files of an export belong together: export again")
        try:
            schema = Schema.from_dict(meta["schema"])
        except RecnasError as e:
            raise DataError(f"{folder / PREPROCESS}: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{folder / PREPROCESS}: its schema is damaged ({e.__class__.__name__}: {e}); "
                            "export again") from None
        session = _session(model_path, threads or int(meta.get("threads", 1)))
        model = cls(folder, schema, meta, session)
        try:
            model._check_layout()
        except (KeyError, TypeError, IndexError) as e:
            raise DataError(f"{folder / PREPROCESS}: its inputs are damaged ({e.__class__.__name__}: {e}); "
                            "export again") from None
        return model

    def _check_layout(self) -> None:
        """The graph's inputs are the ones preprocess.json describes (names, dtypes, column counts)."""
        declared = {e["name"]: e for e in self.meta["inputs"]}
        graph = {i.name: i for i in self.session.get_inputs()}
        where = self.folder / PREPROCESS
        if set(declared) != set(graph):
            raise DataError(f"{where}: describes inputs {sorted(declared)} but the model takes {sorted(graph)}; "
                            "export again")
        for name, entry in declared.items():
            want = list(entry["shape"][1:])
            got = list(graph[name].shape[1:])
            if got != want or len(entry["fields"]) != want[0]:
                raise DataError(f"{where}: input {name!r} has shape {entry['shape']} there but {graph[name].shape} "
                                "in the model; the files belong to different exports: export again")

    def probabilities(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Click probabilities `[rows]` of encoded arrays (the keys of a `FieldBatch`)."""
        return self._run(arrays)[0]

    def logits(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Logits `[rows]` of encoded arrays."""
        return self._run(arrays)[1]

    def _run(self, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        feed = {e["name"]: np.ascontiguousarray(arrays[e["name"]], dtype=DTYPES[e["dtype"]])
                for e in self.meta["inputs"]}
        return self.session.run(["probability", "logit"], feed)


def _read_preprocess(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not readable JSON ({e.__class__.__name__}); export again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a preprocess.json written by `recnas export`; export again")
    if meta.get("version") not in SUPPORTED_VERSIONS:
        raise DataError(f"{path}: format version {meta.get('version')!r}, this recnas reads {SUPPORTED_VERSIONS}; "
                        "export again with this version")
    if not isinstance(meta.get("inputs"), list) or not isinstance(meta.get("schema"), dict):
        raise DataError(f"{path}: its inputs or schema are missing; export again")
    return meta


def _session(model_path: Path, threads: int) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("scoring with --engine onnx needs onnxruntime: pip install 'recnas[export]' "
                          "(`make setup` installs it)") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(int(threads), 1)
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for a damaged file
        reason = (str(e).splitlines() or ["damaged"])[0][:160]
        raise DataError(f"{model_path}: not a readable ONNX model ({reason}); export again") from None


def predict_onnx(path: str | Path, data: str | Path, out: str | Path, batch_size: int = 4096,
                 threads: int | None = None) -> tuple[dict[str, Any], EncodeReport]:
    """Score a data file (or a dataset folder's test split) with an exported model; writes `out` as CSV."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    model = OnnxModel.load(path, threads)

    def scorer(arrays: dict[str, np.ndarray]) -> np.ndarray:
        n = len(arrays["y"])
        parts = [model.logits({k: v[i : i + batch_size] for k, v in arrays.items()}) for i in range(0, n, batch_size)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    return score_file(model.schema, data_file(data, model.schema), scorer, Path(out))


__all__ = ["OnnxModel", "export_folder", "predict_onnx"]
