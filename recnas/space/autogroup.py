"""AutoGroup's searchable feature sets (Liu et al., SIGIR 2020).

Every field i of every set j of every order p has a keep/drop choice with a structure logit alpha: keep with
probability sigmoid(alpha). The search relaxes it with the binary Gumbel-softmax over (sigmoid(alpha),
1 - sigmoid(alpha)): m = sigmoid((alpha + log u - log(1 - u)) / tau), u uniform, made hard (0/1) in the forward pass
and soft in the backward one (straight-through), so the weights train on the discrete sets they will be retrained
with. The temperature tau is annealed by the one-shot strategy (`set_temperature`); outside training the sets are
the logits' signs. The interactions are `recnas.nn.feature_sets`'s.

Where the public implementation (huawei-noah/vega) differs, on purpose: the self-power compensation counts only
the fields in the set (it subtracts it for every field, scaled by 0.01); the logits start at a set value (the
method's default 2: full sets, then pruned) and train at an ordinary learning rate (it starts them at +-1e-3, a coin
flip, and steps Adam at 1e2-1e4, which flips memberships every batch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from recnas.errors import ConfigError
from recnas.nn.feature_sets import FeatureSets, FeatureSetsBase
from recnas.space.choice import Choice, Sample


def member_label(order: int, set_index: int, field: str) -> str:
    """Choice label of `field`'s membership in set `set_index` (from 0) of order `order` (from 1)."""
    return f"set/order_{order}/{set_index}/{field}"


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in bits of keep-probabilities `p` (elementwise)."""
    p = p.clamp(1e-7, 1 - 1e-7)
    return -(p * torch.log2(p) + (1 - p) * torch.log2(1 - p))


class AutoGroupSets(FeatureSetsBase):
    """Feature sets whose memberships are searched; a `SearchableBlock` (see the module docstring).

    `set_counts[p]` sets of order p + 1. `init_logit` is every structure logit's start (2: keep with p = 0.88).
    `normalise` applies to the search, `retrain_normalise` to the frozen sets `freeze` returns.
    """

    def __init__(self, field_names: Sequence[str], dim: int, set_counts: Sequence[int], compensation: float = 1.0,
                 normalise: bool = True, init_logit: float = 2.0, gumbel: bool = True,
                 retrain_normalise: bool = False, terms: str = "paper") -> None:
        if any(n < 1 for n in set_counts):
            raise ConfigError(f"every order needs at least one set, got {list(set_counts)} sets per order")
        if len(set_counts) > len(field_names):
            raise ConfigError(f"{len(set_counts)} orders over {len(field_names)} fields: an order-p set needs p "
                              "distinct fields")
        super().__init__(field_names, dim, set_counts, compensation, normalise, terms)
        self.structure_logits = nn.ParameterList(
            [nn.Parameter(torch.full((len(self.field_names), n), float(init_logit))) for n in self.set_counts])
        self.tau = 1.0
        self.gumbel = gumbel
        self.retrain_normalise = retrain_normalise
        self._fixed: list[torch.Tensor] | None = None

    # ---- SearchableBlock ----------------------------------------------------------------------
    def labels(self) -> list[tuple[int, int, int, str]]:
        """(order index, set index, field index, label) of every membership choice."""
        return [(p, j, i, member_label(p + 1, j, f)) for p, n in enumerate(self.set_counts) for j in range(n)
                for i, f in enumerate(self.field_names)]

    def choices(self) -> list[Choice]:
        """One keep/drop decision per field, set and order."""
        return [Choice(label, (False, True)) for *_, label in self.labels()]

    def arch_parameters(self) -> list[nn.Parameter]:
        """The structure logits."""
        return list(self.structure_logits)

    def set_temperature(self, tau: float) -> None:
        """The Gumbel-softmax temperature (annealed by the one-shot strategy)."""
        self.tau = float(tau)

    def set_sample(self, sample: Mapping[str, Any] | None) -> None:
        """Fix the memberships to `sample`, or None to search again."""
        if sample is None:
            self._fixed = None
            return
        fixed = [torch.zeros_like(a) for a in self.structure_logits]
        for p, j, i, label in self.labels():
            fixed[p][i, j] = 1.0 if sample[label] else 0.0
        self._fixed = fixed

    def keep_probs(self) -> list[torch.Tensor]:
        """`[F, S_p]` sigmoid(alpha) per order."""
        return [torch.sigmoid(a.detach()) for a in self.structure_logits]

    def export(self) -> Sample:
        """Keep a field in a set where its logit is positive (keep more likely than drop)."""
        return {label: bool(self.structure_logits[p][i, j] > 0) for p, j, i, label in self.labels()}

    def export_probs(self) -> dict[str, list[float]]:
        """[drop, keep] probability of every membership."""
        probs = self.keep_probs()
        return {label: [1.0 - float(probs[p][i, j]), float(probs[p][i, j])] for p, j, i, label in self.labels()}

    def sets_of(self, sample: Mapping[str, Any]) -> list[list[list[str]]]:
        """Every set of `sample` by field names, per order (empty sets included)."""
        out: list[list[list[str]]] = [[[] for _ in range(n)] for n in self.set_counts]
        for p, j, i, label in self.labels():
            if sample.get(label):
                out[p][j].append(self.field_names[i])
        return out

    def freeze(self, sample: Mapping[str, Any]) -> FeatureSets:
        """The retrain block: the sets of `sample` that compute something, with fresh weights.

        An empty set computes nothing, nor, at compensation 1, does a set of order p >= 2 with one field (its only
        term is the self-power the compensation subtracts), nor, with distinct terms, a set of order p with fewer
        than p fields, so they are left out; an order left without a set stays, empty.
        """
        known = {label for *_, label in self.labels()}
        unknown = [k for k in sample if k.startswith("set/") and k not in known]
        if unknown:
            raise ConfigError(f"sample names set memberships this block does not have: {unknown[:3]}")
        if self.terms == "distinct":
            least = [p + 1 for p in range(self.orders)]
        else:
            least = [1 if p == 0 or self.compensation != 1 else 2 for p in range(self.orders)]
        kept = [[s for s in order if len(s) >= least[p]] for p, order in enumerate(self.sets_of(sample))]
        return FeatureSets(self.field_names, self.dim, kept, self.compensation, self.retrain_normalise, self.terms)

    # ---- the search path ----------------------------------------------------------------------
    def memberships(self) -> list[torch.Tensor]:
        """Hard memberships: a fixed sample's; while training, straight-through Gumbel draws; else the signs."""
        if self._fixed is not None:
            return self._fixed
        if not self.training:
            return [(a > 0).to(a.dtype) for a in self.structure_logits]
        out = []
        for a in self.structure_logits:
            noise = 0.0
            if self.gumbel:
                u = torch.rand_like(a).clamp(1e-6, 1 - 1e-6)
                noise = torch.log(u) - torch.log1p(-u)
            soft = torch.sigmoid((a + noise) / self.tau)
            out.append((soft > 0.5).to(a.dtype) - soft.detach() + soft)
        return out

    def memory_cost(self) -> torch.Tensor:
        """Expected memberships, summed over every field, set and order (the search's pull toward small sets)."""
        return torch.stack([torch.sigmoid(a).sum() for a in self.structure_logits]).sum()

    def membership_entropy(self, probs: list[torch.Tensor] | None = None) -> float:
        """Mean entropy (bits) of the keep/drop choices `probs` (default `keep_probs()`): 1 undecided, 0 settled."""
        values = torch.cat([binary_entropy(p).flatten() for p in (probs or self.keep_probs())])
        return float(values.mean()) if len(values) else 0.0

    def trace(self) -> dict[str, Any]:
        """What the search history records each epoch: the entropy and how many fields each order's sets hold."""
        probs = self.keep_probs()
        kept = [(a.detach() > 0).sum(0).tolist() for a in self.structure_logits]
        return {"membership_entropy": self.membership_entropy(probs),
                "set_sizes": {f"order_{p + 1}": sizes for p, sizes in enumerate(kept)},
                "keep_probs": {f"order_{p + 1}": q.tolist() for p, q in enumerate(probs)}}

