"""AutoInt and AutoInt+.

Song et al., AutoInt: Automatic Feature Interaction Learning via Self-Attentive Neural Networks, CIKM 2019.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.interactions import SelfAttentionLayer
from recnas.nn.layers import MLP, logit_head
from recnas.nn.models.base import CTRModel, register


@register("autoint")
class AutoInt(CTRModel):
    """Stacked multi-head self-attention over fields, then a linear head on the flattened output."""

    paper = (

        "Song et al., AutoInt: Automatic Feature Interaction Learning via Self-Attentive"

        " Neural Networks, CIKM 2019"

    )
    with_mlp = False

    def __init__(
        self, schema: Schema, attention_layers: int = 3, heads: int = 2, head_dim: int = 16,
        residual: bool = True, **kw: Any,
    ) -> None:
        super().__init__(schema, **kw)
        layers = []
        width = self.embedding.dim
        for _ in range(attention_layers):
            layers.append(SelfAttentionLayer(width, head_dim, heads, residual))
            width = head_dim * heads
        self.attention = nn.Sequential(*layers)
        self.head = logit_head(self.num_fields * width)
        self.mlp = (
            MLP(self.embedding.flat_dim, self.mlp_sizes, self.dropout, self.batch_norm, out_dim=1)
            if self.with_mlp else None
        )

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        e = self.embedding(batch)
        logit = self.head(self.attention(e).flatten(1))
        if self.mlp is not None:
            logit = logit + self.mlp(e.flatten(1))
        return logit.squeeze(1)


@register("autoint+", "autoint_plus")
class AutoIntPlus(AutoInt):
    """AutoInt+: AutoInt plus a parallel MLP on the concatenated embeddings."""

    with_mlp = True
