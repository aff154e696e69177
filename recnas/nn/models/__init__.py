"""The base-model zoo: one file per model, each registered by name in `MODELS`."""

from __future__ import annotations

from recnas.nn.models import (  # noqa: F401  (importing registers each model)
    afm,
    autoctr,
    autogroup,
    autoint,
    dcn,
    dcnv2,
    deepfm,
    ffm,
    fm,
    fwfm,
    ipnn,
    lr,
    nfm,
    widedeep,
    xdeepfm,
)
from recnas.nn.models.base import MODELS, CTRModel, FirstOrder, build_model, model_options, register

ZOO = [
    "lr", "fm", "fwfm", "ffm", "afm", "nfm", "widedeep", "deepfm", "ipnn", "dcn", "dcnv2", "xdeepfm", "autoint",
    "autoint+", "autogroup", "autoctr",
]

__all__ = ["MODELS", "ZOO", "CTRModel", "FirstOrder", "build_model", "model_options", "register"]
