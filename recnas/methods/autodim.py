"""AutoDim: an embedding size per field, chosen by gradient descent (Zhao et al., WWW 2021).

The supernet's embedding (`AutoDimEmbedding`) mixes every candidate size of each field with Gumbel-softmax
weights, lifted to a common dimension; a bi-level search (first-order DARTS) moves the weights on validation
batches, with an optional memory term toward small sizes. The export is the median (or argmax) size per field, cut
to the budget (`max_ep` / `max_ep_fraction`) and, with `fill_budget`, grown back up to it; the retrain model is the
same zoo model with a `ProjectedEmbedding` of the found sizes. Any zoo model with one vector per field works.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from torch import nn

from recnas.data.schema import Schema
from recnas.methods.base import (
    FillBudgetConfig,
    has_large_id_fields,
    model_kwargs,
    refuse_field_aware,
    register_method,
    sizes_within,
)
from recnas.methods.oneshot import OneShotConfig, OneShotMethod
from recnas.methods.render import bars, search_curve, table
from recnas.nn.models import CTRModel, build_model
from recnas.space.autodim import AutoDimEmbedding, sample_ep

if TYPE_CHECKING:
    from recnas.experiment.config import ExperimentConfig


class AutoDimConfig(OneShotConfig, FillBudgetConfig):
    """AutoDim: candidate sizes per field, mixed by Gumbel-softmax, chosen on validation batches (bi-level)."""

    method: Literal["autodim"] = Field("autodim", description="an embedding size per field (AutoDim)")
    mode: Literal["one_level", "bi_level"] = Field(
        "bi_level", description="one_level: architecture and weights step on the same batch; bi_level: first-order "
        "DARTS, architecture steps on validation batches")
    epochs: int = Field(9, ge=1, description="search epochs")
    warmup_epochs: int = Field(3, ge=0, description="weight-only epochs before architecture steps (the larger sizes' "
                               "columns need them to learn what the smallest cannot, before the sizes are compared)")
    candidates: list[int] = Field(default_factory=lambda: [2, 4, 8, 16, 32], min_length=1,
                                  description="candidate sizes (size d uses the first d columns of one table)")
    common_dim: int | None = Field(None, ge=1, description="interaction dimension every size is lifted to (default: "
                                   "the largest candidate)")
    lift_gamma: float = Field(0.15, gt=0, description="initial batch-norm scale of the lifts: at 1 the FM logits "
                              "start huge and every field collapses to the smallest size")
    memory_lambda: float = Field(0.0, ge=0, description="weight of the expected-size term (the expected size of each "
                                 "field as a share of the largest, averaged over fields) in the architecture loss; "
                                 "0 = the paper's form. Under Adam a small steady pull outweighs a noisy validation "
                                 "gradient and every field collapses to the smallest size: bound memory with "
                                 "max_ep / max_ep_fraction instead")
    pick: Literal["median", "argmax"] = Field(
        "median", description="the size exported per field: the median of its size distribution (the sizes are "
        "ordered; robust when the mass spreads over several large sizes) or the argmax (the paper)")


def budget_line(arch: dict[str, Any]) -> str:
    """What the budget did to the export, in the searched tables' terms: nothing, a cut, or a fill."""
    full = max(int(arch["full_ep"]), 1)
    share = arch["ep"] / full
    rule = arch.get("pick", "argmax")  # arch.json files before the pick setting took the argmax
    picked = arch.get("picked_ep", arch.get("argmax_ep"))
    if arch.get("max_ep") is None:
        return f"no budget: the {rule} uses {share:.1%} of the searched tables at full size"
    budget = arch["max_ep"] / full
    if picked is None:  # an arch.json written before the pick was recorded
        return f"the export uses {share:.1%} of the searched tables at full size (budget {budget:.1%})"
    picked_share = picked / full
    if picked > arch["max_ep"]:
        return (f"the {rule} used {picked_share:.1%} of the searched tables, over the {budget:.1%} budget: cut to "
                f"{share:.1%}")
    if arch.get("fill_budget"):
        return (f"the {rule} uses {picked_share:.1%} of the searched tables, under the {budget:.1%} budget: filled "
                f"to {share:.1%}")
    return (f"the {rule} uses {picked_share:.1%} of the searched tables, under the {budget:.1%} budget; "
            "search.fill_budget is off, so the budget changed nothing")


@register_method("autodim")
class AutoDim(OneShotMethod):
    """The method of the module docstring."""

    paper = "Zhao et al., Memory-efficient Embedding for Recommendations / AutoDim, WWW 2021"
    decides = "an embedding size per field"
    config = AutoDimConfig
    trace_keys = ("dims",)
    auto_rank = 20  # one supernet, sizes only
    smoke = ("search.epochs=3", "search.warmup_epochs=1", "search.candidates=[2,4,8]")

    @classmethod
    def auto_settings(cls, schema: Schema, embedding_dim: int, max_ep: int) -> list[str] | None:
        """Where there are large id tables: sizes up to the tuned width, grown into the budget."""
        sizes = sizes_within(schema, embedding_dim, max_ep)
        if not has_large_id_fields(schema) or sizes is None:
            return None
        return [f"search.candidates={sizes}", f"search.max_ep={max_ep}", "search.fill_budget=true"]

    def check(self) -> None:
        """One vector per field."""
        super().check()
        refuse_field_aware(self.cfg, "AutoDim")

    @property
    def common_dim(self) -> int:
        """The interaction dimension: `common_dim`, else the largest candidate."""
        return int(self.s.common_dim or max(self.s.candidates))

    def block(self, schema: Schema) -> AutoDimEmbedding:
        """The search embedding."""
        s = self.s
        return AutoDimEmbedding(schema, s.candidates, self.common_dim, **self.cfg.model.encoding_kwargs(),
                                lift_gamma=s.lift_gamma, max_ep=s.max_ep, max_ep_fraction=s.max_ep_fraction,
                                fill_budget=s.fill_budget, pick=s.pick)

    def supernet(self, schema: Schema) -> CTRModel:
        """The configured model with the AutoDim embedding."""
        kw = {**model_kwargs(self.cfg), "sparse": False}
        return build_model(self.cfg.model.name, schema, embedding=self.block(schema), **kw)

    def memory_lambda(self) -> float:
        """The expected-size term's weight."""
        return float(self.s.memory_lambda)

    def describe(self, model: CTRModel, sample: dict[str, Any]) -> dict[str, Any]:
        """Size per field, with the EP against every field at the largest size."""
        block = model.embedding_block
        assert isinstance(block, AutoDimEmbedding)
        dims = block.chosen_dims(sample)
        return {"dims": dims, "common_dim": block.common_dim, "candidates": list(block.candidates),
                "lift_gamma": block.lift_gamma, "max_ep": block.max_ep, "fill_budget": block.fill_budget,
                "field_rows": block.rows, "ep": sample_ep(block.rows, dims), "full_ep": block.full_ep,
                "pick": block.pick, "picked_ep": block.picked_ep()}

    def frozen_parts(self, schema: Schema, arch: dict[str, Any]) -> dict[str, nn.Module]:
        """The found sizes, frozen from the search embedding (fresh weights)."""
        return {"embedding": self.block(schema).freeze(arch["sample"], sparse=self.cfg.trainer.sparse)}

    def baseline_config(self) -> ExperimentConfig:
        """Every field at the common dimension."""
        base = self.cfg.model_copy(deep=True)
        base.model.embedding_dim = self.common_dim
        return base

    def summary(self, arch: dict[str, Any]) -> list[str]:
        """The size of each field, and what the budget did."""
        return ["dimensions: " + ", ".join(f"{f}={d}" for f, d in arch["dims"].items())
                + f" ({arch['ep']:,} of {arch['full_ep']:,} searched embedding parameters)", budget_line(arch)]

    def architecture(self, arch: dict[str, Any], schema: Schema) -> dict[str, Any]:
        """Size per field with its cardinality and probabilities; EP against full size."""
        card = {f.name: f.cardinality for f in schema.fields}
        return {"dims": [{"field": f, "cardinality": card.get(f), "rows": arch["field_rows"][f], "dim": d,
                          "probs": arch["probs"].get(f"dim/{f}")} for f, d in arch["dims"].items()],
                "candidates": arch["candidates"], "common_dim": arch["common_dim"],
                # the searched tables against the same tables with every field at the largest candidate
                "ep": arch["ep"], "full_ep": arch["full_ep"],
                "searched_ep_fraction": arch["ep"] / max(arch["full_ep"], 1), "budget": budget_line(arch)}

    def field_memory(self, arch: dict[str, Any]) -> dict[str, float]:
        """A field's size is what each of its ids stores."""
        return {f: float(d) for f, d in arch["dims"].items()}

    def html(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[str]:
        """The size table."""
        a = rep["architecture"]
        return [f"<h2>Dimension per field</h2><p>candidates {a['candidates']}, common dimension "
                f"{a['common_dim']}; searched embedding parameters {a['ep']:,} of {a['full_ep']:,} at full "
                f"dimension ({a['searched_ep_fraction']:.1%}); {html.escape(a['budget'])}</p>",
                table([[d["field"], d["cardinality"], d["dim"], " ".join(f"{p:.2f}" for p in d["probs"] or [])]
                       for d in a["dims"]], ["field", "cardinality", "dimension", "probabilities over candidates"])]

    def plots(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[tuple[str, Any]]:
        """The search curve with the mean chosen size, and the size per field."""
        out = []
        curve = rep["search"]["curve"]
        if curve:
            mean = [{**c, "mean_dim": sum(c["dims"].values()) / max(len(c["dims"]), 1)} for c in curve]
            out.append(("Search curve", search_curve(mean, "mean_dim", "mean chosen dimension")))
        dims = rep["architecture"]["dims"]
        out.append(("Embedding dimension per field",
                    bars([d["field"] for d in dims], [d["dim"] for d in dims], "chosen dimension", log2=True)))
        return out
