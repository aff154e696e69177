"""A toy search method in one file: random per-field embedding sizes under the budget.

It shows what a new method needs: a config class, a `SearchMethod` subclass and one registration line.
Importing this module registers it; the conformance suite then covers it with no test edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from torch import nn

from recnas.data.schema import Schema
from recnas.data.splits import Splits
from recnas.methods import BudgetConfig, MethodConfig, SearchMethod, register_method
from recnas.methods.base import Log, fingerprint
from recnas.space.autodim import AutoDimEmbedding, dim_label, sample_ep
from recnas.train.hooks import Hook


class ToyDimsConfig(MethodConfig, BudgetConfig):
    """Random sizes per field, redrawn until they fit the budget."""

    method: Literal["toy_dims"] = Field("toy_dims", description="random per-field sizes under the budget (a toy)")
    candidates: list[int] = Field(default_factory=lambda: [2, 4, 8], description="candidate sizes")


@register_method("toy_dims")
class ToyDims(SearchMethod):
    """Draws a size per field at random, under `max_ep_fraction`; retrains it as AutoDim's frozen embedding."""

    paper = "none (a test of the method registry)"
    decides = "a random embedding size per field"
    config = ToyDimsConfig
    smoke = ("search.max_ep_fraction=0.6",)

    def block(self, schema: Schema) -> AutoDimEmbedding:
        return AutoDimEmbedding(schema, self.s.candidates, **self.cfg.model.encoding_kwargs())

    def search(self, splits: Splits, search_dir: Path, log: Log, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
        block = self.block(splits.ds.schema)
        budget = self.s.budget(block.full_ep) or block.full_ep
        rng = np.random.default_rng(self.cfg.seed)
        while True:
            dims = {f: int(rng.choice(self.s.candidates)) for f in block.field_names}
            if sample_ep(block.rows, dims) <= budget:
                break
        sample = {dim_label(f): d for f, d in dims.items()}
        return {"sample": sample, "space_fingerprint": fingerprint([block]), "dims": dims,
                "ep": sample_ep(block.rows, dims), "full_ep": block.full_ep, "search_seconds": 0.0}

    def frozen_parts(self, schema: Schema, arch: dict[str, Any]) -> dict[str, nn.Module]:
        return {"embedding": self.block(schema).freeze(arch["sample"])}

    def summary(self, arch: dict[str, Any]) -> list[str]:
        return ["toy dims: " + ", ".join(f"{f}={d}" for f, d in arch["dims"].items())]

    def architecture(self, arch: dict[str, Any], schema: Schema) -> dict[str, Any]:
        return {"dims": arch["dims"], "ep": arch["ep"], "full_ep": arch["full_ep"]}
