"""The model space: one primitive (`Choice`), the searchable-block protocol, and `Space.collect`.

A *sample* is a plain `dict[label, value]`. Blocks expose their choices up front, so RL and evolution
see the whole space before the first trial; a one-shot (gradient) block also exposes architecture
parameters. `freeze(sample)` returns a plain module, without architecture parameters, that is trained
from scratch at retrain time.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from torch import nn

from recnas.errors import ConfigError

Sample = dict[str, Any]


@dataclass(frozen=True)
class Choice:
    """A labelled decision among candidates (e.g. `dim/user` over (2, 4, 8, 16))."""

    label: str
    candidates: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.label:
            raise ConfigError("a Choice needs a non-empty label")
        if len(self.candidates) == 0:
            raise ConfigError(f"choice {self.label!r} has no candidates")
        if len(set(map(repr, self.candidates))) != len(self.candidates):
            raise ConfigError(f"choice {self.label!r} lists a candidate twice: {self.candidates}")


@runtime_checkable
class SearchableBlock(Protocol):
    """What every searchable block implements (no metaclasses, no `__init__` wrapping)."""

    def choices(self) -> list[Choice]:
        """Every decision this block owns."""

    def arch_parameters(self) -> list[nn.Parameter]:
        """Architecture parameters (empty for blocks searched only by sampling)."""

    def set_sample(self, sample: Mapping[str, Any] | None) -> None:
        """Fix one path (RL / evolution with shared weights); None returns to the mixed / gated search path."""

    def export(self) -> Sample:
        """The decision, e.g. the argmax or the gates kept."""

    def export_probs(self) -> dict[str, list[float]]:
        """The current preference over each choice's candidates."""

    def freeze(self, sample: Mapping[str, Any]) -> nn.Module:
        """A plain module implementing `sample`, with no architecture parameters."""


class Space:
    """All choices of a model, by label."""

    def __init__(self, choices: Iterable[Choice] = ()) -> None:
        self.choices: dict[str, Choice] = {}
        for c in choices:
            self.add(c)

    def add(self, choice: Choice) -> None:
        """Add a choice; a label seen before must come with the same candidates (a shared choice)."""
        known = self.choices.get(choice.label)
        if known is not None and known.candidates != choice.candidates:
            raise ConfigError(
                f"choice label {choice.label!r} appears twice with different candidates: "
                f"{known.candidates} and {choice.candidates}; give the blocks distinct labels"
            )
        self.choices[choice.label] = choice

    @classmethod
    def collect(cls, model: nn.Module) -> Space:
        """Every choice of every searchable block inside `model`, in module order."""
        space = cls()
        for m in model.modules():
            if isinstance(m, SearchableBlock):
                for c in m.choices():
                    space.add(c)
        return space

    def __len__(self) -> int:
        return len(self.choices)

    def size(self) -> float:
        """Number of distinct architectures (product of candidate counts)."""
        return float(math.prod(len(c.candidates) for c in self.choices.values()))  # exact ints: no overflow

    def validate(self, sample: Mapping[str, Any]) -> None:
        """Fail with the offending label when `sample` does not fit this space."""
        missing = [k for k in self.choices if k not in sample]
        unknown = [k for k in sample if k not in self.choices]
        if missing or unknown:
            raise ConfigError(f"sample does not fit the space: missing {missing}, unknown {unknown}")
        for k, v in sample.items():
            if v not in self.choices[k].candidates:
                raise ConfigError(f"sample value {v!r} for {k!r} is not among {self.choices[k].candidates}")

    def random_sample(self, rng: np.random.Generator) -> Sample:
        """A uniformly random architecture."""
        return {k: c.candidates[int(rng.integers(len(c.candidates)))] for k, c in self.choices.items()}

    def fingerprint(self) -> str:
        """A stable hash of the labels and candidates (stored with every exported architecture)."""
        blob = json.dumps([[k, [repr(v) for v in c.candidates]] for k, c in sorted(self.choices.items())])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
