"""IPNN: inner-product neural network.

Qu et al., Product-based Neural Networks for User Response Prediction, ICDM 2016.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.interactions import InnerProduct, OuterProduct, PairwiseLayer
from recnas.nn.layers import MLP
from recnas.nn.models.base import CTRModel, register


@register("ipnn", "pnn")
class IPNN(CTRModel):
    """logit = MLP([concatenated e, inner products of all pairs]); `product="outer"` gives OPNN.

    `pairwise` replaces the inner products (e.g. AutoFIS's gated pairs, one product per pair).
    """

    paper = "Qu et al., Product-based Neural Networks for User Response Prediction, ICDM 2016"
    pairwise_slot = "products"

    def __init__(self, schema: Schema, product: str = "inner", pairwise: PairwiseLayer | None = None,
                 **kw: Any) -> None:
        super().__init__(schema, **kw)
        if pairwise is not None:  # a given product layer (e.g. AutoFIS's gated pairs), one output per pair
            self.product = self._pairwise(pairwise, nn.Identity())
            width = pairwise.out_dim
        elif product == "inner":
            self.product: torch.nn.Module = InnerProduct(self.num_fields)
            width = self.product.num_pairs
        elif product == "outer":
            self.product = OuterProduct()
            width = self.embedding.dim**2
        else:
            raise ValueError(f"product must be inner or outer, got {product!r}")
        in_dim = self.embedding.flat_dim + width
        self.mlp = MLP(in_dim, self.mlp_sizes, self.dropout, self.batch_norm, out_dim=1)

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        e = self.embedding(batch)
        return self.mlp(torch.cat([e.flatten(1), self.product(e)], dim=1)).squeeze(1)
