"""`recnas export`: a run folder's model as `model.onnx` plus `preprocess.json`, for serving without recnas's torch.

`model.onnx` takes the encoded tensors of a batch (`cat`, `num`, `num_bucket`, `mv`, `mv_len`: the arrays of a
`FieldBatch`, batch size free) and returns `probability` and `logit` `[batch]`. `preprocess.json` holds what turns
raw rows into those tensors: the fitted schema with its vocabularies inlined (ids by frequency, 0 = padding,
1 = OOV), numerical statistics and bucket edges, and which field is which column of each input. Tables are
exported as the model stores them (a mixed-width embedding keeps one table per width), so the file's size follows
the embedding parameters the search saved. Export checks onnxruntime against torch on seeded probe rows (missing
numbers, OOV and padding ids, empty multi-valued fields included) and refuses a graph that does not reproduce
the model.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import recnas
from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.data.vocab import MISSING_TOKEN, OOV_ID, PAD_ID
from recnas.errors import ConfigError, DataError
from recnas.experiment.run import load_run, model_folder
from recnas.fileio import file_sha256, write_atomic, write_text_atomic
from recnas.serving import FORMAT, FORMAT_VERSION, MODEL_FILE, PREPROCESS, OnnxModel

INPUTS = ("cat", "num", "num_bucket", "mv", "mv_len")
OUTPUTS = ("probability", "logit")
PROBE_ROWS = 512
TOLERANCE = 1e-5  # max abs difference of probabilities between onnxruntime and torch on the probe rows
OPSET = 18


class OnnxGraph(nn.Module):
    """A zoo model (any `CTRModel`, frozen parts included) as a function of the encoded input tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, cat: torch.Tensor, num: torch.Tensor, num_bucket: torch.Tensor, mv: torch.Tensor,
                mv_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(probability, logit) `[batch]` of one encoded batch."""
        logit = self.model(FieldBatch(cat, num, num_bucket, mv, mv_len, y=num.new_zeros(num.shape[0])))
        return torch.sigmoid(logit), logit


def input_layout(schema: Schema) -> list[dict[str, Any]]:
    """Name, dtype, shape and fields of each input of the exported graph (the columns' order is the fields')."""
    def entry(name: str, dtype: str, fields: list[str], extra: tuple[int, ...] = ()) -> dict[str, Any]:
        return {"name": name, "dtype": dtype, "shape": ["batch", len(fields), *extra], "fields": fields}

    mvs = [f.name for f in schema.multi_categorical]
    return [entry("cat", "int64", [f.name for f in schema.categorical]),
            entry("num", "float32", [f.name for f in schema.numerical]),
            entry("num_bucket", "int64", [f.name for f in schema.bucketized]),
            entry("mv", "int64", mvs, (schema.max_len,)), entry("mv_len", "int64", mvs)]


def probe_arrays(schema: Schema, rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded encoded rows covering the edge cases: OOV and padding ids, missing numbers, empty multi-valued lists."""
    rng = np.random.default_rng(seed)
    cat = np.stack([rng.integers(0, max(f.cardinality, 1), rows) for f in schema.categorical], axis=1) \
        if schema.categorical else np.zeros((rows, 0), np.int64)
    cat[: min(rows, 3)] = OOV_ID
    num = np.zeros((rows, len(schema.numerical)), np.float32)
    for j, f in enumerate(schema.numerical):
        st = f.stats
        lo, hi = (st.min, st.max) if st is not None and st.count else (0.0, 1.0)
        num[:, j] = rng.uniform(lo, hi, rows)
        num[rng.random(rows) < 0.1, j] = np.nan
    buck = np.stack([rng.integers(0, max(f.cardinality, 1), rows) for f in schema.bucketized], axis=1) \
        if schema.bucketized else np.zeros((rows, 0), np.int64)
    mvs, length = schema.multi_categorical, schema.max_len
    mv = np.full((rows, len(mvs), length), PAD_ID, np.int64)
    mv_len = np.zeros((rows, len(mvs)), np.int64)
    for j, f in enumerate(mvs):
        n = rng.integers(0, (f.max_len or length) + 1, rows)
        n[: min(rows, 2)] = 0  # empty lists
        mv_len[:, j] = n
        for i in range(rows):
            mv[i, j, : n[i]] = rng.integers(OOV_ID, max(f.cardinality, 2), n[i])
    return {"cat": cat.astype(np.int64), "num": num, "num_bucket": buck.astype(np.int64), "mv": mv, "mv_len": mv_len}


def _quiet() -> contextlib.ExitStack:
    """Silence the exporter's progress lines and warnings (its result is checked instead)."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    for name in ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo"):
        logger = logging.getLogger(name)
        previous = logger.level
        logger.setLevel(logging.ERROR)
        stack.callback(logger.setLevel, previous)
    return stack


def _export_graph(graph: OnnxGraph, example: dict[str, np.ndarray], path: Path) -> None:
    try:
        import onnxscript  # noqa: F401  (the exporter needs it; a clear error beats its ImportError)
    except ImportError:
        raise ConfigError("ONNX export needs the `export` extra: pip install 'recnas[export]' (onnx, onnxruntime, "
                          "onnxscript); `make setup` installs it") from None
    batch = torch.export.Dim("batch")
    args = tuple(torch.from_numpy(example[k]) for k in INPUTS)
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(graph, args, dynamo=True, input_names=list(INPUTS), output_names=list(OUTPUTS),
                                    dynamic_shapes={k: {0: batch} for k in INPUTS}, opset_version=OPSET,
                                    optimize=True, external_data=False)
    assert program is not None
    proto = program.model_proto
    for node in proto.graph.node:  # the exporter's debug traces (stack traces, source paths): a third of a graph's
        del node.metadata_props[:]  # bytes in a mixed-width model, and nothing a runtime reads
        node.doc_string = ""
    fixed = [i.name for i in proto.graph.input if not i.type.tensor_type.shape.dim[0].dim_param]
    if fixed:  # the exporter fell back to tracing, which fixes the batch size: refuse rather than serve it
        raise DataError(f"the model's graph fixes the batch size of input(s) {fixed} when exported (a module "
                        "turns the batch size into a Python int); nothing was exported. Please report this with "
                        "the run's config.yaml")
    import onnx

    write_atomic(path, lambda tmp: onnx.save_model(proto, str(tmp)))


def export_run(run_dir: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Export a trained run folder to `out` (default `<model folder>/export`): model.onnx and preprocess.json.

    Returns a summary: paths, bytes, embedding parameters, the probe's max abs difference and seconds.
    """
    started = time.perf_counter()
    folder = model_folder(Path(run_dir))
    cfg, schema, model = load_run(folder)
    out = Path(out) if out is not None else folder / "export"
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file; pass a folder for the export (--out)")
    out.mkdir(parents=True, exist_ok=True)
    graph = OnnxGraph(model).eval()
    probe = probe_arrays(schema, PROBE_ROWS, cfg.seed)
    _export_graph(graph, {k: v[:37] for k, v in probe.items()}, out / MODEL_FILE)
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "recnas": recnas.__version__, "model_file": MODEL_FILE,
           "model_sha256": file_sha256(out / MODEL_FILE), "model": cfg.model.name, "source": str(folder),
           "embedding_params": int(metrics.get("embedding_params", model.embedding_params())),
           "threads": cfg.threads, "inputs": input_layout(schema),
           "outputs": [{"name": "probability", "shape": ["batch"]}, {"name": "logit", "shape": ["batch"]}],
           "ids": {"padding": PAD_ID, "oov": OOV_ID, "missing_token": MISSING_TOKEN},
           "schema": schema.to_dict(inline_vocab=True)}
    write_text_atomic(out / PREPROCESS, json.dumps(doc))
    served = OnnxModel.load(out)
    with torch.no_grad():
        want = graph(*(torch.from_numpy(probe[k]) for k in INPUTS))[0].numpy()
    try:
        got = served.probabilities(probe)
    except Exception as e:  # onnxruntime's own exception types: the graph cannot run what torch ran
        (out / MODEL_FILE).unlink()
        raise DataError(f"{folder}: onnxruntime cannot run the exported graph on {PROBE_ROWS} probe rows "
                        f"({str(e).splitlines()[0][:200]}); nothing was exported. Please report this with the run's "
                        "config.yaml") from None
    diff = float(np.abs(got - want).max()) if len(want) else 0.0
    if not diff <= TOLERANCE:
        (out / MODEL_FILE).unlink()
        raise DataError(f"{folder}: the exported graph does not reproduce the model (probabilities differ by "
                        f"{diff:.2e} on {PROBE_ROWS} probe rows, more than {TOLERANCE:g}); nothing was exported. "
                        "Please report this with the run's config.yaml")
    return {"out": str(out), "source": str(folder), "model_onnx": str(out / MODEL_FILE),
            "bytes": (out / MODEL_FILE).stat().st_size,
            "preprocess_bytes": (out / PREPROCESS).stat().st_size, "embedding_params": doc["embedding_params"],
            "model": cfg.model.name, "max_abs_diff": diff, "probe_rows": PROBE_ROWS,
            "seconds": time.perf_counter() - started}


__all__ = ["INPUTS", "OUTPUTS", "OnnxGraph", "export_run", "input_layout", "probe_arrays"]
