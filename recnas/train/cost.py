"""What a model costs to serve: FLOPs per scored row, counted by PyTorch's own FLOP counter."""

from __future__ import annotations

import torch
from torch import nn

from recnas.data.batches import FieldBatch


def flops_per_sample(model: nn.Module, batch: FieldBatch) -> float:
    """Floating-point operations of one forward pass per row of `batch` (eval mode, no gradients).

    `torch.utils.flop_counter` counts matrix products and convolutions; embedding lookups, element-wise ops and
    normalisations count zero, so this is the dense compute, the part that grows with MLP and cross widths.
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(batch)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / max(len(batch), 1)


__all__ = ["flops_per_sample"]
