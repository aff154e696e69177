"""AutoDim: a per-field embedding dimension chosen by gradient descent.

Zhao et al., Memory-efficient Embedding for Recommendations (arXiv 2006.14827) / Field-aware Embedding
Space Searching in Recommender Systems, WWW 2021.

Search: every field has one embedding of the largest candidate size; candidate d uses its first d
columns (weight sharing). Each candidate is lifted to a common dimension by its own per-field linear map
plus batch norm, and the field's output is the Gumbel-softmax-weighted sum over candidates. The batch
norm's scale starts small (`lift_gamma`, default 0.15): at scale 1 the lifted vectors are so large that
FM logits start huge and every field collapses to the smallest candidate. Export takes one size per
field (`pick`: the median of the field's size distribution by default, or the argmax), optionally cut down
to a parameter budget; retraining builds `ProjectedEmbedding`, a fresh
per-field-dimension table with the same linear + batch-norm lift, so any zoo model that consumes
equal-dimension field embeddings works unchanged.

An optional memory term (the strategy's `memory_lambda` times `memory_cost()`) pushes toward small
sizes: the expected dimension of each field as a fraction of the largest candidate, averaged over
fields, so each field counts once whatever its vocabulary size.

Why the median: the sizes are ordered, and a field whose data rewards width often ends with its mass spread
over the larger sizes (0.31, 0.06, 0.14, 0.21, 0.28 over 2..32) while the smallest size holds the single
largest share; the argmax then exports 2 although most of the mass says 16 or more. The median (the
smallest size with at least half the mass at or below it) reads the distribution as the ordinal choice it
is. On planted data (seeds 1-10, the same ten searches exported both ways) it gave the rank-8 pair more
width than every noise field on 10 of 10 seeds, the argmax on 6 (bench/log/2026-12-06-issue26-known-answers.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.errors import ConfigError
from recnas.nn.embedding import FieldEmbedding, NumericalSpec
from recnas.nn.facade import EmbeddingFacade
from recnas.nn.projected import LIFT_GAMMA, Lift, ProjectedEmbedding
from recnas.space.choice import Choice, Sample

DEFAULT_CANDIDATES = (2, 4, 8, 16, 32)
PICKS = ("median", "argmax")


def dim_label(field: str) -> str:
    """Choice label of a field's embedding dimension."""
    return f"dim/{field}"


def sample_ep(rows: Mapping[str, int], dims: Mapping[str, int]) -> int:
    """Embedding parameters of per-field dimensions `dims`."""
    return int(sum(rows[f] * dims[f] for f in rows))


class AutoDimEmbedding(EmbeddingFacade):
    """The AutoDim search embedding (a `SearchableBlock`): `[B, F, common_dim]` mixed over candidate sizes."""

    def __init__(
        self, schema: Schema, candidates: Sequence[int] = DEFAULT_CANDIDATES, common_dim: int | None = None,
        numerical: NumericalSpec = "auto", pooling: str = "mean", lift_gamma: float = LIFT_GAMMA,
        max_ep: int | None = None, max_ep_fraction: float | None = None, fill_budget: bool = False,
        numerical_options: Mapping[str, Any] | None = None, pick: str = "median",
    ) -> None:
        super().__init__()
        if pick not in PICKS:
            raise ConfigError(f"AutoDim pick must be one of {PICKS}, got {pick!r}")
        self.pick = pick
        if max_ep is not None and max_ep_fraction is not None:
            raise ConfigError("give max_ep or max_ep_fraction, not both")
        if fill_budget and max_ep is None and max_ep_fraction is None:
            raise ConfigError("fill_budget grows the export up to a budget; give max_ep or max_ep_fraction")
        self.fill_budget = fill_budget
        cands = tuple(sorted({int(c) for c in candidates}))
        if not cands or cands[0] < 1 or len(cands) != len(candidates):
            raise ConfigError(f"AutoDim candidates must be distinct positive sizes, got {list(candidates)}")
        self.candidates = cands
        self.schema = schema
        self.encoding = {"numerical": numerical, "pooling": pooling, "numerical_options": numerical_options}
        self.lift_gamma = lift_gamma
        self.base = FieldEmbedding(schema, cands[-1], numerical=numerical, pooling=pooling,
                                   numerical_options=numerical_options)
        self._set_shape(list(self.base.field_names), int(common_dim or cands[-1]))
        self.rows = self.base.field_rows()
        n = self.num_fields
        self.lifts = nn.ModuleList(Lift(n, d, self.common_dim, lift_gamma) for d in cands)
        self.logits = nn.Parameter(torch.zeros(n, len(cands)))
        self.register_buffer("size_fraction", torch.tensor(cands, dtype=torch.float32) / cands[-1], persistent=False)
        self.register_buffer("fixed", torch.zeros(n, len(cands)), persistent=False)
        self.use_fixed = False
        self.tau = 1.0
        if max_ep_fraction is not None:
            max_ep = int(max_ep_fraction * self.full_ep)
        self.max_ep = max_ep
        if max_ep is not None:
            floor = sample_ep(self.rows, {f: cands[0] for f in self.field_names})
            if max_ep < floor:
                raise ConfigError(f"the budget search.max_ep={max_ep:,} is below the smallest possible embedding "
                                  f"({floor:,} parameters with every field at {cands[0]}); raise search.max_ep / "
                                  "search.max_ep_fraction, or add a smaller size to search.candidates")

    @property
    def full_ep(self) -> int:
        """Embedding parameters with every field at the largest candidate (what fractions of EP refer to)."""
        return sample_ep(self.rows, {f: self.candidates[-1] for f in self.rows})

    # ---- forward ------------------------------------------------------------------------------
    def set_temperature(self, tau: float) -> None:
        """Gumbel-softmax temperature (annealed by the strategy)."""
        self.tau = float(tau)

    def mixing_weights(self) -> torch.Tensor:
        """`[F, K]`: one-hot under `set_sample`, Gumbel-softmax while training, softmax(logits / tau) in eval."""
        if self.use_fixed:
            return self.fixed
        if self.training:
            return F.gumbel_softmax(self.logits, tau=self.tau, hard=False, dim=-1)
        return torch.softmax(self.logits / self.tau, dim=-1)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """`[B, F, common_dim]`."""
        e = self.base(batch)
        w = self.mixing_weights()
        out = None
        for k, (d, lift) in enumerate(zip(self.candidates, self.lifts, strict=True)):
            part = lift(e[:, :, :d]) * w[:, k].unsqueeze(-1)
            out = part if out is None else out + part
        assert out is not None
        return out

    def memory_cost(self) -> torch.Tensor:
        """Expected dimension as a fraction of the largest candidate, averaged over fields (differentiable)."""
        return (torch.softmax(self.logits, dim=-1) @ self.size_fraction).mean()

    # ---- SearchableBlock ----------------------------------------------------------------------
    def choices(self) -> list[Choice]:
        """One dimension choice per field."""
        return [Choice(dim_label(f), self.candidates) for f in self.field_names]

    def arch_parameters(self) -> list[nn.Parameter]:
        """The per-field candidate logits."""
        return [self.logits]

    def set_sample(self, sample: Mapping[str, Any] | None) -> None:
        """Use exactly the sampled size per field (shared weights), or None for the mixed search path."""
        if sample is None:
            self.use_fixed = False
            return
        self.fixed.zero_()
        for i, f in enumerate(self.field_names):
            self.fixed[i, self.candidates.index(int(sample[dim_label(f)]))] = 1.0
        self.use_fixed = True

    def export_probs(self) -> dict[str, list[float]]:
        """softmax(logits) per field."""
        p = torch.softmax(self.logits.detach(), dim=-1)
        return {dim_label(f): p[i].tolist() for i, f in enumerate(self.field_names)}

    def export(self) -> Sample:
        """The picked size per field (`pick`: median or argmax), fitted to `max_ep` when one is set.

        Over the budget, it is shrunk greedily: each step takes the field and smaller size that lose the least
        log-probability per parameter saved. With `fill_budget`, a pick under the budget is then grown the
        same way, each step taking the larger size that loses the least log-probability per parameter added,
        while one fits: "the best model under N parameters" rather than the smallest the search liked.
        """
        logp = torch.log_softmax(self.logits.detach(), dim=-1)
        idx = self._picked()
        if self.max_ep is not None:
            while self._ep(idx) > self.max_ep:
                move = self._best_move(logp, idx, grow=False, room=0)
                assert move is not None  # the constructor checked that the smallest sizes fit
                idx[move[0]] = move[1]
            while self.fill_budget and (move := self._best_move(logp, idx, True, self.max_ep - self._ep(idx))):
                idx[move[0]] = move[1]
        return {dim_label(f): self.candidates[k] for f, k in idx.items()}

    def _picked(self) -> dict[str, int]:
        """The candidate index per field: the most probable (argmax), or the median of the size distribution."""
        probs = torch.softmax(self.logits.detach(), dim=-1)
        if self.pick == "argmax":
            idx = probs.argmax(dim=-1)
        else:  # the first size whose cumulative probability reaches one half
            idx = (probs.cumsum(dim=-1) < 0.5).sum(dim=-1).clamp(max=len(self.candidates) - 1)
        return {f: int(idx[i]) for i, f in enumerate(self.field_names)}

    def picked_ep(self) -> int:
        """Embedding parameters of the plain pick, before any budget cut or fill (what the budget acted on)."""
        return self._ep(self._picked())

    def _ep(self, idx: Mapping[str, int]) -> int:
        return sample_ep(self.rows, {f: self.candidates[k] for f, k in idx.items()})

    def _best_move(self, logp: torch.Tensor, idx: Mapping[str, int], grow: bool,
                   room: int) -> tuple[str, int] | None:
        """The (field, candidate index) change losing the least log-probability per parameter it adds or saves.

        Growing considers only changes that add at most `room` parameters.
        """
        best: tuple[float, str, int] | None = None
        for i, f in enumerate(self.field_names):
            cur = idx[f]
            for k in (range(cur + 1, len(self.candidates)) if grow else range(cur)):
                params = self.rows[f] * abs(self.candidates[k] - self.candidates[cur])
                if grow and params > room:
                    break
                loss = float(logp[i, cur] - logp[i, k]) / max(params, 1)
                if best is None or loss < best[0]:
                    best = (loss, f, k)
        return None if best is None else (best[1], best[2])

    def chosen_dims(self, sample: Mapping[str, Any] | None = None) -> dict[str, int]:
        """{field: dimension} of `sample` (default: the current export)."""
        sample = self.export() if sample is None else sample
        return {f: int(sample[dim_label(f)]) for f in self.field_names}

    def freeze(self, sample: Mapping[str, Any], inherit: bool = False, sparse: bool = False) -> ProjectedEmbedding:
        """The retrain embedding with the sampled size per field; fresh weights unless `inherit`.

        `inherit=True` copies the chosen slices, lift maps and batch-norm state, so the frozen module computes
        what `set_sample(sample)` computes (the conformance check of shared weights).
        """
        unknown = [k for k in sample if k.startswith("dim/") and k.removeprefix("dim/") not in self.field_names]
        if unknown:
            raise ConfigError(f"sample names fields this embedding does not have: {unknown[:3]}")
        dims = {f: int(sample[dim_label(f)]) for f in self.field_names}
        bad = {f: d for f, d in dims.items() if d not in self.candidates}
        if bad:
            raise ConfigError(f"dimensions {bad} are not among the candidates {list(self.candidates)}")
        frozen = ProjectedEmbedding(self.schema, dims, self.common_dim, lift_gamma=self.lift_gamma, sparse=sparse,
                                    **self.encoding)
        if inherit:
            inherit_weights(frozen, self)
        return frozen

    def trace(self) -> dict[str, Any]:
        """What the search history records each epoch: the current argmax dimensions."""
        return {"dims": self.chosen_dims()}


@torch.no_grad()
def inherit_weights(self: ProjectedEmbedding, search: AutoDimEmbedding) -> None:
    """Copy into `self` (frozen from `search`) the weights `search` uses for its sizes.

    The rows' leading columns, the lift maps and the batch-norm state.
    """
    names = search.field_names
    if names != self.field_names or search.common_dim != self.common_dim or search.encoding != self.encoding:
        raise ConfigError("inherit_weights needs the search embedding this one was frozen from (same fields, "
                          "encoding and common dimension)")
    src_tables = search.base.tables_weights()[0]  # the search table has one size: one shared table
    if self.base.equal_dims:
        d = self.base.dims[0]
        self.base.table.weight.copy_(src_tables[:, :d])
    else:
        id_fields = [f.name for f in search.base.id_fields]
        offsets = _offsets(search.base)
        for t, f in zip(self.base.tables, id_fields, strict=True):
            start = offsets[f]
            t.weight.copy_(src_tables[start : start + t.num_embeddings, : t.embedding_dim])
    src_enc = {f: (enc, j) for enc in search.base.numerical_encoders() for j, f in enumerate(enc.field_names)}
    for enc in self.base.numerical_encoders():
        for j, f in enumerate(enc.field_names):
            src, k = src_enc[f]
            for dst_t, src_t in zip(enc.field_tensors(j), src.field_tensors(k), strict=True):
                dst_t.copy_(src_t[..., : dst_t.shape[-1]])
    c = self.common_dim
    for g, d in enumerate(self.sizes):
        src = search.lifts[search.candidates.index(d)]
        fields = getattr(self, f"fields_{g}")
        dst = self.lifts[g]
        dst.weight.copy_(src.weight[fields])
        dst.bias.copy_(src.bias[fields])
        chans = (fields.unsqueeze(1) * c + torch.arange(c)).reshape(-1)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(dst.norm, name).copy_(getattr(src.norm, name)[chans])


def _offsets(emb: FieldEmbedding) -> dict[str, int]:
    """First table row of each table-backed field of a single-table `FieldEmbedding`."""
    offs = torch.cat([emb.cat_offsets, emb.bucket_offsets, emb.multi_offsets]).tolist()
    return dict(zip((f.name for f in emb.id_fields), offs, strict=True))
