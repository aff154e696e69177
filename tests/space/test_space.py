from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from torch import nn

from recnas.errors import ConfigError
from recnas.space import Choice, SearchableBlock, Space


class Toy(nn.Module):
    def __init__(self, label: str, candidates: tuple) -> None:
        super().__init__()
        self.choice = Choice(label, candidates)
        self.sample: Mapping[str, Any] | None = None

    def choices(self) -> list[Choice]:
        return [self.choice]

    def arch_parameters(self) -> list[nn.Parameter]:
        return []

    def set_sample(self, sample: Mapping[str, Any] | None) -> None:
        self.sample = sample

    def export(self) -> dict:
        return {self.choice.label: self.choice.candidates[0]}

    def export_probs(self) -> dict:
        return {self.choice.label: [1.0 / len(self.choice.candidates)] * len(self.choice.candidates)}

    def freeze(self, sample: Mapping[str, Any]) -> nn.Module:
        return nn.Identity()


def test_collect_lists_every_choice_and_shares_equal_labels() -> None:
    model = nn.Sequential(Toy("dim/a", (2, 4)), nn.Linear(2, 2), Toy("dim/b", (2, 4, 8)), Toy("dim/a", (2, 4)))
    assert isinstance(model[0], SearchableBlock) and not isinstance(model[1], SearchableBlock)
    space = Space.collect(model)
    assert list(space.choices) == ["dim/a", "dim/b"]
    assert space.size() == 6
    sample = space.random_sample(np.random.default_rng(0))
    space.validate(sample)
    assert len(space.fingerprint()) == 16


def test_duplicate_label_with_other_candidates_is_an_error() -> None:
    model = nn.Sequential(Toy("x", (1, 2)), Toy("x", (1, 3)))
    with pytest.raises(ConfigError, match="appears twice with different candidates"):
        Space.collect(model)


def test_validate_names_the_bad_label() -> None:
    space = Space([Choice("a", (1, 2)), Choice("b", ("x", "y"))])
    with pytest.raises(ConfigError, match="missing \\['b'\\]"):
        space.validate({"a": 1})
    with pytest.raises(ConfigError, match="'z' for 'b'"):
        space.validate({"a": 1, "b": "z"})
    with pytest.raises(ConfigError):
        Choice("c", ())
