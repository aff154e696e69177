"""AutoGroup: which feature sets to build explicit order-p interactions from (Liu et al., SIGIR 2020).

The supernet is the `autogroup` zoo model with searchable sets (`AutoGroupSets`): for every order p and set j, a
keep/drop choice per field, relaxed by a straight-through binary Gumbel-softmax whose temperature is annealed.
Structure logits and weights train together, on the same batch (the paper's one-level search) or, as a setting,
the logits on validation batches. The export keeps a field in a set where its logit is positive, and the retrain is
the same model with those sets fixed (`FeatureSets`), trained from scratch. The public implementation has no
retrain: its searched model is used as it is. arch.json's `one_shot` scores that use (the supernet in eval mode,
whose memberships are the exported signs, with its search weights and norms) on the validation and test splits,
so the two can be compared run by run. The supernet's MLP reads the set interactions only (the paper's) unless
`search.raw_embeddings`: an MLP that also reads the embeddings carries the signal itself and weakens the structure
gradient; the retrain's MLP reads them as `model.raw_embeddings` says.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from torch import nn

from recnas.data.schema import Schema
from recnas.data.splits import Splits
from recnas.errors import ConfigError
from recnas.methods.base import fits_full_tables, model_kwargs, refuse_field_aware, register_method
from recnas.methods.oneshot import OneShotConfig, OneShotMethod
from recnas.methods.render import search_curve, set_grid, table
from recnas.nn.embedding import embedded_field_names
from recnas.nn.feature_sets import Terms
from recnas.nn.models import CTRModel, build_model
from recnas.space.autogroup import AutoGroupSets

MODEL = "autogroup"


class AutoGroupConfig(OneShotConfig):
    """AutoGroup: feature sets per interaction order, memberships searched by Gumbel-softmax (bi-level by default)."""

    method: Literal["autogroup"] = Field("autogroup", description="feature sets for high-order interactions "
                                         "(AutoGroup)")
    orders: int = Field(3, ge=1, description="highest interaction order P (sets of orders 1..P)")
    sets_per_order: list[int] | None = Field(
        None, min_length=1, description="sets of each order 1..P (default: as many as there are fields, per order; "
        "the paper's 15/130/180 were for 24 fields)")
    compensation: float = Field(1.0, ge=0, description="factor of the self-power term subtracted from g^p (1: the "
                                "paper's formula; 0: none), with search.terms=paper")
    terms: Terms = Field(
        "distinct", description="what an order-p set's scalar holds, in the search and the retrain: distinct, the "
        "products of p distinct fields only; paper, g^p minus the fields' pure self-powers (for p >= 3 the mixed "
        "terms that repeat a field, e_i^2 e_j, stay: an order-3 set can then model pairs). distinct finds the planted "
        "triple on 6 of 6 synthetic seeds (paper 4) and ranks first on frappe_full + ml100k valid "
        "(bench/log/2026-12-08-issue20-distinct-terms.md)")
    normalise: bool = Field(True, description="during the search, batch norms (no affine) over the embeddings and "
                            "over the order >= 2 outputs: the structure gradients of small embeddings' powers are "
                            "too weak without them (every order-2 set emptied on synthetic data)")
    raw_embeddings: bool = Field(False, description="the supernet's MLP reads the field embeddings beside the set "
                                 "interactions (model.raw_embeddings sets the retrain's). Off: the paper's MLP, so the "
                                 "memberships alone carry the signal and the search sees which sets matter")
    retrain_normalise: bool = Field(False, description="the same norms in the retrained sets: off, they cost 0.02-0.08 "
                                    "valid AUC on synthetic data (recnas.nn.feature_sets)")
    mode: Literal["one_level", "bi_level"] = Field(
        "bi_level", description="one_level: logits and weights step on the same batch (the paper); bi_level: the "
        "logits step on validation batches (first-order DARTS)")
    epochs: int = Field(10, ge=1, description="search epochs")
    warmup_epochs: int = Field(3, ge=0, description="weight-only epochs first: the per-set weights specialise "
                               "while every set still holds most fields")
    patience: int | None = Field(2, ge=1, description="end the search after this many architecture epochs in a "
                                 "row whose supernet valid score is below the best so far (warm-up included). 2 was "
                                 "chosen on frappe_full + ml100k valid: 1 ranked first but lost the known answer on "
                                 "one seed; none ranked last and took 4x DeepFM's time on ml100k "
                                 "(bench/log/2026-12-06-issue20-patience.md)")
    size_lambda: float = Field(1e-4, ge=0, description="weight of the expected memberships (every field in every "
                               "set counted once) in the structure loss: a pull toward small sets")
    gumbel: bool = Field(True, description="draw the memberships with Gumbel noise while searching (false: the "
                         "straight-through sign of the logits, annealed by tau, without noise)")
    init_logit: float = Field(2.0, description="every structure logit's start: 2 puts each field in each set with "
                              "p = 0.88, so the search starts from full sets and prunes (0 would be a coin flip)")
    arch_lr: float = Field(0.05, gt=0, description="Adam learning rate of the structure logits")
    tau_end: float = Field(0.05, gt=0, description="temperature reached at the end of the search")

    def set_counts(self, num_fields: int) -> list[int]:
        """Sets per order: `sets_per_order`, else one per field for each order."""
        return list(self.sets_per_order) if self.sets_per_order is not None else [num_fields] * self.orders


@register_method("autogroup")
class AutoGroup(OneShotMethod):
    """The method of the module docstring."""

    paper = ("Liu et al., AutoGroup: Automatic Feature Grouping for Modelling Explicit High-Order Feature "
             "Interactions in CTR Prediction, SIGIR 2020")
    decides = "feature sets per interaction order"
    config = AutoGroupConfig
    trace_keys = ("membership_entropy",)
    smoke = ("model.name=autogroup", "search.epochs=3", "search.warmup_epochs=1")

    @classmethod
    def auto_settings(cls, schema: Schema, embedding_dim: int, max_ep: int) -> list[str] | None:
        """Where there are at least three fields and the budget is the full tables (the sets keep every table)."""
        return [f"model.name={MODEL}"] if fits_full_tables(schema, embedding_dim, max_ep) else None

    def check(self) -> None:
        """The autogroup model, one vector per field, and orders and set counts that fit the fields."""
        super().check()
        refuse_field_aware(self.cfg, "AutoGroup")
        if self.cfg.model.name.lower() != MODEL:
            raise ConfigError(f"AutoGroup searches the feature sets of the {MODEL!r} model; set model.name={MODEL} "
                              f"(got {self.cfg.model.name!r})")
        s = self.s
        if s.sets_per_order is not None:
            if len(s.sets_per_order) != s.orders:
                raise ConfigError(f"search.sets_per_order lists {len(s.sets_per_order)} counts for search.orders="
                                  f"{s.orders}; give one count per order")
            if min(s.sets_per_order) < 1:
                raise ConfigError(f"search.sets_per_order: every order needs at least one set, got "
                                  f"{s.sets_per_order}")

    def memory_lambda(self) -> float:
        """The expected-membership term's weight."""
        return float(self.s.size_lambda)

    def fields(self, schema: Schema) -> list[str]:
        """The embedded fields, refused where they cannot form the configured orders."""
        names = embedded_field_names(schema, self.cfg.model.numerical_encoder)
        if len(names) < 2:
            raise ConfigError(f"AutoGroup builds interactions between fields, and this data embeds {len(names)} "
                              f"({names}); it needs at least 2")
        if self.s.orders > len(names):
            raise ConfigError(f"search.orders={self.s.orders} is above the {len(names)} embedded fields "
                              f"({', '.join(names)}); set search.orders to {len(names)} or less")
        return names

    def block(self, schema: Schema) -> AutoGroupSets:
        """The searchable sets over the embedded fields."""
        names = self.fields(schema)
        s = self.s
        return AutoGroupSets(names, self.cfg.model.embedding_dim, s.set_counts(len(names)), s.compensation,
                             s.normalise, s.init_logit, s.gumbel, s.retrain_normalise, s.terms)

    def supernet(self, schema: Schema) -> CTRModel:
        """The autogroup model with searchable sets."""
        kw = {**model_kwargs(self.cfg), "sparse": False, "raw_embeddings": self.s.raw_embeddings}
        return build_model(MODEL, schema, sets=self.block(schema), **kw)

    def describe(self, model: CTRModel, sample: dict[str, Any]) -> dict[str, Any]:
        """Every set by field names, each field's keep-probability in it, and the final membership entropy."""
        block = next(m for m in model.modules() if isinstance(m, AutoGroupSets))
        probs = block.keep_probs()
        sets = block.sets_of(sample)
        return {"sets": {f"order_{p + 1}": order for p, order in enumerate(sets)},
                "set_probs": {f"order_{p + 1}": [{f: round(float(probs[p][i, j]), 4)
                                                  for i, f in enumerate(block.field_names)}
                                                 for j in range(block.set_counts[p])] for p in range(block.orders)},
                "fields": block.field_names, "membership_entropy": block.membership_entropy()}

    def after_search(self, model: CTRModel, splits: Splits) -> dict[str, Any]:
        """The one-shot use: the searched model, memberships at their exported signs, scored without a retrain."""
        from recnas.train.trainer import evaluate

        valid, test = evaluate(model, splits.valid), evaluate(model, splits.test, "test")
        return {"one_shot": {"valid_auc": valid["auc"], "valid_logloss": valid["logloss"], "test_auc": test["auc"],
                             "test_logloss": test["logloss"]}}

    def frozen_parts(self, schema: Schema, arch: dict[str, Any]) -> dict[str, nn.Module]:
        """The found sets, fixed, with fresh weights."""
        return {"sets": self.block(schema).freeze(arch["sample"])}

    def membership_counts(self, arch: dict[str, Any]) -> dict[str, dict[str, int]]:
        """{order: {field: how many of its sets hold the field}}."""
        return {order: {f: sum(f in s for s in sets) for f in arch["fields"]} for order, sets in arch["sets"].items()}

    def summary(self, arch: dict[str, Any]) -> list[str]:
        """The sets of each order that hold at least two fields, and the final membership entropy."""
        lines = []
        for order, sets in arch["sets"].items():
            shown = [s for s in sets if len(s) >= 2] if order != "order_1" else [s for s in sets if s]
            text = ", ".join("{" + ", ".join(s) + "}" for s in shown[:6]) + (" ..." if len(shown) > 6 else "")
            lines.append(f"{order.replace('_', ' ')}: {len(shown)} of {len(sets)} sets in use{': ' if shown else ''}"
                         f"{text}")
        lines.append(f"membership entropy {arch['membership_entropy']:.3f} bits (1 = undecided)")
        if "one_shot" in arch:
            o = arch["one_shot"]
            lines.append(f"used one-shot (no retrain): valid AUC {o['valid_auc']:.4f}, test AUC {o['test_auc']:.4f}")
        return lines

    def warnings(self, arch: dict[str, Any]) -> list[str]:
        """An order whose sets all ended with fewer than two fields, or a search that did not settle."""
        out = []
        for order, sets in arch["sets"].items():
            if order != "order_1" and not any(len(s) >= 2 for s in sets):
                out.append(f"the {self.name} search left no {order.replace('_', ' ')} set with two fields or more (the "
                           "retrain has no interaction of that order); lower search.orders, or train the structure "
                           "longer (search.epochs) or faster (search.arch_lr)")
        if arch["membership_entropy"] > 0.5:
            out.append(f"the {self.name} search did not settle (membership entropy {arch['membership_entropy']:.2f} "
                       "bits of 1): raise search.epochs or search.arch_lr")
        return out

    def architecture(self, arch: dict[str, Any], schema: Schema) -> dict[str, Any]:
        """The sets per order and how many sets hold each field."""
        return {"sets": arch["sets"], "membership_counts": self.membership_counts(arch),
                "membership_entropy": arch["membership_entropy"]}

    def html(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[str]:
        """A table of how many sets of each order hold each field."""
        counts = rep["architecture"]["membership_counts"]
        orders = list(counts)
        fields = arch["fields"]
        return [f"<h2>Feature sets</h2><p>membership entropy {arch['membership_entropy']:.3f} bits (1 = "
                "undecided, 0 = settled)</p>",
                table([[f, *[counts[o][f] for o in orders]] for f in fields],
                      ["field", *[f"sets of {o.replace('_', ' ')}" for o in orders]])]

    def plots(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[tuple[str, Any]]:
        """The membership entropy over the search, and keep-probabilities (fields x sets), one panel per order."""
        out = []
        curve = rep["search"]["curve"]
        if curve:
            out.append(("Search curve", search_curve(curve, "membership_entropy", "membership entropy (bits)")))
        out.append(("Keep-probability of each field in each set, per order",
                    set_grid(arch["fields"], arch["set_probs"])))
        return out
