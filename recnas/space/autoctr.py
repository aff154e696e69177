"""AutoCTR's space: a fixed-length token vector (genotype) that decodes to a DAG of blocks (`recnas.nn.block_dag`).

Block i has the tokens `b<i>/type`, `b<i>/width` (the mlp's units), `b<i>/vectors` (the efc's output vectors),
the input bit `b<i>/in/emb` (reads the field embeddings) and the skip bits `b<i>/in/b<j>` for every j < i (reads
block j's output). A genotype is a plain sample dict over these labels, so it mutates one token at a time; tokens
its block's type does not read (an fm block's width) are inactive: mutation changes active tokens only, and two
genotypes are the same architecture when their decoded blocks are (`key`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recnas.errors import ConfigError
from recnas.nn.block_dag import BLOCK_TYPES, EMB, BlockDAG, BlockSpec, check_blocks
from recnas.nn.models.autoctr import deepfm_blocks
from recnas.space.choice import Choice, Sample, Space

MAX_DRAWS = 200  # tries to find a valid new genotype before giving up on a parent


def input_names(block: int) -> tuple[str, ...]:
    """What block `block` may read: the embeddings, then every earlier block."""
    return (EMB, *(f"b{j}" for j in range(block)))


class BlockDAGSpace:
    """Genotypes of `blocks` blocks over `num_fields` embedded fields of width `dim`."""

    def __init__(self, num_fields: int, dim: int, blocks: int = 7, types: Sequence[str] = BLOCK_TYPES,
                 widths: Sequence[int] = (32, 64, 128, 256, 512), vectors: Sequence[int] = (2, 4, 8, 16)) -> None:
        unknown = [t for t in types if t not in BLOCK_TYPES]
        if unknown or not types:
            raise ConfigError(f"search.block_types: unknown or no types {unknown or list(types)}; choose among "
                              f"{list(BLOCK_TYPES)}")
        if blocks < 1:
            raise ConfigError(f"search.blocks must be at least 1, got {blocks}")
        self.num_fields, self.dim, self.n_blocks = int(num_fields), int(dim), int(blocks)
        self.types, self.widths, self.vectors = tuple(types), tuple(int(w) for w in widths), tuple(vectors)
        choices = []
        for i in range(self.n_blocks):
            choices += [Choice(f"b{i}/type", self.types), Choice(f"b{i}/width", self.widths),
                        Choice(f"b{i}/vectors", self.vectors)]
            choices += [Choice(f"b{i}/in/{n}", (False, True)) for n in input_names(i)]
        self.space = Space(choices)

    # ---- decoding ------------------------------------------------------------------------------
    def blocks(self, g: Mapping[str, Any]) -> list[BlockSpec]:
        """The blocks a genotype stands for."""
        out = []
        for i in range(self.n_blocks):
            kind = g[f"b{i}/type"]
            inputs = tuple(n for n in input_names(i) if g[f"b{i}/in/{n}"])
            width = g[f"b{i}/width"] if kind == "mlp" else g[f"b{i}/vectors"] if kind == "efc" else None
            out.append(BlockSpec(kind, inputs, None if width is None else int(width)))
        return out

    def key(self, g: Mapping[str, Any]) -> str:
        """The architecture's identity: its decoded blocks as JSON (inactive tokens play no part)."""
        return json.dumps([b.to_dict() for b in self.blocks(g)])

    def valid(self, g: Mapping[str, Any]) -> bool:
        """Whether the genotype decodes to a DAG that can be built."""
        try:
            check_blocks(self.blocks(g), self.num_fields, self.dim)
        except ConfigError:
            return False
        return True

    def freeze(self, g: Mapping[str, Any]) -> BlockDAG:
        """The DAG of a genotype, with fresh weights."""
        self.space.validate(g)
        return BlockDAG(self.blocks(g), self.num_fields, self.dim)

    def from_blocks(self, blocks: Sequence[Mapping[str, Any]], where: str) -> Sample:
        """The genotype of a hand-written block list (arch.json's `blocks`); a ConfigError naming `where`."""
        specs = [BlockSpec.from_dict(b, f"{where}: block b{i}") for i, b in enumerate(blocks)]
        if len(specs) != self.n_blocks:
            raise ConfigError(f"{where}: {len(specs)} blocks, the space has {self.n_blocks} (search.blocks)")
        try:
            check_blocks(specs, self.num_fields, self.dim)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        g: Sample = {}
        for i, b in enumerate(specs):
            if b.type not in self.types:
                raise ConfigError(f"{where}: block b{i} has type {b.type!r}, not among search.block_types "
                                  f"{list(self.types)}")
            g[f"b{i}/type"] = b.type
            g[f"b{i}/width"] = b.width if b.type == "mlp" else self.widths[0]
            g[f"b{i}/vectors"] = b.width if b.type == "efc" else self.vectors[0]
            for n in input_names(i):
                g[f"b{i}/in/{n}"] = n in b.inputs
        try:
            self.space.validate(g)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        return g

    def zoo_start(self) -> Sample | None:
        """DeepFM drawn in this space, or None where it lacks an fm or mlp block or has one block only.

        An fm block on the embeddings, then an mlp chain on them through the other blocks, widest first (the space's
        widths, descending, the narrowest repeated).
        """
        if "fm" not in self.types or "mlp" not in self.types or self.n_blocks < 2:
            return None
        ordered = sorted(self.widths, reverse=True)
        chain = [ordered[min(i, len(ordered) - 1)] for i in range(self.n_blocks - 1)]
        return self.from_blocks([b.to_dict() for b in deepfm_blocks(chain)], "the zoo start")

    # ---- drawing and mutating ------------------------------------------------------------------
    def random(self, rng: np.random.Generator) -> Sample:
        """A random valid genotype: every token uniform, a block's input bits redrawn until the block can be built."""
        for _ in range(MAX_DRAWS):
            g = self.space.random_sample(rng)
            for i in range(self.n_blocks):
                names = input_names(i)
                while not any(g[f"b{i}/in/{n}"] for n in names):
                    for n in names:
                        g[f"b{i}/in/{n}"] = bool(rng.integers(2))
            if self.valid(g):
                return g
        raise ConfigError("cannot draw a valid block DAG from this space; widen search.block_types")

    def active(self, g: Mapping[str, Any]) -> list[str]:
        """The tokens that change the architecture: type and inputs of every block, width of mlp, vectors of efc."""
        out = []
        for i in range(self.n_blocks):
            out.append(f"b{i}/type")
            if g[f"b{i}/type"] == "mlp":
                out.append(f"b{i}/width")
            if g[f"b{i}/type"] == "efc":
                out.append(f"b{i}/vectors")
            out += [f"b{i}/in/{n}" for n in input_names(i)]
        return out

    def mutate(self, g: Mapping[str, Any], rng: np.random.Generator, seen: set[str]) -> Sample | None:
        """A child differing from `g` in one active token, valid and not in `seen` (keys); None if none is found."""
        active = self.active(g)
        for _ in range(MAX_DRAWS):
            label = active[int(rng.integers(len(active)))]
            others = [c for c in self.space.choices[label].candidates if c != g[label]]
            if not others:
                continue
            child = {**g, label: others[int(rng.integers(len(others)))]}
            if self.valid(child) and self.key(child) not in seen:
                return child
        return None

    def features(self, g: Mapping[str, Any]) -> list[float]:
        """A fixed-length numeric vector of a genotype for the ranker.

        First what a few trials can learn from (how many blocks of each type, how many read the embeddings), then
        every block's tokens (inactive ones as 0).
        """
        kinds = [g[f"b{i}/type"] for i in range(self.n_blocks)]
        row: list[float] = [float(kinds.count(t)) for t in self.types]
        row.append(float(sum(bool(g[f"b{i}/in/{EMB}"]) for i in range(self.n_blocks))))
        for i in range(self.n_blocks):
            kind = g[f"b{i}/type"]
            row += [float(kind == t) for t in self.types]
            row.append(math.log2(g[f"b{i}/width"]) if kind == "mlp" else 0.0)
            row.append(math.log2(g[f"b{i}/vectors"]) if kind == "efc" else 0.0)
            row += [float(bool(g[f"b{i}/in/{n}"])) for n in input_names(i)]
        return row

    def fingerprint(self) -> str:
        """The space's fingerprint (stored with the exported architecture)."""
        return self.space.fingerprint()


__all__ = ["BlockDAGSpace"]
