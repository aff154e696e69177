"""AutoCTR's model: the field embeddings read by a DAG of interaction blocks (`recnas.nn.block_dag`).

Song et al., Towards Automated Neural Interaction Discovery for Click-Through Rate Prediction, KDD 2020. The DAG is
a constructor argument: the `autoctr` search retrains the DAG it exports; built alone, the model is DeepFM drawn as
a DAG (an fm block on the embeddings beside an mlp chain of `model.mlp` widths), so it trains as a zoo model too.
A first-order (LR) term, one weight per id, is added to the DAG's logit as in DeepFM and the other zoo models (the
blocks read embeddings only). DeepFM drawn as a DAG trailed DeepFM by 0.0034 test AUC on frappe_full; this term took
0.0006 of it back, the fm scalar's start at weight 1 in the head (`recnas.nn.block_dag`) the rest
(bench/log/2026-12-08-issue21-first-order.md). A run of this model saved before the term does not load.
"""

from __future__ import annotations

from typing import Any

import torch

from recnas.data.batches import FieldBatch
from recnas.data.schema import Schema
from recnas.nn.block_dag import EMB, BlockDAG, BlockSpec
from recnas.nn.models.base import CTRModel, register


def deepfm_blocks(mlp: list[int]) -> list[BlockSpec]:
    """DeepFM as blocks: b0 = fm[emb], then mlp(w1)[emb], mlp(w2)[previous], ... (the head reads b0 and the last)."""
    blocks = [BlockSpec("fm", (EMB,))]
    for i, width in enumerate(mlp):
        blocks.append(BlockSpec("mlp", (EMB,) if i == 0 else (f"b{i}",), int(width)))
    return blocks


@register("autoctr")
class AutoCTR(CTRModel):
    """logit = b + sum w + DAG(e) (see `recnas.nn.block_dag`); `dag` replaces the default DeepFM-shaped DAG."""

    paper = ("Song et al., Towards Automated Neural Interaction Discovery for Click-Through Rate Prediction, "
             "KDD 2020")

    def __init__(self, schema: Schema, dag: BlockDAG | None = None, **kw: Any) -> None:
        super().__init__(schema, **kw)
        self.first_order = self.make_first_order()
        if dag is None:
            dag = BlockDAG(deepfm_blocks(self.mlp_sizes), self.num_fields, self.embedding.dim)
        else:
            self._composed["dag"] = dag
        self.dag = dag

    def forward(self, batch: FieldBatch) -> torch.Tensor:
        """Logits `[batch]`."""
        return (self.first_order(batch) + self.dag(self.embedding(batch))).squeeze(1)
