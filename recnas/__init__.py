"""recnas: AutoML for recommender (click-through-rate) models.

The public API, importable from `recnas` (loaded on first use, so `import recnas` stays light):
`load_config`, `train` (a `recnas train` run), `search` (a `recnas search` run), `predict`, `build_model`,
`methods` (the registered search methods) and `synthesize` (data with a planted truth).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from recnas.errors import RecnasError

_API = {
    "load_config": ("recnas.experiment.config", "load_config"),
    "train": ("recnas.experiment.run", "run_train"),
    "search": ("recnas.experiment.search", "run_search"),
    "retrain": ("recnas.experiment.search", "run_retrain"),
    "predict": ("recnas.experiment.run", "predict_file"),
    "load_run": ("recnas.experiment.run", "load_run"),
    "build_model": ("recnas.nn.models", "build_model"),
    "methods": ("recnas.methods", "method_names"),
    "register_method": ("recnas.methods", "register_method"),
    "synthesize": ("recnas.data.synthetic", "write_synthetic"),
    "SynthConfig": ("recnas.data.synthetic", "SynthConfig"),
}


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'recnas' has no attribute {name!r}")


__all__ = ["RecnasError", "__version__", *_API]
