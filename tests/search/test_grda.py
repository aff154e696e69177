from __future__ import annotations

import pytest
import torch

from recnas.errors import ConfigError
from recnas.search.grda import GRDA, c_for_threshold, grda_threshold


def quadratic_step(opt: torch.optim.Optimizer, w: torch.nn.Parameter, target: torch.Tensor) -> None:
    opt.zero_grad()
    ((w - target) ** 2).sum().backward()
    opt.step()


def test_without_regularisation_it_follows_sgd() -> None:
    target = torch.tensor([1.0, -2.0, 0.5])
    w1 = torch.nn.Parameter(torch.tensor([0.3, 0.1, -0.4]))
    w2 = torch.nn.Parameter(w1.detach().clone())
    grda, sgd = GRDA([w1], lr=0.05, c=0.0, mu=0.5), torch.optim.SGD([w2], lr=0.05)
    for _ in range(50):
        quadratic_step(grda, w1, target)
        quadratic_step(sgd, w2, target)
    torch.testing.assert_close(w1.detach(), w2.detach())


def test_weak_weights_go_to_exactly_zero_and_strong_ones_survive() -> None:
    target = torch.tensor([2.0, 0.0, -1.5, 0.0])  # the zero targets: no steady gradient signal
    w = torch.nn.Parameter(torch.full((4,), 0.6))
    opt = GRDA([w], lr=0.05, c=c_for_threshold(0.5, lr=0.05, mu=0.6, steps=300), mu=0.6)
    for _ in range(300):
        quadratic_step(opt, w, target)
    assert w[1].item() == 0.0 and w[3].item() == 0.0  # exactly zero, not merely small
    assert w[0].item() > 1.0 and w[2].item() < -0.5


def test_threshold_grows_as_c_lr_power_t_mu() -> None:
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = GRDA([w], lr=0.1, c=0.2, mu=0.5)
    for t in range(1, 6):
        opt.zero_grad()
        w.grad = torch.zeros(1)  # no gradient: only the threshold moves the weight
        opt.step()
        expected = max(1.0 - 0.2 * 0.1**1.0 * t**0.5, 0.0)
        assert w.item() == pytest.approx(expected)
    assert grda_threshold(0.2, 0.1, 0.5, 4) == pytest.approx(0.2 * 0.1 * 2)


def test_c_for_threshold_inverts_the_schedule() -> None:
    c = c_for_threshold(0.3, lr=1.0, mu=0.8, steps=500)
    assert grda_threshold(c, 1.0, 0.8, 500) == pytest.approx(0.3)
    with pytest.raises(ConfigError):
        c_for_threshold(0.3, lr=1.0, mu=0.8, steps=0)


def test_bad_settings_are_refused() -> None:
    p = [torch.nn.Parameter(torch.zeros(1))]
    for kw in ({"lr": 0}, {"c": -1}, {"mu": 1.5}):
        with pytest.raises(ConfigError):
            GRDA(p, **kw)
