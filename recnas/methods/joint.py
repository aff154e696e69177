"""Joint: embedding sizes and pairwise interactions searched in one supernet, under one memory budget.

One DeepFM-style supernet holds AutoDim's embedding (a Gumbel-softmax mix of candidate sizes per field, lifted to a
common dimension) and AutoFIS's gated pairs; one bi-level search moves both on validation batches, with a
`mixed` architecture optimiser: Adam for the size logits (with AutoDim's expected-size term) and GRDA for the gates,
which zeroes the useless pairs. Numerical fields are encoded by `model.numerical_encoder` inside the same supernet
(AutoDis where `recnas auto` tunes it so), learned with it. The export is AutoDim's (median size per field, cut to the
budget and grown back into it) plus AutoFIS's kept pairs; the retrain model composes both frozen parts. Why
jointly: a field's best size depends on which of its pairs survive, and one search costs one supernet, not two
(prior art: i-Razor, OptFS). The gates add no EP: the memory budget is the embedding tables'.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from torch import nn

from recnas.data.schema import Schema
from recnas.errors import ConfigError
from recnas.methods.autodim import AutoDim, AutoDimConfig
from recnas.methods.autofis import AutoFIS, GateRetrainConfig
from recnas.methods.base import has_large_id_fields, model_kwargs, register_method, sizes_within
from recnas.nn.embedding import embedded_field_names
from recnas.nn.models import MODELS, CTRModel, build_model


class JointConfig(AutoDimConfig, GateRetrainConfig):
    """AutoDim's keys (sizes, budget, memory term) plus the gates' GRDA settings."""

    method: Literal["joint"] = Field("joint", description="embedding sizes and interactions in one supernet")
    arch_optimizer: Literal["mixed"] = Field("mixed", description="Adam for the sizes, GRDA for the gates")
    gate_lr: float = Field(1.0, gt=0, description="GRDA learning rate of the gates (AutoFIS's arch_lr)")


@register_method("joint")
class Joint(AutoDim):
    """The method of the module docstring: AutoDim's embedding and AutoFIS's gates in one search."""

    paper = ("AutoDim (Zhao et al., WWW 2021) and AutoFIS (Liu et al., KDD 2020) in one supernet, as i-Razor "
             "(Yao et al., 2022) and OptFS (Lyu et al., WWW 2023) search sizes and interactions together")
    decides = "an embedding size per field and which pairwise interactions to keep, at once"
    config = JointConfig
    trace_keys = ("dims", "nonzero_gates")
    auto_rank = 10  # first: one supernet searches both sizes and pairs
    smoke = ("search.epochs=3", "search.warmup_epochs=1", "search.candidates=[2,4,8]")

    @classmethod
    def auto_settings(cls, schema: Schema, embedding_dim: int, max_ep: int) -> list[str] | None:
        """Where there are large id tables and at least three fields: sizes up to the tuned width, filled."""
        sizes = sizes_within(schema, embedding_dim, max_ep)
        if not has_large_id_fields(schema) or len(embedded_field_names(schema, "auto")) < 3 or sizes is None:
            return None
        return [f"search.candidates={sizes}", f"search.max_ep={max_ep}",
                "search.fill_budget=true"]

    def check(self) -> None:
        """One vector per field, and a model with a pairwise slot."""
        super().check()
        if MODELS[self.cfg.model.name.lower()].pairwise_slot is None:
            slots = sorted(n for n, c in MODELS.items() if c.pairwise_slot is not None)
            raise ConfigError(f"the joint search gates a model's pairwise interactions; {self.cfg.model.name!r} has "
                              f"no pairwise slot (model.name: one of {slots})")

    def grda_lr(self) -> float:
        """The gates' GRDA learning rate."""
        return float(self.s.gate_lr)

    def gated(self, schema: Schema) -> Any:
        """The gated block over every field pair (AutoFIS's)."""
        return AutoFIS.gated(self, schema)  # type: ignore[arg-type]

    def supernet(self, schema: Schema) -> CTRModel:
        """The configured model with the AutoDim embedding and every pair gated."""
        kw = {**model_kwargs(self.cfg), "sparse": False}
        return build_model(self.cfg.model.name, schema, embedding=self.block(schema), pairwise=self.gated(schema),
                           **kw)

    def describe(self, model: CTRModel, sample: dict[str, Any]) -> dict[str, Any]:
        """AutoDim's sizes and AutoFIS's kept pairs."""
        return {**super().describe(model, sample), **AutoFIS.describe(self, model, sample)}  # type: ignore[arg-type]

    def frozen_parts(self, schema: Schema, arch: dict[str, Any]) -> dict[str, nn.Module]:
        """The found sizes and the kept pairs, frozen with fresh weights."""
        return {**super().frozen_parts(schema, arch), "pairwise": self.gated(schema).freeze(arch["sample"])}

    def kept_pairs(self, arch: dict[str, Any]) -> list[list[str]]:
        """AutoFIS's kept pairs."""
        return AutoFIS.kept_pairs(self, arch)  # type: ignore[arg-type]

    def summary(self, arch: dict[str, Any]) -> list[str]:
        """Sizes, budget and kept pairs."""
        return super().summary(arch) + AutoFIS.summary(self, arch)  # type: ignore[arg-type]

    def warnings(self, arch: dict[str, Any]) -> list[str]:
        """AutoFIS's: a search that removed (or kept) every pair."""
        return AutoFIS.warnings(self, arch)  # type: ignore[arg-type]

    def architecture(self, arch: dict[str, Any], schema: Schema) -> dict[str, Any]:
        """Both architectures' report sections, merged."""
        return {**super().architecture(arch, schema), **AutoFIS.architecture(self, arch, schema)}  # type: ignore[arg-type]

    def html(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[str]:
        """The size table, then the kept pairs."""
        return super().html(rep, arch) + AutoFIS.html(self, rep, arch)  # type: ignore[arg-type]

    def plots(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[tuple[str, Any]]:
        """AutoDim's plots, then the gates' heat map."""
        return super().plots(rep, arch) + AutoFIS.plots(self, rep, arch)[-1:]  # type: ignore[arg-type]
