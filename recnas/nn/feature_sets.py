"""Feature sets and their order-p interactions: the block of the AutoGroup model (Liu et al., SIGIR 2020).

For each order p and each set s of that order, a set vector g = sum_{i in s} w_i e_i (a learned weight per field
and set) gives the set's interaction

    p = 1:   I = g                                            (a D-vector)
    p >= 2:  I = sum_k [ g^p - c * sum_{i in s} (w_i e_i)^p ]_k     (a scalar; powers taken per dimension k)

With c = 1 (the paper's formula) the subtraction removes each field's pure self-power. For p = 2 that leaves
exactly the weighted pairwise products, 2 * sum_{i<j} w_i w_j <e_i, e_j>. For p = 3 it leaves
3 * sum_{i != j} w_i^2 w_j e_i^2 e_j + 6 * sum_{i<j<l} w_i w_j w_l e_i e_j e_l: the mixed terms that repeat a field
(e_i^2 e_j) stay, only the pure cubes go. Cost O(F * D) per set, not the C(F, p) tuples.

`terms="distinct"` keeps the products of p distinct fields only, sum_k sum_{i1<...<ip} prod_j (w_ij e_ij)_k (for
p = 2 half the paper's term; for p = 3 the triples without the mixed terms), computed from the power sums by
Newton's identities, O(p * F * D) per set (`distinct_products`); `c` does not apply.

With `normalise`, embeddings go through a batch norm without affine weights first (the public implementation's
guard against order-p powers overflowing) and the order >= 2 scalars through another. Off by default: with the
embedding L2 the embeddings stay small, and both norms cost accuracy (the autogroup model with every field in every
set, library defaults, valid AUC 0.7948 with them and 0.8145 without on `recnas synth` data with a planted
third-order interaction; 0.6646 and 0.7478 on 20,000 rows of the demo data; DeepFM 0.8053 on the first). `FeatureSets`
is the frozen (retrain) form: the memberships are fixed, the weights are trained. Its `spec()` names the fields of
every set, so `recnas.nn.frozen.build_frozen` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import torch
from torch import nn

from recnas.data.schema import Schema
from recnas.errors import ConfigError
from recnas.nn.frozen import register_frozen

Terms = Literal["paper", "distinct"]  # what an order-p set's scalar holds (module docstring)
TERMS: tuple[str, ...] = get_args(Terms)


def power_sum(x: torch.Tensor, coef: torch.Tensor, k: int) -> torch.Tensor:
    """`[B, S, D]`: p_k = sum_i (w_i e_i)^k over the fields of each set, per dimension (p_1 is the set vector g)."""
    return torch.einsum("bfd,fs->bsd", x.pow(k), coef.pow(k)) if k > 1 else torch.einsum("bfd,fs->bsd", x, coef)


def set_interactions(x: torch.Tensor, coef: torch.Tensor, order: int, compensation: float,
                     terms: str = "paper") -> torch.Tensor:
    """`x [B, F, D]`, `coef [F, S]` (membership x weight per field and set) -> `[B, S * D]` (order 1) or `[B, S]`."""
    g = power_sum(x, coef, 1)
    if order == 1:
        return g.flatten(1)
    if terms == "distinct":
        return distinct_products(x, coef, order, g).sum(-1)
    out = g.pow(order)
    if compensation:
        out = out - compensation * power_sum(x, coef, order)
    return out.sum(-1)


def distinct_products(x: torch.Tensor, coef: torch.Tensor, order: int, g: torch.Tensor | None = None) -> torch.Tensor:
    """`[B, S, D]`: per set and dimension, the sum of the products of every `order` distinct weighted fields.

    That is the elementary symmetric polynomial e_order of the w_i e_i, by Newton's identities from the power sums
    (`power_sum`): `k e_k = sum_{j=1..k} (-1)^(j-1) e_{k-j} p_j`, O(order x F x D) per set. `g`: `p_1` where the
    caller has it.
    """
    sums = [g if g is not None else power_sum(x, coef, 1)]
    sums += [power_sum(x, coef, k) for k in range(2, order + 1)]
    e = [torch.ones_like(sums[0])]
    for k in range(1, order + 1):
        e.append(sum((-1) ** (j - 1) * e[k - j] * sums[j - 1] for j in range(1, k + 1)) / k)
    return e[order]


def set_weights(num_fields: int, num_sets: int) -> torch.Tensor:
    """Fresh per-field, per-set weights, Xavier-uniform (the reference implementation's start), from torch's RNG."""
    bound = (6.0 / (num_fields + num_sets)) ** 0.5
    return (torch.rand(num_fields, num_sets) * 2 - 1) * bound


class FeatureSetsBase(nn.Module):
    """What the frozen and the searchable feature sets share: the norms, the weights, the output layout."""

    def __init__(self, field_names: Sequence[str], dim: int, set_counts: Sequence[int], compensation: float = 1.0,
                 normalise: bool = False, terms: str = "paper") -> None:
        super().__init__()
        if terms not in TERMS:
            raise ConfigError(f"feature-set terms must be one of {TERMS}, got {terms!r}")
        if not set_counts:
            raise ConfigError("feature sets need at least one order")
        if not field_names:
            raise ConfigError("feature sets need at least one embedded field")
        if dim < 1:
            raise ConfigError(f"feature sets need equal embedding widths of at least 1, got {dim}")
        self.field_names = list(field_names)
        self.dim = int(dim)
        self.set_counts = [int(n) for n in set_counts]
        self.orders = len(self.set_counts)
        self.compensation = float(compensation)
        self.normalise = bool(normalise)
        self.terms = terms
        self.weights = nn.ParameterList([nn.Parameter(set_weights(len(self.field_names), n)) for n in self.set_counts])
        flat = len(self.field_names) * self.dim  # one norm per order: each order may read its own table
        self.norms = nn.ModuleList([nn.BatchNorm1d(flat, affine=False) for _ in self.set_counts]) if normalise else None
        high = sum(self.set_counts[1:])
        self.high_norm = nn.BatchNorm1d(high, affine=False) if normalise and high else None

    @property
    def out_dim(self) -> int:
        """Width of the output: D per order-1 set, one per higher-order set."""
        return self.set_counts[0] * self.dim + sum(self.set_counts[1:])

    def memberships(self) -> list[torch.Tensor]:
        """`[F, S_p]` membership (0..1) of every field in every set, per order."""
        raise NotImplementedError

    def forward(self, e: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """`[B, F, D]` embeddings (one per order, or one for all) -> `[B, out_dim]` (order-1 vectors, then scalars)."""
        xs = list(e) if isinstance(e, (list, tuple)) else [e] * self.orders
        if len(xs) != self.orders:
            raise ConfigError(f"feature sets of {self.orders} orders got {len(xs)} embeddings")
        if self.norms is not None:
            xs = [norm(x.flatten(1)).view_as(x) for norm, x in zip(self.norms, xs, strict=True)]
        parts = [set_interactions(x, m * w, p + 1, self.compensation, self.terms)
                 for p, (x, m, w) in enumerate(zip(xs, self.memberships(), self.weights, strict=True))]
        rest = torch.cat(parts[1:], dim=1) if len(parts) > 1 else xs[0].new_zeros(len(xs[0]), 0)
        if self.high_norm is not None:
            rest = self.high_norm(rest)
        return torch.cat([parts[0], rest], dim=1)


class FeatureSets(FeatureSetsBase):
    """Fixed feature sets (the retrain block, or the AutoGroup model's default: every field in every set).

    `sets[p]` lists the sets of order p + 1, each a list of field names.
    """

    def __init__(self, field_names: Sequence[str], dim: int, sets: Sequence[Sequence[Sequence[str]]],
                 compensation: float = 1.0, normalise: bool = False, terms: str = "paper") -> None:
        super().__init__(field_names, dim, [len(s) for s in sets], compensation, normalise, terms)
        index = {n: i for i, n in enumerate(self.field_names)}
        unknown = sorted({f for order in sets for s in order for f in s} - set(index))
        if unknown:
            raise ConfigError(f"feature sets name fields the model does not embed: {unknown[:5]}; its fields are "
                              f"{self.field_names}")
        self.sets = [[sorted(set(s), key=index.__getitem__) for s in order] for order in sets]
        for p, order in enumerate(self.sets):
            mask = torch.zeros(len(self.field_names), len(order))
            for j, members in enumerate(order):
                mask[[index[f] for f in members], j] = 1.0
            self.register_buffer(f"mask_{p}", mask, persistent=False)

    @classmethod
    def every_field(cls, field_names: Sequence[str], dim: int, orders: int = 3, sets_per_order: int | None = None,
                    **kw: Any) -> FeatureSets:
        """`orders` orders of `sets_per_order` (default: one per field) sets, each holding every field."""
        n = sets_per_order if sets_per_order is not None else len(field_names)
        return cls(field_names, dim, [[list(field_names)] * n for _ in range(orders)], **kw)

    def memberships(self) -> list[torch.Tensor]:
        """The fixed 0/1 masks."""
        return [getattr(self, f"mask_{p}") for p in range(self.orders)]

    def spec(self) -> dict[str, Any]:
        """What rebuilds this module (`recnas.nn.frozen.build_frozen`): every set by field names."""
        return {"kind": "feature_sets", "field_names": self.field_names, "dim": self.dim,
                "sets": {f"order_{p + 1}": order for p, order in enumerate(self.sets)},
                "compensation": self.compensation, "normalise": self.normalise, "terms": self.terms}


@register_frozen("feature_sets")
def _build_feature_sets(schema: Schema, spec: Mapping[str, Any], encoding: Mapping[str, Any]) -> FeatureSets:
    orders = sorted(spec["sets"], key=lambda k: int(k.removeprefix("order_")))
    return FeatureSets(spec["field_names"], int(spec["dim"]), [spec["sets"][k] for k in orders],
                       float(spec["compensation"]), bool(spec["normalise"]), spec.get("terms", "paper"))
