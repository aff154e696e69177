"""Sample-based search: a strategy proposes architectures (`ask`) and learns from their rewards (`tell`).

The runner owns the loop, so scoring a sample is a plain function call that could run anywhere (later: a
Ray task). Every strategy is seeded and has `state_dict` / `load_state_dict`: a killed search resumes
and proposes exactly what an uninterrupted one would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from recnas.errors import ConfigError
from recnas.space.choice import Sample, Space


class SampleStrategy:
    """What every sample-based strategy implements.

    `ask()` proposes one sample; `tell(sample, reward, info)` reports its score (higher is better);
    `export()` is the strategy's current best guess; `probs()` its preference per choice.
    """

    def __init__(self, space: Space, seed: int = 0) -> None:
        if len(space) == 0:
            raise ConfigError("the search space has no choices; nothing to search")
        self.space = space
        self.seed = int(seed)
        self.steps = 0  # samples told so far
        self.best_sample: Sample | None = None
        self.best_reward = -np.inf

    def ask(self) -> Sample:
        """Propose one sample."""
        raise NotImplementedError

    def tell(self, sample: Mapping[str, Any], reward: float, info: Mapping[str, Any] | None = None) -> None:
        """Report the reward of a sample this strategy proposed."""
        self.space.validate(sample)
        if not np.isfinite(reward):
            raise ConfigError(f"reward {reward!r} is not finite; a sample's score must be a number")
        self.steps += 1
        if reward > self.best_reward:
            self.best_reward, self.best_sample = float(reward), dict(sample)

    def export(self) -> Sample:
        """The strategy's decision (by default the best sample told so far)."""
        if self.best_sample is None:
            raise ConfigError("no sample has been told yet; call ask() and tell() first")
        return dict(self.best_sample)

    def probs(self) -> dict[str, list[float]]:
        """Preference over each choice's candidates (uniform unless the strategy learns one)."""
        return {k: [1.0 / len(c.candidates)] * len(c.candidates) for k, c in self.space.choices.items()}

    def state_dict(self) -> dict[str, Any]:
        """Counters and the best sample (JSON-able)."""
        return {"steps": self.steps, "best": json.dumps([self.best_sample, self.best_reward])}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        self.steps = int(state["steps"])
        best, reward = json.loads(state["best"])
        if best is not None:  # JSON turns tuple candidates into lists: map each value back to its candidate
            best = {k: next(c for c in self.space.choices[k].candidates if json.loads(json.dumps(c)) == v)
                    for k, v in best.items()}
        self.best_sample, self.best_reward = best, float(reward)


class RandomSearch(SampleStrategy):
    """Uniformly random samples: the reference every learned strategy must beat."""

    def __init__(self, space: Space, seed: int = 0) -> None:
        super().__init__(space, seed)
        self.rng = np.random.default_rng(seed)

    def ask(self) -> Sample:
        """A uniformly random sample."""
        return self.space.random_sample(self.rng)

    def state_dict(self) -> dict[str, Any]:
        """Counters, best sample and the generator state."""
        return {**super().state_dict(), "rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore counters, best sample and the generator."""
        super().load_state_dict(state)
        self.rng.bit_generator.state = json.loads(state["rng"])
