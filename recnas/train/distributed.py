"""Data-parallel training on `torch.distributed`: the process group, gradient averaging and gathered scores.

A job of N processes (started by `torchrun`, or `recnas train --nproc N`, which starts it) trains one model:
every rank holds the whole model, reads its own share of each global batch, and averages gradients with the
others after every backward pass, so the weights stay identical on every rank. The gradients are averaged by
hand rather than by wrapping the model in `DistributedDataParallel`: the model keeps its type and attributes (the
searches' hooks read them), and the architecture parameters of a one-shot search are averaged like any weight,
so they stay identical too. Nothing here does anything in a single process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from recnas.errors import ConfigError, RecnasError

T = TypeVar("T")


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside a distributed job."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def active() -> bool:
    """Whether this process is one of several in a process group."""
    return world()[1] > 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes the run folder and prints."""
    return world()[0] == 0


def launched() -> bool:
    """Whether this process was started by `torchrun` (or another launcher setting WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def endpoint() -> str:
    """The rendezvous address this process was told to meet the others at (MASTER_ADDR:MASTER_PORT)."""
    return f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"


TIMEOUT_ENV = "RECNAS_DIST_TIMEOUT"


def init_from_env(timeout_s: float | None = None) -> bool:
    """Join the process group named by the launcher's environment (gloo on CPU, nccl with GPUs); False alone.

    A rank that cannot meet the others within `timeout_s` (default: $RECNAS_DIST_TIMEOUT, else 300 s; it also
    bounds every collective) fails with a ConfigError naming the address.
    """
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return active()
    if timeout_s is None:
        try:
            timeout_s = float(os.environ.get(TIMEOUT_ENV, "300"))
        except ValueError:
            raise ConfigError(f"${TIMEOUT_ENV}={os.environ[TIMEOUT_ENV]!r} is not a number of seconds") from None
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; run with one process")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError, TimeoutError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise ConfigError(f"rank {os.environ.get('RANK', '?')} could not join the others at {endpoint()} within "
                          f"{timeout_s:g} s ({reason}); check that every node uses the same --rdzv-endpoint "
                          "and can reach it") from None
    return True


def shutdown() -> None:
    """Leave the process group (at the end of a job)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (a no-op alone)."""
    if active():
        dist.barrier()


def main_first(work: Callable[[], T]) -> T:
    """Run `work` on rank 0 and hand its result (or its error) to every rank.

    For what only rank 0 may do (take the run folder's lock, check its config): the other ranks wait, then get the
    same value, or raise the same error, instead of hanging in the next collective.
    """
    if not active():
        return work()
    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = ("ok", work())
        except RecnasError as e:
            box[0] = ("error", e)
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise value
    return value


def broadcast_model(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (each built its own, from its own generator)."""
    if not active():
        return
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)


def average_buffers(model: nn.Module) -> None:
    """Average the floating buffers (batch-norm running statistics) over ranks; counters stay rank 0's."""
    if not active():
        return
    _, size = world()
    with torch.no_grad():
        for b in model.buffers():
            if b.is_floating_point():
                dist.all_reduce(b.data)
                b.data.div_(size)
            else:
                dist.broadcast(b.data, src=0)


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of `params` over ranks in place: dense ones in one flat all-reduce, sparse one by one.

    A parameter without a gradient on this rank joins with zeros (a rank whose batch did not reach it), so every
    rank makes the same calls in the same order.
    """
    if not active():
        return
    _, size = world()
    trainable = [p for p in params if p.requires_grad]
    # Which gradients are sparse on some rank: a rank without a gradient must join the same kind of all-reduce.
    sparse = torch.tensor([int(p.grad is not None and p.grad.is_sparse) for p in trainable], dtype=torch.int32)
    dist.all_reduce(sparse, op=dist.ReduceOp.MAX)
    dense: list[nn.Parameter] = []
    for p, is_sparse in zip(trainable, sparse.tolist(), strict=True):
        if not is_sparse:
            dense.append(p)
            continue
        g = p.grad if p.grad is not None else torch.sparse_coo_tensor(
            torch.zeros(1, 0, dtype=torch.long), torch.zeros(0, *p.shape[1:], dtype=p.dtype), p.shape)
        g = g.coalesce()
        dist.all_reduce(g)  # gloo only: nccl has no sparse all-reduce
        p.grad = g.coalesce() / size
    if not dense:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in dense])
    dist.all_reduce(flat)
    flat.div_(size)
    at = 0
    for p in dense:
        n = p.numel()
        p.grad = flat[at : at + n].view_as(p)
        at += n


def mean_over_ranks(value: float) -> float:
    """The mean of a number over ranks (e.g. an epoch's training loss)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / world()[1]


def gather_rows(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Concatenate each rank's rows in rank order on every rank (rows may differ in number per rank)."""
    if not active():
        return arrays
    _, size = world()
    counts = torch.tensor([len(arrays[0])], dtype=torch.long)
    every = [torch.zeros(1, dtype=torch.long) for _ in range(size)]
    dist.all_gather(every, counts)
    lengths = [int(c.item()) for c in every]
    longest = max(lengths)
    out = []
    for a in arrays:
        padded = torch.zeros(longest, dtype=torch.from_numpy(a[:0]).dtype)
        padded[: len(a)] = torch.from_numpy(np.ascontiguousarray(a))
        parts = [torch.zeros_like(padded) for _ in range(size)]
        dist.all_gather(parts, padded)
        out.append(torch.cat([p[:n] for p, n in zip(parts, lengths, strict=True)]).numpy())
    return tuple(out)


def gather_objects(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order (small things: random-generator states)."""
    if not active():
        return [value]
    out: list[Any] = [None] * world()[1]
    dist.all_gather_object(out, value)
    return out


def same_on_every_rank(value: Any) -> bool:
    """Whether `value` is equal on every rank (e.g. an exported architecture)."""
    values = gather_objects(value)
    return all(v == values[0] for v in values)
