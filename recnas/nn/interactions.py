"""Feature-interaction blocks. Inputs are field embeddings `[batch, fields, dim]` unless noted.

Pairwise interactions enumerate pairs with index tensors, never Python loops over pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from recnas.data.schema import Schema
from recnas.nn.frozen import register_frozen
from recnas.nn.layers import pair_indices

GATE_INIT = 0.6


@runtime_checkable
class PairwiseLayer(Protocol):
    """What a model's pairwise-interaction slot takes: `[B, F, D]` -> `[B, out_dim]`.

    FM and DeepFM take a layer with `out_dim == 1` (a logit term), IPNN one with a product per pair; AutoFIS
    plugs its gated interactions in here.
    """

    out_dim: int

    def __call__(self, e: torch.Tensor) -> torch.Tensor:
        """`[B, F, D]` -> `[B, out_dim]`."""
        ...



class FMInteraction(nn.Module):
    """Second-order FM term by the O(F*D) identity 0.5 * ((sum e)^2 - sum e^2) (Rendle, ICDM'10).

    `[B, F, D]` -> `[B, 1]`.
    """

    out_dim = 1  # a pairwise layer's output width (what a model sizes its next layer by)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Apply the block (shapes in the class docstring)."""
        square_of_sum = e.sum(1).pow(2)
        sum_of_square = e.pow(2).sum(1)
        return 0.5 * (square_of_sum - sum_of_square).sum(1, keepdim=True)


class BiInteraction(nn.Module):
    """NFM bi-interaction pooling: 0.5 * ((sum e)^2 - sum e^2), kept per dimension. `[B,F,D]` -> `[B,D]`."""

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Apply the block (shapes in the class docstring)."""
        return 0.5 * (e.sum(1).pow(2) - e.pow(2).sum(1))


class PairwiseProducts(nn.Module):
    """Element-wise products e_i * e_j of every pair i < j: `[B, F, D]` -> `[B, P, D]`."""

    def __init__(self, num_fields: int) -> None:
        super().__init__()
        rows, cols = pair_indices(num_fields)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.num_pairs = len(rows)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Apply the block (shapes in the class docstring)."""
        return e[:, self.rows] * e[:, self.cols]


class InnerProduct(PairwiseProducts):
    """Inner products <e_i, e_j> of every pair (IPNN, Qu et al. ICDM'16): `[B, F, D]` -> `[B, P]`."""

    @property
    def out_dim(self) -> int:
        """Output width: one product per pair."""
        return self.num_pairs

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Apply the block (shapes in the class docstring)."""
        return super().forward(e).sum(-1)


class OuterProduct(nn.Module):
    """OPNN outer-product pooling: (sum_i e_i)(sum_j e_j)^T flattened, `[B, F, D]` -> `[B, D*D]`."""

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Apply the block (shapes in the class docstring)."""
        s = e.sum(1)
        return torch.einsum("bi,bj->bij", s, s).flatten(1)


class FwFMInteraction(nn.Module):
    """Field-weighted FM: sum_{i<j} r_ij <e_i, e_j> (Pan et al., WWW'18). `[B, F, D]` -> `[B, 1]`."""

    def __init__(self, num_fields: int) -> None:
        super().__init__()
        self.inner = InnerProduct(num_fields)
        self.pair_weight = nn.Linear(self.inner.num_pairs, 1, bias=False)
        nn.init.normal_(self.pair_weight.weight, 0.0, 0.01)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Apply the block (shapes in the class docstring)."""
        return self.pair_weight(self.inner(e))


class FFMInteraction(nn.Module):
    """Field-aware FM: sum_{i<j} <e_{i,f_j}, e_{j,f_i}> (Juan et al., RecSys'16).

    Input `[B, F, F, D]`: field i's embedding meant for field j at `[:, i, j]`. Output `[B, 1]`.
    """

    def __init__(self, num_fields: int) -> None:
        super().__init__()
        rows, cols = pair_indices(num_fields)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Apply the block (shapes in the class docstring)."""
        left = e[:, self.rows, self.cols]
        right = e[:, self.cols, self.rows]
        return (left * right).sum((1, 2)).unsqueeze(1)


class AttentionalPooling(nn.Module):
    """AFM: attention-weighted sum of pairwise products, then a projection (Xiao et al., IJCAI'17).

    `[B, F, D]` -> `[B, 1]`.
    """

    def __init__(self, num_fields: int, dim: int, attention_dim: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.pairs = PairwiseProducts(num_fields)
        self.attention = nn.Sequential(
            nn.Linear(dim, attention_dim), nn.ReLU(), nn.Linear(attention_dim, 1, bias=False)
        )
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(dim, 1, bias=False)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Apply the block (shapes in the class docstring)."""
        p = self.pairs(e)  # [B, P, D]
        weights = torch.softmax(self.attention(p), dim=1)  # [B, P, 1]
        return self.project(self.dropout((weights * p).sum(1)))


class CrossNet(nn.Module):
    """DCN cross layers x_{l+1} = x_0 (x_l . w_l) + b_l + x_l (Wang et al., ADKDD'17). `[B, K]` -> `[B, K]`."""

    def __init__(self, in_dim: int, num_layers: int = 3) -> None:
        super().__init__()
        self.w = nn.ParameterList(nn.Parameter(torch.randn(in_dim) * (1.0 / in_dim**0.5)) for _ in range(num_layers))
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(in_dim)) for _ in range(num_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """Apply the block (shapes in the class docstring)."""
        x = x0
        for w, b in zip(self.w, self.b, strict=True):
            x = x0 * (x @ w).unsqueeze(1) + b + x
        return x


class CrossNetV2(nn.Module):
    """DCNv2 cross layers x_{l+1} = x_0 * (W_l x_l + b_l) + x_l (Wang et al., WWW'21). `[B, K]` -> `[B, K]`."""

    def __init__(self, in_dim: int, num_layers: int = 3) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(in_dim, in_dim) for _ in range(num_layers))
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """Apply the block (shapes in the class docstring)."""
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class CIN(nn.Module):
    """Compressed Interaction Network of xDeepFM (Lian et al., KDD'18).

    Layer k: Z = x_{k-1} (outer, per dimension) x_0, compressed by a 1x1 convolution to H_k maps;
    each layer's maps are sum-pooled over the embedding dimension. `[B, F, D]` -> `[B, sum H_k]`.
    The paper found the identity activation best, so it is the default (`activation="relu"` is offered).
    """

    def __init__(self, num_fields: int, layer_sizes: Sequence[int] = (100, 100), activation: str = "identity") -> None:
        super().__init__()
        if activation not in ("identity", "relu"):
            raise ValueError(f"CIN activation must be identity or relu, got {activation!r}")
        self.activation = activation
        self.layers = nn.ModuleList()
        prev = num_fields
        for h in layer_sizes:
            self.layers.append(nn.Linear(prev * num_fields, h))  # the 1x1 convolution, as one GEMM
            prev = h
        self.out_dim = int(sum(layer_sizes))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """Apply the block (shapes in the class docstring)."""
        b, m, d = x0.shape
        base = x0.transpose(1, 2)  # [B, D, m]: embedding dimension first, so each layer is one matmul
        x = base
        pooled = []
        for layer in self.layers:
            z = (x.unsqueeze(-1) * base.unsqueeze(-2)).reshape(b, d, x.shape[-1] * m)  # [B, D, h*m]
            x = layer(z)  # [B, D, H]
            if self.activation == "relu":
                x = torch.relu(x)
            pooled.append(x.sum(1))
        return torch.cat(pooled, dim=1)


class SelfAttentionLayer(nn.Module):
    """AutoInt's multi-head self-attention over fields with a residual projection (Song et al., CIKM'19).

    `[B, F, D_in]` -> `[B, F, heads * head_dim]`.
    """

    def __init__(self, in_dim: int, head_dim: int = 16, heads: int = 2, residual: bool = True) -> None:
        super().__init__()
        out = head_dim * heads
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(in_dim, 3 * out, bias=False)
        self.residual = nn.Linear(in_dim, out, bias=False) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block (shapes in the class docstring)."""
        b, f, _ = x.shape
        q, k, v = self.qkv(x).view(b, f, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2), dim=-1)  # [B, H, F, F]
        out = (att @ v).transpose(1, 2).reshape(b, f, self.heads * self.head_dim)
        if self.residual is not None:
            out = out + self.residual(x)
        return torch.relu(out)


class SelectedInteractions(nn.Module):
    """alpha_ij * BN(<e_i, e_j>) over the given pairs: `[B, F, D]` -> `[B, 1]` summed, or `[B, P]` per pair.

    The frozen AutoFIS block (Liu et al., KDD 2020): batch norm without affine parameters keeps the gates'
    sizes comparable; the gates are ordinary trainable weights. `reduce=True` fits an FM slot (a logit term),
    `reduce=False` an IPNN one (a product per pair).
    """

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, gate_init: float = GATE_INIT, reduce: bool = True,
                 field_names: Sequence[str] | None = None) -> None:
        super().__init__()
        self.register_buffer("rows", rows.clone(), persistent=False)
        self.register_buffer("cols", cols.clone(), persistent=False)
        self.norm = nn.BatchNorm1d(max(len(rows), 1), affine=False)
        self.gate = nn.Parameter(torch.full((len(rows),), float(gate_init)))
        self.gate_init = float(gate_init)
        self.reduce = reduce
        self.field_names = list(field_names) if field_names is not None else None

    @property
    def num_pairs(self) -> int:
        """How many interactions the block computes."""
        return len(self.rows)

    @property
    def out_dim(self) -> int:
        """Output width: 1 when summed, else one per pair."""
        return 1 if self.reduce else self.num_pairs

    def products(self, e: torch.Tensor) -> torch.Tensor:
        """Normalised inner products `[B, P]` of the block's pairs."""
        ip = (e[:, self.rows] * e[:, self.cols]).sum(-1)
        if self.num_pairs == 0:
            return ip
        return self.norm(ip)

    def combine(self, gated: torch.Tensor) -> torch.Tensor:
        """`[B, P]` gated products -> the block's output."""
        return gated.sum(1, keepdim=True) if self.reduce else gated

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """`[B, F, D]` -> `[B, out_dim]`."""
        return self.combine(self.products(e) * self.gate)

    def spec(self) -> dict[str, Any]:
        """What rebuilds this module (`recnas.nn.frozen.build_frozen`): the pairs as field indices (and names)."""
        names = self.field_names
        pairs = [[names[i], names[j]] for i, j in zip(self.rows.tolist(), self.cols.tolist(), strict=True)] \
            if names is not None else None
        return {"kind": "selected_interactions", "rows": self.rows.tolist(), "cols": self.cols.tolist(),
                "pairs": pairs, "gate_init": self.gate_init, "reduce": self.reduce, "field_names": names}


@register_frozen("selected_interactions")
def _build_selected(schema: Schema, spec: Mapping[str, Any], encoding: Mapping[str, Any]) -> SelectedInteractions:
    rows, cols = torch.tensor(spec["rows"], dtype=torch.long), torch.tensor(spec["cols"], dtype=torch.long)
    return SelectedInteractions(rows, cols, float(spec["gate_init"]), bool(spec["reduce"]), spec.get("field_names"))
