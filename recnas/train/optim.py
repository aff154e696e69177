"""Optimisers with separate parameter groups for embeddings and dense weights."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from recnas.errors import ConfigError
from recnas.nn.facade import id_tables

OPTIMIZERS = ("adam", "adagrad")


def split_parameters(model: nn.Module, exclude: Iterable[nn.Parameter] = ()) -> tuple[list, list]:
    """(embedding table weights, every other trainable parameter), minus `exclude`."""
    skip = {id(p) for p in exclude}
    tables = id_tables(model)
    table_ids = {id(p) for p in tables}
    emb = [p for p in tables if id(p) not in skip]
    dense = [p for p in model.parameters() if p.requires_grad and id(p) not in table_ids and id(p) not in skip]
    return emb, dense


def build_optimizers(
    model: nn.Module, name: str, lr: float, embedding_lr: float | None = None, weight_decay: float = 0.0,
    sparse: bool = False, exclude: Iterable[nn.Parameter] = (),
) -> list[torch.optim.Optimizer]:
    """One optimiser over both groups, or (sparse) a sparse one for the tables plus one for the rest."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"trainer.optimizer {name!r} is unknown; choose one of {list(OPTIMIZERS)}")
    emb, dense = split_parameters(model, exclude)
    emb_lr = embedding_lr if embedding_lr is not None else lr
    dense_cls = torch.optim.Adam if name == "adam" else torch.optim.Adagrad
    if not sparse:
        groups = [{"params": emb, "lr": emb_lr, "weight_decay": 0.0, "name": "embedding"},
                  {"params": dense, "lr": lr, "weight_decay": weight_decay, "name": "dense"}]
        return [dense_cls([g for g in groups if g["params"]])]
    sparse_opt: torch.optim.Optimizer = (
        torch.optim.SparseAdam(emb, lr=emb_lr) if name == "adam" else torch.optim.Adagrad(emb, lr=emb_lr)
    )
    out = [sparse_opt]
    if dense:
        out.append(dense_cls(dense, lr=lr, weight_decay=weight_decay))
    return out
