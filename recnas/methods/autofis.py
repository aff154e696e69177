"""AutoFIS: which pairwise feature interactions to keep (Liu et al., KDD 2020).

Every field pair of the model's pairwise slot gets a gate (`GatedInteractions`); GRDA drives the gates of
useless pairs to exactly zero during a one-level search, and the pairs left non-zero are retrained as a
`SelectedInteractions` block in the same zoo model. Any model with a pairwise slot takes it: FM and DeepFM
(AutoFM / AutoDeepFM of the paper; the gated pairs are summed into the logit) and IPNN (one gated product
per pair into the MLP).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from torch import nn

from recnas.data.schema import Schema
from recnas.errors import ConfigError
from recnas.methods.base import fits_full_tables, model_kwargs, register_method
from recnas.methods.oneshot import OneShotConfig, OneShotMethod
from recnas.methods.render import heat_map, search_curve, table
from recnas.nn.embedding import embedded_field_names
from recnas.nn.models import MODELS, CTRModel, build_model
from recnas.space.gated_interactions import GatedInteractions


class GateRetrainConfig(BaseModel):
    """How the kept pairs start their retrain (AutoFIS, and the joint search that reuses its gates)."""

    retrain_gate_init: float | None = Field(
        None, gt=0, description="initial gate of the kept pairs at retrain; default min(0.6, 1/sqrt(kept pairs))")


class AutoFISConfig(OneShotConfig, GateRetrainConfig):
    """AutoFIS: a gate per field pair, GRDA zeroes the useless ones (one-level search)."""

    method: Literal["autofis"] = Field("autofis", description="gated pairwise interactions (AutoFIS)")
    arch_optimizer: Literal["adam", "grda"] = Field("grda", description="optimiser of the gates")
    arch_lr: float = Field(1.0, gt=0, description="learning rate of the gates")


@register_method("autofis")
class AutoFIS(OneShotMethod):
    """The method of the module docstring."""

    paper = ("Liu et al., AutoFIS: Automatic Feature Interaction Selection in Factorization Models for "
             "Click-Through Rate Prediction, KDD 2020")
    decides = "which pairwise interactions to keep"
    config = AutoFISConfig
    trace_keys = ("nonzero_gates",)
    smoke = ("search.epochs=3",)

    @classmethod
    def auto_settings(cls, schema: Schema, embedding_dim: int, max_ep: int) -> list[str] | None:
        """Where there are at least three fields and the budget is the full tables (AutoFIS keeps every table)."""
        return [] if fits_full_tables(schema, embedding_dim, max_ep) else None

    def check(self) -> None:
        """The model needs a pairwise slot (FM, DeepFM, IPNN)."""
        super().check()
        cls = MODELS[self.cfg.model.name.lower()]
        if cls.pairwise_slot is None:
            slots = sorted(n for n, c in MODELS.items() if c.pairwise_slot is not None)
            raise ConfigError(f"AutoFIS gates a model's pairwise interactions; {self.cfg.model.name!r} has no "
                              f"pairwise slot (model.name: one of {slots})")

    def gated(self, schema: Schema) -> GatedInteractions:
        """The gated block over every field pair of the configured model."""
        names = embedded_field_names(schema, self.cfg.model.numerical_encoder)
        slot = MODELS[self.cfg.model.name.lower()].pairwise_slot
        return GatedInteractions(names, reduce=slot == "logit", retrain_gate_init=self.s.retrain_gate_init)

    def supernet(self, schema: Schema) -> CTRModel:
        """The configured model with every pair gated."""
        kw = {**model_kwargs(self.cfg), "sparse": False}
        return build_model(self.cfg.model.name, schema, pairwise=self.gated(schema), **kw)

    def describe(self, model: CTRModel, sample: dict[str, Any]) -> dict[str, Any]:
        """The kept pairs, every gate, and how many pairs there were."""
        block = next(m for m in model.modules() if isinstance(m, GatedInteractions))
        gates = block.gates()
        return {"interactions": block.kept_pairs(sample), "gates": gates, "num_pairs": len(gates)}

    def frozen_parts(self, schema: Schema, arch: dict[str, Any]) -> dict[str, nn.Module]:
        """Only the kept pairs, frozen from the gated block."""
        return {"pairwise": self.gated(schema).freeze(arch["sample"])}

    def summary(self, arch: dict[str, Any]) -> list[str]:
        """The kept pairs."""
        kept = arch["interactions"]
        pairs = ": " + ", ".join(f"{x}*{y}" for x, y in kept[:12]) + (" ..." if len(kept) > 12 else "") if kept else ""
        return [f"kept {len(kept)} of {arch['num_pairs']} interactions{pairs}"]

    def warnings(self, arch: dict[str, Any]) -> list[str]:
        """A search that removed every pair (or kept every pair) names the threshold that would have kept some."""
        kept, total = len(arch["interactions"]), arch["num_pairs"]
        if total == 0 or 0 < kept < total:
            return []
        grda = arch.get("grda")
        who = f"the {self.name} search"  # autofis, or the joint search that reuses these warnings
        setting = f"search.grda_threshold={self.s.grda_threshold:g}"
        if kept == 0:
            hint = ""
            if grda and grda["magnitudes"]:
                top = grda["magnitudes"]
                hint = (f"; the largest gate accumulator ended at {top[0]:.3g}, so a threshold near "
                        f"{top[min(len(top) - 1, max(len(top) // 10, 1))]:.2g} keeps about a tenth of the pairs")
            return [f"{who} removed all {total} interactions ({setting} is too high for this data: the retrain has "
                    f"no pairwise part); lower search.grda_threshold{hint}"]
        hint = ""
        if grda and grda["magnitudes"]:
            hint = f"; the median gate accumulator ended at {grda['magnitudes'][len(grda['magnitudes']) // 2]:.3g}"
        return [f"{who} kept all {total} interactions ({setting} removed none: the search selected nothing); raise "
                f"search.grda_threshold{hint}"]

    def kept_pairs(self, arch: dict[str, Any]) -> list[list[str]]:
        """The pairs whose gates survived."""
        return [list(p) for p in arch["interactions"]]

    def architecture(self, arch: dict[str, Any], schema: Schema) -> dict[str, Any]:
        """Kept pairs, their share, and the gates."""
        return {"interactions": arch["interactions"], "kept": len(arch["interactions"]),
                "total_pairs": arch["num_pairs"],
                "kept_fraction": len(arch["interactions"]) / max(arch["num_pairs"], 1), "gates": arch["gates"]}

    def html(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[str]:
        """The kept pairs with their gates."""
        a = rep["architecture"]
        return [f"<h2>Interactions kept: {a['kept']} of {a['total_pairs']} ({a['kept_fraction']:.0%})</h2>",
                table([[x, y, arch["gates"][f"interaction/{x}*{y}"]] for x, y in a["interactions"]],
                      ["field", "field", "gate"])]

    def plots(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[tuple[str, Any]]:
        """The search curve with the non-zero gates, and |gate| per field pair."""
        out = []
        curve = rep["search"]["curve"]
        if curve:
            out.append(("Search curve", search_curve(curve, "nonzero_gates", "non-zero gates")))
        names = [f["name"] for f in rep["data"]["fields"]]
        pairs = [label.removeprefix("interaction/").split("*") for label in arch["gates"]]
        values = [abs(g) for g in arch["gates"].values()]
        out.append(("|gate| per field pair after the search", heat_map(names, pairs, values, "|gate| (0 = removed)")))
        return out
