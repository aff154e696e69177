"""What the per-id width methods (NIS, ESAPN) share: checks, the mixed-width retrain, and their report.

Both export a width per frequency bucket of every categorical field; the block's `freeze()` gives a
`MixedWidthEmbedding` storing each id at its width (with `lab.retrain_norm`, behind a batch norm).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from recnas.data.schema import Schema
from recnas.errors import ConfigError
from recnas.methods.base import SearchMethod, refuse_field_aware
from recnas.methods.render import ep_against_auc, search_curve, table, width_grid
from recnas.nn.models import CTRModel, build_model


def non_empty_buckets(rows: dict[str, list[int]], widths: dict[str, list[int]]) -> dict[str, Any]:
    """arch.json's `bucket_rows` and `bucket_widths` per field, head first, leaving out buckets with no ids.

    A field with fewer ids than buckets leaves its last buckets empty; a width listed for them would read as
    memory the field does not store.
    """
    keep = {n: [i for i, r in enumerate(rows[n]) if r > 0] for n in widths}
    return {"bucket_rows": {n: [rows[n][i] for i in k] for n, k in keep.items()},
            "bucket_widths": {n: [widths[n][i] for i in k] for n, k in keep.items()}}


class MixedWidthMethod(SearchMethod):
    """A search whose block exports per-id widths (subclasses: `block`, `full_dim`, `search`)."""

    curve_keys: tuple[str, str, str, str, str] = ("step", "reward", "decision_cost", "controller step", "mean reward")

    def check(self) -> None:
        """One vector per field, dense gradients."""
        super().check()
        refuse_field_aware(self.cfg, self.name)
        if self.cfg.trainer.sparse:
            raise ConfigError(f"{self.name}'s mixed-width tables take dense gradients (their embedding L2 acts on "
                              "whole tables); set trainer.sparse=false")

    def full_dim(self) -> int:
        """The full embedding width (the baseline's)."""
        return int(self.cfg.model.embedding_dim)

    def block(self, schema: Schema) -> Any:
        """The search embedding."""
        raise NotImplementedError

    def supernet(self, schema: Schema) -> CTRModel:
        """The configured zoo model with the search embedding."""
        return build_model(self.cfg.model.name, schema, embedding=self.block(schema), **self.cfg.model.build_kwargs())

    def frozen_parts(self, schema: Schema, arch: dict[str, Any]) -> dict[str, nn.Module]:
        """Every id at its width, frozen from the search embedding (fresh weights)."""
        with torch.random.fork_rng(devices=[]):  # the search block's own init must not move the retrain's
            block = self.block(schema)
        return {"embedding": block.freeze(arch["sample"], sparse=self.cfg.trainer.sparse,
                                          norm_gamma=self.cfg.lab.retrain_norm)}

    def baseline_config(self) -> Any:
        """Every id at the full width."""
        base = self.cfg.model_copy(deep=True)
        base.model.embedding_dim = self.full_dim()
        return base

    def warnings(self, arch: dict[str, Any]) -> list[str]:
        """A searched field whose every id stores no column is embedded as zeros: the field is dropped, not sized."""
        dropped = [f for f, ep in arch["field_ep"].items() if ep == 0]
        if not dropped:
            return []
        return [f"field(s) {dropped[:8]} store no column for any id (embedded as zeros, dropped from the model); "
                "keep a floor (search.field_floor=true for NIS) or lower the memory pressure (search.memory_lambda)"]

    @staticmethod
    def ep_keys(field_ep: dict[str, int], full: dict[str, int]) -> dict[str, Any]:
        """EP per field and in all, against the full width."""
        return {"field_ep": field_ep, "full_field_ep": full, "ep": sum(field_ep.values()),
                "full_ep": sum(full.values()),
                "searched_ep_fraction": sum(field_ep.values()) / max(sum(full.values()), 1)}

    def field_memory(self, arch: dict[str, Any]) -> dict[str, float]:
        """The field's stored floats over its ids: its mean width per id."""
        return {f: arch["field_ep"][f] / max(sum(arch["bucket_rows"][f]), 1) for f in arch["field_ep"]}

    def summary(self, arch: dict[str, Any]) -> list[str]:
        """Widths per frequency bucket and the EP share."""
        lines = [f"  {f}: widths per frequency bucket (head first) {w}" for f, w in arch["bucket_widths"].items()]
        return [*lines, f"searched fields store {arch['ep']:,} of {arch['full_ep']:,} floats at full width "
                        f"({arch['ep'] / max(arch['full_ep'], 1):.1%})"]

    def architecture(self, arch: dict[str, Any], schema: Schema) -> dict[str, Any]:
        """Width per frequency bucket of every field, with the EP it stores against full width."""
        card = {f.name: f.cardinality for f in schema.fields}
        fields = [{"field": f, "cardinality": card.get(f), "bucket_rows": arch["bucket_rows"][f],
                   "bucket_widths": w, "ep": arch["field_ep"][f], "full_ep": arch["full_field_ep"][f],
                   "searched_ep_fraction": arch["field_ep"][f] / max(arch["full_field_ep"][f], 1),
                   **({"blocks": arch["blocks"][f]} if "blocks" in arch else {}),
                   **({"sizes": arch["sizes"][f]} if "sizes" in arch else {})}
                  for f, w in arch["bucket_widths"].items()]
        return {"fields": fields, "common_dim": arch["common_dim"], "ep": arch["ep"], "full_ep": arch["full_ep"],
                "searched_ep_fraction": arch["ep"] / max(arch["full_ep"], 1)}

    def html(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[str]:
        """The control's margin, the layout table and the search trace."""
        res, a = rep["results"], rep["architecture"]
        out = []
        if "control" in res:
            out.append(f"<p>control: {res['control'].get('what')}; test AUC of the searched model minus the "
                       f"control's: {res.get('test_auc_gain_over_control', float('nan')):+.4f}</p>")
        out += [f"<h2>Embedding layout per field</h2><p>full width {a['common_dim']}; searched fields store "
                f"{a['ep']:,} of {a['full_ep']:,} floats at full width ({a['searched_ep_fraction']:.1%})</p>",
                table([[f["field"], f["cardinality"], f["ep"], f["searched_ep_fraction"],
                        " ".join(f"{r}x{w}" for r, w in zip(f["bucket_rows"], f["bucket_widths"], strict=True))]
                       for f in a["fields"]],
                      ["field", "cardinality", "floats stored", "of full", "rows x width per bucket, head first"])]
        curve = rep["search"]["curve"]
        if curve:
            keys = list(curve[0])
            step = max(len(curve) // 20, 1)
            out += ["<h2>Search trace</h2>", table([[c.get(k) for k in keys] for c in curve[::step]], keys)]
        return out

    def plots(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[tuple[str, Any]]:
        """The search trace, width per frequency bucket, and EP against test AUC."""
        out = []
        curve = rep["search"]["curve"]
        x_key, y_key, y2_key, x_label, y_label = self.curve_keys
        if curve:
            out.append(("Search curve", search_curve(curve, y2_key, self.curve_y2_label, x_key=x_key, x_label=x_label,
                                                     y_key=y_key, y_label=y_label, marker=None)))
        if rep["architecture"]["fields"]:
            out.append(("Embedding width per frequency bucket", width_grid(rep["architecture"]["fields"])))
        fig = ep_against_auc(rep["results"])
        if fig is not None:
            out.append(("EP against test AUC", fig))
        return out

    curve_y2_label = "C_M of the decision"
