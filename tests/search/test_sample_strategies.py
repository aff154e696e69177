"""Sample-based strategies: the REINFORCE controller learns a bandit, random search is uniform, both resume."""

from __future__ import annotations

import numpy as np
import pytest

from recnas.errors import ConfigError
from recnas.search.reinforce import ReinforceController
from recnas.search.sample import RandomSearch
from recnas.space import Choice, Space

ARMS = (0.5, 0.5, 0.7, 0.5, 0.5)  # the best arm pays 0.7, the others 0.5


def bandit_steps_to_confidence(kind: str, seed: int, lr: float, steps: int = 500) -> int | None:
    """Steps until p(best arm) > 0.9 on the 5-armed Bernoulli bandit, or None within `steps`."""
    ctrl = ReinforceController(Space([Choice("arm", tuple(range(len(ARMS))))]), seed=seed, kind=kind, lr=lr)
    rng = np.random.default_rng(seed)
    for step in range(steps):
        sample = ctrl.ask()
        ctrl.tell(sample, float(rng.random() < ARMS[sample["arm"]]))
        if ctrl.probs()["arm"][2] > 0.9:
            return step + 1
    return None


def test_reinforce_puts_90_percent_on_the_best_arm_within_500_steps_in_18_of_20_seeds() -> None:
    steps = [bandit_steps_to_confidence("logits", seed, lr=0.1) for seed in range(20)]
    assert sum(s is not None for s in steps) >= 18, steps


def test_the_lstm_controller_learns_the_bandit_too() -> None:
    steps = [bandit_steps_to_confidence("lstm", seed, lr=0.01) for seed in range(20)]
    assert sum(s is not None for s in steps) >= 18, steps


def test_reinforce_learns_each_choice_of_a_two_choice_space() -> None:
    space = Space([Choice("a", (0, 1, 2)), Choice("b", ("x", "y"))])
    ctrl = ReinforceController(space, seed=0, lr=0.1, batch=4)
    rng = np.random.default_rng(0)
    for _ in range(400):
        s = ctrl.ask()
        ctrl.tell(s, float(s["a"] == 2) + float(s["b"] == "y") + rng.normal(0, 0.3))
    assert ctrl.export() == {"a": 2, "b": "y"}
    assert ctrl.probs()["a"][2] > 0.8 and ctrl.probs()["b"][1] > 0.8


@pytest.mark.parametrize("make", [
    lambda space: ReinforceController(space, seed=3, batch=3),
    lambda space: ReinforceController(space, seed=3, kind="lstm", lr=0.01, batch=2),
    lambda space: RandomSearch(space, seed=3),
])
def test_a_strategy_restored_from_its_state_proposes_what_an_uninterrupted_one_does(make) -> None:  # noqa: ANN001
    space = Space([Choice("a", (0, 1, 2, 3)), Choice("b", (1, 2))])

    def reward(s: dict) -> float:
        return s["a"] * 0.1 + s["b"] * 0.05

    whole, first = make(space), make(space)
    for _ in range(25):
        s = whole.ask()
        whole.tell(s, reward(s))
    for _ in range(13):
        s = first.ask()
        first.tell(s, reward(s))
    resumed = make(space)
    resumed.load_state_dict(first.state_dict())
    for _ in range(12):
        s = resumed.ask()
        resumed.tell(s, reward(s))
    assert [whole.ask() for _ in range(5)] == [resumed.ask() for _ in range(5)]
    assert whole.export() == resumed.export()


def test_random_search_covers_the_space_uniformly_and_exports_the_best_told_sample() -> None:
    space = Space([Choice("a", (0, 1, 2, 3))])
    rs = RandomSearch(space, seed=0)
    draws = [rs.ask()["a"] for _ in range(4000)]
    counts = np.bincount(draws, minlength=4) / len(draws)
    assert np.all(np.abs(counts - 0.25) < 0.03), counts
    for a in (1, 3, 0):
        rs.tell({"a": a}, float(a))
    assert rs.export() == {"a": 3}
    assert rs.probs() == {"a": [0.25] * 4}


def test_bad_rewards_samples_and_settings_are_clear_errors() -> None:
    space = Space([Choice("a", (0, 1))])
    ctrl = ReinforceController(space)
    with pytest.raises(ConfigError, match="not among"):
        ctrl.tell({"a": 5}, 1.0)
    with pytest.raises(ConfigError, match="not finite"):
        ctrl.tell({"a": 1}, float("nan"))
    with pytest.raises(ConfigError, match="no sample has been told"):
        RandomSearch(space).export()
    with pytest.raises(ConfigError, match="logits or lstm"):
        ReinforceController(space, kind="gru")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no choices"):
        RandomSearch(Space())


def shared_offset_bandit(baseline: str, seed: int, steps: int = 100, k: int = 8) -> float:
    """p(best value) of the paying choice when every step's k rewards share a large common offset.

    The offset stands for the step's validation batch (NIS scores a step's layouts on one batch): it is 12x the
    largest gap between layouts, and moves every reward of the step alike.
    """
    space = Space([Choice(f"f{i}", (0, 1, 2, 3)) for i in range(6)])
    ctrl = ReinforceController(space, seed=seed, lr=0.05, batch=k, baseline=baseline)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        offset = rng.normal(0, 0.05)
        for _ in range(k):
            s = ctrl.ask()
            ctrl.tell(s, offset + 0.004 * s["f0"] + rng.normal(0, 0.002))  # only f0 pays
    return ctrl.probs()["f0"][3]


def test_a_leave_one_out_baseline_cancels_a_reward_offset_shared_by_a_step() -> None:
    loo = [shared_offset_bandit("leave_one_out", seed) for seed in range(5)]
    moving = [shared_offset_bandit("moving", seed) for seed in range(5)]
    assert min(loo) > 0.9, loo
    assert np.mean(loo) > np.mean(moving) + 0.1, (loo, moving)  # the moving average carries the offsets as noise
    with pytest.raises(ConfigError, match="leave-one-out"):
        ReinforceController(Space([Choice("a", (0, 1))]), batch=1, baseline="leave_one_out")
