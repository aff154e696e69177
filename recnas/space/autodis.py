"""AutoDis: learned soft discretisation of numerical fields.

Guo et al., "An Embedding Learning Framework for Numerical Features in CTR Prediction", KDD'21
(arXiv 2012.08986).

Per numerical field, H meta-embeddings; the (normalised) value x is mapped to H logits, either by the
tutorial's form `x_hat = w*x + b` or by the paper's two-layer form with a skip connection
`h = LeakyReLU(w*x + b)`, `x_hat = W h + alpha*h`; then `p = softmax(x_hat / tau)` and the field's
embedding aggregates the meta-embeddings by weighted average (default, end-to-end differentiable),
max-pooling or top-K sum. Missing values get their own vector. The bias b is ours: the paper writes
`w*x` (dense layers of its implementations carry a bias); without it every logit is a line through
x = 0, so only the two extreme-slope meta-embeddings can ever win.

Training is one stage, as in the paper: the discretiser is learned with the network. `export()` derives
the hard discretisation (the value ranges where each meta-embedding wins) and `freeze()` builds a plain
bucket encoder from it; `assignment()` gives p(h|x) over the value range for the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recnas.data.schema import FieldSpec, NumericStats
from recnas.errors import ConfigError, SchemaError
from recnas.nn.numerical import (
    NUMERICAL_ENCODERS,
    BucketEncoder,
    NumericalEncoder,
    field_stats,
    is_skewed_count,
    register_encoder,
)
from recnas.space.choice import Choice, Sample

LOGIT_FORMS = ("linear", "skip")
AGGREGATIONS = ("weighted", "max", "topk")
INPUTS = ("auto", "zscore", "log")
OPTION_KEYS = ("meta_embeddings", "logits", "temperature", "learn_temperature", "aggregation", "top_k",
               "skip_alpha", "input", "n_buckets")


def input_transform(stats: NumericStats, mode: str) -> tuple[bool, float, float]:
    """(use log1p, centre, scale) of the normalisation `z = (t(x) - centre) / scale`."""
    use_log = mode == "log" or (mode == "auto" and is_skewed_count(stats))
    if not use_log:
        return False, float(stats.mean), float(stats.std) if stats.std > 0 else 1.0
    lq = np.log1p(np.maximum(np.asarray(stats.quantiles, dtype=np.float64), 0.0))
    if len(lq) == 0:
        return True, 0.0, 1.0
    std = float(lq.std())  # percentiles are evenly spaced in probability: their moments approximate the field's
    return True, float(lq.mean()), std if std > 0 else 1.0


class AutoDisEncoder(NumericalEncoder):
    """AutoDis for a group of numerical fields: `[B, F] -> [B, F, D]`.

    Args:
        fields: the numerical fields (fitted: their train statistics drive the input normalisation).
        dim: embedding dimension D.
        meta_embeddings: H, meta-embeddings per field (paper's H_j; default 20).
        logits: `skip` (the paper's two-layer form with skip connection) or `linear` (the tutorial's).
        temperature: tau of the softmax; `learn_temperature` makes it a learned per-field value.
        aggregation: `weighted` (sum_h p_h m_h), `max` (the most probable m_h) or `topk` (sum of the
            `top_k` most probable m_h); only `weighted` passes gradients to the discretiser.
        skip_alpha: the skip-connection factor alpha of the `skip` form.
        input: `zscore`, `log` (z-score of log1p) or `auto` (log for non-negative right-skewed fields).
    """

    kind = "autodis"

    def __init__(
        self, fields: list[FieldSpec], dim: int, init_std: float = 1e-4, meta_embeddings: int = 20,
        logits: str = "skip", temperature: float = 1.0, learn_temperature: bool = False,
        aggregation: str = "weighted", top_k: int = 3, skip_alpha: float = 0.1, input: str = "auto",
        n_buckets: int | None = None,
    ) -> None:
        super().__init__(fields, dim)
        if meta_embeddings < 2:
            raise SchemaError(f"autodis meta_embeddings must be >= 2, got {meta_embeddings}")
        if logits not in LOGIT_FORMS:
            raise SchemaError(f"autodis logits must be one of {LOGIT_FORMS}, got {logits!r}")
        if aggregation not in AGGREGATIONS:
            raise SchemaError(f"autodis aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        if input not in INPUTS:
            raise SchemaError(f"autodis input must be one of {INPUTS}, got {input!r}")
        if not temperature > 0:
            raise SchemaError(f"autodis temperature must be > 0, got {temperature}")
        if aggregation == "topk" and not 1 <= top_k <= meta_embeddings:
            raise SchemaError(f"autodis top_k must be in [1, meta_embeddings={meta_embeddings}], got {top_k}")
        self.fields = list(fields)
        n, h = len(fields), int(meta_embeddings)
        self.h = h
        self.logit_form, self.aggregation, self.top_k, self.skip_alpha = logits, aggregation, int(top_k), skip_alpha
        self.options = {"meta_embeddings": h, "logits": logits, "temperature": temperature,
                        "learn_temperature": learn_temperature, "aggregation": aggregation, "top_k": top_k,
                        "skip_alpha": skip_alpha, "input": input}
        norms = [input_transform(field_stats(f), input) for f in fields]
        self.register_buffer("use_log", torch.tensor([u for u, _, _ in norms]), persistent=False)
        self.register_buffer("centre", torch.tensor([c for _, c, _ in norms], dtype=torch.float32), persistent=False)
        self.register_buffer("scale", torch.tensor([s for _, _, s in norms], dtype=torch.float32), persistent=False)
        self.w = nn.Parameter(torch.randn(n, h))
        self.b = nn.Parameter(torch.randn(n, h))
        bound = (6.0 / (2 * h)) ** 0.5  # Xavier-uniform for the H x H map of the skip form
        self.mix = nn.Parameter(torch.empty(n, h, h).uniform_(-bound, bound)) if logits == "skip" else None
        log_tau = torch.full((n, 1), float(np.log(temperature)))
        self.log_tau = nn.Parameter(log_tau) if learn_temperature else None
        if not learn_temperature:
            self.register_buffer("fixed_log_tau", log_tau, persistent=False)
        self.meta = nn.Parameter(torch.randn(n, h, dim) * init_std)
        self.rows = [h + 1] * n  # meta-embeddings and the missing-value vector

    # --- the encoder -------------------------------------------------------------------------------
    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, F]` raw values -> the discretiser's input (z-score, of log1p for log fields)."""
        t = torch.where(self.use_log, torch.log1p(x.clamp(min=0.0)), x)
        return (t - self.centre) / self.scale

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """p(h|x): `[B, F]` finite raw values -> `[B, F, H]`."""
        z = self.normalise(x).unsqueeze(-1)
        pre = z * self.w + self.b  # [B, F, H]
        if self.mix is None:
            logits = pre
        else:
            hidden = F.leaky_relu(pre)
            logits = torch.einsum("bfh,fgh->bfg", hidden, self.mix) + self.skip_alpha * hidden
        log_tau = self.log_tau if self.log_tau is not None else self.fixed_log_tau
        return torch.softmax(logits / log_tau.exp(), dim=-1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, F] -> [B, F, D]` by the chosen aggregation of the meta-embeddings."""
        p = self.probabilities(x)
        if self.aggregation == "weighted":
            return torch.einsum("bfh,fhd->bfd", p, self.meta)
        k = 1 if self.aggregation == "max" else self.top_k
        idx = p.topk(k, dim=-1).indices  # [B, F, k]
        rows = idx + (torch.arange(self.num_fields, device=x.device) * self.h).view(1, -1, 1)
        return F.embedding(rows, self.meta.reshape(-1, self.dim)).sum(2)

    def field_tensors(self, j: int) -> list[torch.Tensor]:
        """Field j's discretiser, meta-embeddings and missing vector."""
        out = [self.w[j], self.b[j]]
        if self.mix is not None:
            out.append(self.mix[j])
        if self.log_tau is not None:
            out.append(self.log_tau[j])
        return [*out, self.meta[j], self.missing[j]]

    # --- the searchable-block protocol -------------------------------------------------------------
    def label(self, field: str) -> str:
        """Label of a field's derived discretisation in `export()`."""
        return f"disc/{field}"

    def choices(self) -> list[Choice]:
        """None: AutoDis learns a continuous discretiser in one stage, there are no discrete candidates."""
        return []

    def arch_parameters(self) -> list[nn.Parameter]:
        """The discretiser (w, b, W, tau): trained with the network (one stage, as in the paper)."""
        return [p for p in (self.w, self.b, self.mix, self.log_tau) if p is not None]

    def set_sample(self, sample: Mapping[str, Any] | None) -> None:
        """Only None (the soft path) applies; a hard discretisation is `freeze(export())`."""
        if sample is not None:
            raise ConfigError("AutoDis has no sampled paths; freeze(export()) builds the hard discretisation")

    def grid(self, points: int = 200) -> torch.Tensor:
        """`[points, F]` values spanning each field's train range, evenly spaced in the discretiser's input."""
        lo = torch.tensor([field_stats(f).min for f in self.fields], dtype=torch.float32)
        hi = torch.tensor([field_stats(f).max for f in self.fields], dtype=torch.float32)
        s = torch.linspace(0.0, 1.0, points).unsqueeze(1)
        lin = lo + s * (hi - lo)
        llo, lhi = torch.log1p(lo.clamp(min=0)), torch.log1p(hi.clamp(min=0))
        logs = torch.expm1(llo + s * (lhi - llo))
        return torch.where(self.use_log, logs, lin)

    @torch.no_grad()
    def assignment(self, points: int = 200) -> dict[str, dict[str, Any]]:
        """Per field, p(h|x) on a grid over the train range: `{field: {x, p [points][H], argmax}}`."""
        x = self.grid(points)
        p = self.probabilities(x)
        return {f: {"x": x[:, j].tolist(), "p": p[:, j].tolist(), "argmax": p[:, j].argmax(-1).tolist(),
                    "transform": "log1p" if bool(self.use_log[j]) else "identity"}
                for j, f in enumerate(self.field_names)}

    def export(self) -> Sample:
        """The hard discretisation: per field, the edges where the most probable meta-embedding changes."""
        out: Sample = {}
        for f, a in self.assignment(points=1000).items():
            x, arg = np.asarray(a["x"]), np.asarray(a["argmax"])
            change = np.nonzero(arg[1:] != arg[:-1])[0]
            out[self.label(f)] = [float((x[i] + x[i + 1]) / 2) for i in change]
        return out

    def export_probs(self) -> dict[str, list[float]]:
        """Per field, the share of the train range's grid each meta-embedding wins (how many buckets are used)."""
        out: dict[str, list[float]] = {}
        for f, a in self.assignment().items():
            counts = np.bincount(np.asarray(a["argmax"]), minlength=self.h)
            out[self.label(f)] = (counts / counts.sum()).tolist()
        return out

    def freeze(self, sample: Mapping[str, Any]) -> BucketEncoder:
        """A plain bucket encoder with the exported edges (fresh weights, no discretiser)."""
        missing = [self.label(f) for f in self.field_names if self.label(f) not in sample]
        if missing:
            raise ConfigError(f"AutoDis sample lacks the edges of {missing}")
        edges = [np.asarray(sample[self.label(f)], dtype=np.float64) for f in self.field_names]
        return BucketEncoder(self.fields, self.dim, edges)


def build_autodis(fields: list[FieldSpec], dim: int, init_std: float, options: Mapping[str, Any]) -> AutoDisEncoder:
    """Registry factory: AutoDis with `options` (an unknown key is an error naming it)."""
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ConfigError(f"unknown AutoDis option(s) {unknown}; known: {list(OPTION_KEYS)}")
    opts = {k: v for k, v in options.items() if k != "n_buckets"}
    return AutoDisEncoder(fields, dim, init_std, **opts)


if "autodis" not in NUMERICAL_ENCODERS:
    register_encoder("autodis", build_autodis)
