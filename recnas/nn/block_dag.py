"""A DAG of interaction blocks over field embeddings: AutoCTR's architecture, fixed (Song et al., KDD 2020).

Each block reads the field embeddings (`emb`, `[B, F, D]`) and/or the outputs of earlier blocks (`b0`, `b1`, ...)
and gives either a dense output `[B, w]` or vectors `[B, k, D]`:

    mlp    concat of its flattened inputs -> Linear(width) -> ReLU                   dense [B, width]
    cross  one DCN cross layer over its flattened inputs x0: x0 * (x0 . w) + b + x0   dense [B, in]
    fm     first order (a Linear(D, 1) per vector, summed) plus the pairwise FM term  dense [B, 1]
    dot    inner products of every pair of its vectors (upper triangle, no diagonal)  dense [B, n(n-1)/2]
    efc    a Linear across the vector axis ("element-wise FC"), width output vectors  vectors [B, width, D]

A vector-reading block (fm, dot, efc) takes a dense input as one more vector, projected to D by its own Linear;
a dense-reading block (mlp, cross) flattens vector inputs. A final Linear reads every output no block consumed and
gives the logit; an fm block's scalar enters it at weight 1, as DeepFM adds its FM term (at a Xavier draw, about
N(0, 2 / n), the term starts near zero or negative, and DeepFM drawn as a DAG had not converged in 30 epochs on
frappe_full). recnas embeds every field, numerical ones through their encoder (`model.numerical_encoder`), so the
raw numerical features reach the blocks as vectors of `emb`. The DAG describes itself with `spec()` (kind
`block_dag`) and is rebuilt from it by `recnas.nn.frozen.build_frozen`, so a retrained AutoCTR model loads with
`recnas.nn` alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from recnas.data.schema import Schema
from recnas.errors import ConfigError
from recnas.nn.frozen import register_frozen
from recnas.nn.layers import logit_head

BLOCK_TYPES = ("mlp", "cross", "fm", "dot", "efc")
VECTOR_READERS = ("fm", "dot", "efc")  # blocks that read their inputs as vectors [B, n, D]
EMB = "emb"


@dataclass(frozen=True)
class BlockSpec:
    """One block: its type, what it reads (`emb` or `b<j>` for an earlier block j), and its width.

    `width` is the mlp's units and the efc's output vectors; the other types ignore it (None).
    """

    type: str
    inputs: tuple[str, ...]
    width: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """{type, inputs, width}: how arch.json lists a block."""
        return {"type": self.type, "inputs": list(self.inputs), "width": self.width}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "block") -> BlockSpec:
        """Parse one block of arch.json / frozen.json, naming `where` in the error."""
        if not isinstance(d, Mapping) or set(d) - {"type", "inputs", "width"} or "type" not in d or "inputs" not in d:
            raise ConfigError(f"{where}: a block is {{type, inputs, width}}, got {d!r}")
        width = d.get("width")
        if width is not None and (not isinstance(width, int) or isinstance(width, bool) or width < 1):
            raise ConfigError(f"{where}: width must be a positive integer or null, got {width!r}")
        if not isinstance(d["inputs"], list | tuple) or not all(isinstance(x, str) for x in d["inputs"]):
            raise ConfigError(f"{where}: inputs must be a list of names (emb, b0, b1, ...), got {d['inputs']!r}")
        return cls(str(d["type"]), tuple(d["inputs"]), width)


@dataclass(frozen=True)
class Shape:
    """A block output: dense `[B, width]` or `vectors` `[B, count, D]`."""

    vectors: bool
    size: int  # dense width, or the vector count

    def flat(self, dim: int) -> int:
        """Width once flattened."""
        return self.size * dim if self.vectors else self.size


def input_index(name: str, block: int) -> int:
    """-1 for `emb`, j for `b<j>` with j < `block`; a ConfigError otherwise."""
    if name == EMB:
        return -1
    if name.startswith("b") and name[1:].isdigit() and int(name[1:]) < block:
        return int(name[1:])
    raise ConfigError(f"block b{block}: input {name!r} is neither {EMB!r} nor an earlier block (b0..b{block - 1})")


def check_blocks(blocks: Sequence[BlockSpec], num_fields: int, dim: int) -> list[Shape]:
    """The output shape of every block; a ConfigError naming the block when the DAG cannot be built."""
    if not blocks:
        raise ConfigError("a block DAG needs at least one block")
    shapes: list[Shape] = []
    for i, b in enumerate(blocks):
        if b.type not in BLOCK_TYPES:
            raise ConfigError(f"block b{i}: unknown type {b.type!r}; choose one of {list(BLOCK_TYPES)}")
        if not b.inputs:
            raise ConfigError(f"block b{i} ({b.type}) reads no input; give it emb or an earlier block")
        if len(set(b.inputs)) != len(b.inputs):
            raise ConfigError(f"block b{i} ({b.type}) lists an input twice: {list(b.inputs)}")
        ins = [Shape(True, num_fields) if n == EMB else shapes[input_index(n, i)] for n in b.inputs]
        vectors = sum(s.size if s.vectors else 1 for s in ins)
        if b.type in ("mlp", "efc") and b.width is None:
            raise ConfigError(f"block b{i} ({b.type}) needs a width")
        if b.type == "mlp":
            shapes.append(Shape(False, int(b.width)))  # type: ignore[arg-type]
        elif b.type == "cross":
            shapes.append(Shape(False, sum(s.flat(dim) for s in ins)))
        elif b.type == "fm":
            shapes.append(Shape(False, 1))
        elif b.type == "dot":
            if vectors < 2:
                raise ConfigError(f"block b{i} (dot) reads {vectors} vector; a dot product needs 2 or more")
            shapes.append(Shape(False, vectors * (vectors - 1) // 2))
        else:
            shapes.append(Shape(True, int(b.width)))  # type: ignore[arg-type]
    return shapes


def unconsumed(blocks: Sequence[BlockSpec]) -> list[int]:
    """Blocks whose output no later block reads: what the final Linear reads."""
    used = {input_index(n, i) for i, b in enumerate(blocks) for n in b.inputs}
    return [i for i in range(len(blocks)) if i not in used]


def _linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_normal_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class _Block(nn.Module):
    """One block of the DAG (the table of the module docstring)."""

    def __init__(self, spec: BlockSpec, ins: list[Shape], out: Shape, dim: int) -> None:
        super().__init__()
        self.type = spec.type
        self.ins = ins
        self.dim = dim
        # a vector reader projects each dense input to one vector of width D
        self.projections = nn.ModuleList(_linear(s.size, dim) for s in ins if spec.type in VECTOR_READERS
                                         and not s.vectors)
        n_vectors = sum(s.size if s.vectors else 1 for s in ins)
        flat_in = sum(s.flat(dim) for s in ins)
        if self.type == "mlp":
            self.linear = _linear(flat_in, out.size)
        elif self.type == "cross":
            self.w = nn.Parameter(torch.empty(flat_in, 1))
            nn.init.xavier_normal_(self.w)
            self.b = nn.Parameter(torch.zeros(flat_in))
        elif self.type == "fm":
            self.first = _linear(dim, 1)
        elif self.type == "dot":
            rows, cols = torch.triu_indices(n_vectors, n_vectors, offset=1)
            self.register_buffer("rows", rows, persistent=False)
            self.register_buffer("cols", cols, persistent=False)
        else:
            self.linear = _linear(n_vectors, out.size)

    def _vectors(self, xs: list[torch.Tensor]) -> torch.Tensor:
        parts, p = [], 0
        for x, s in zip(xs, self.ins, strict=True):
            if s.vectors:
                parts.append(x)
            else:
                parts.append(self.projections[p](x).unsqueeze(1))
                p += 1
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """The block's output from its inputs' outputs."""
        if self.type in ("mlp", "cross"):
            flat = [x.flatten(1) for x in xs]
            x0 = flat[0] if len(flat) == 1 else torch.cat(flat, dim=1)
            if self.type == "mlp":
                return torch.relu(self.linear(x0))
            return x0 * (x0 @ self.w) + self.b + x0
        v = self._vectors(xs)  # [B, n, D]
        if self.type == "fm":
            square_of_sum = v.sum(1).pow(2)
            sum_of_squares = v.pow(2).sum(1)
            return self.first(v).sum(1) + 0.5 * (square_of_sum - sum_of_squares).sum(1, keepdim=True)
        if self.type == "dot":
            gram = v @ v.transpose(1, 2)
            return gram[:, self.rows, self.cols]
        return self.linear(v.transpose(1, 2)).transpose(1, 2)  # [B, width, D]


class BlockDAG(nn.Module):
    """The fixed DAG: field embeddings `[B, F, D]` -> logit `[B, 1]` (see the module docstring)."""

    def __init__(self, blocks: Sequence[BlockSpec | Mapping[str, Any]], num_fields: int, dim: int) -> None:
        super().__init__()
        self.blocks_spec = [b if isinstance(b, BlockSpec) else BlockSpec.from_dict(b, f"block b{i}")
                            for i, b in enumerate(blocks)]
        self.num_fields, self.dim = int(num_fields), int(dim)
        shapes = check_blocks(self.blocks_spec, self.num_fields, self.dim)
        emb = Shape(True, self.num_fields)
        self.sources = [[input_index(n, i) for n in b.inputs] for i, b in enumerate(self.blocks_spec)]
        self.blocks = nn.ModuleList(
            _Block(b, [emb if j < 0 else shapes[j] for j in src], shapes[i], self.dim)
            for i, (b, src) in enumerate(zip(self.blocks_spec, self.sources, strict=True)))
        self.outputs = unconsumed(self.blocks_spec)
        self.head = logit_head(sum(shapes[i].flat(self.dim) for i in self.outputs))
        with torch.no_grad():
            offset = 0
            for i in self.outputs:
                if self.blocks_spec[i].type == "fm":
                    self.head.weight[0, offset] = 1.0
                offset += shapes[i].flat(self.dim)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """`[B, F, D]` -> logit `[B, 1]`."""
        outs: list[torch.Tensor] = []
        for block, src in zip(self.blocks, self.sources, strict=True):
            outs.append(block([e if j < 0 else outs[j] for j in src]))
        flat = [outs[i].flatten(1) for i in self.outputs]
        return self.head(flat[0] if len(flat) == 1 else torch.cat(flat, dim=1))

    def spec(self) -> dict[str, Any]:
        """JSON that `build_frozen` turns back into a fresh DAG (kind `block_dag`)."""
        return {"kind": "block_dag", "blocks": [b.to_dict() for b in self.blocks_spec],
                "num_fields": self.num_fields, "dim": self.dim}

    def describe(self) -> list[str]:
        """The DAG in words (`describe_blocks`)."""
        return describe_blocks(self.blocks_spec)


def describe_blocks(blocks: Sequence[BlockSpec]) -> list[str]:
    """One line per block, e.g. `b2 = mlp(256) <- emb, b0`, and what the head reads (no module is built)."""
    lines = [f"b{i} = {b.type}{f'({b.width})' if b.width is not None else ''} <- {', '.join(b.inputs)}"
             for i, b in enumerate(blocks)]
    return [*lines, "logit = linear <- " + ", ".join(f"b{i}" for i in unconsumed(blocks))]


@register_frozen("block_dag")
def _build_block_dag(schema: Schema, spec: Mapping[str, Any], encoding: Mapping[str, Any]) -> nn.Module:
    return BlockDAG(spec["blocks"], int(spec["num_fields"]), int(spec["dim"]))


__all__ = ["BLOCK_TYPES", "EMB", "VECTOR_READERS", "BlockDAG", "BlockSpec", "Shape", "check_blocks", "describe_blocks",
           "input_index", "unconsumed"]
