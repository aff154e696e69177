"""GRDA: generalised regularised dual averaging (Chao & Cheng, 2019), the optimiser AutoFIS uses for its gates.

Each parameter keeps an accumulator v (started at its initial value) that sums the gradient steps,
v_t = v_{t-1} - lr * g_t, and the parameter is the soft-thresholded accumulator
w_t = sign(v_t) * max(|v_t| - c * lr^(1/2 + mu) * t^mu, 0). The threshold grows with the step count t,
so weights without a steady gradient signal are driven to exactly zero, which is how AutoFIS removes
interactions. With c = 0 it is plain dual averaging (the same path as SGD).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from recnas.errors import ConfigError


def grda_threshold(c: float, lr: float, mu: float, step: int) -> float:
    """The soft threshold after `step` updates: c * lr^(1/2 + mu) * step^mu."""
    return c * lr ** (0.5 + mu) * step**mu


def c_for_threshold(final_threshold: float, lr: float, mu: float, steps: int) -> float:
    """The c that makes the threshold reach `final_threshold` after `steps` updates.

    The paper's c (5e-4) is sized for tens of thousands of steps; a short search needs a larger c, and
    this derives it from the planned number of steps instead of guessing.
    """
    if steps < 1 or final_threshold < 0:
        raise ConfigError(f"need steps >= 1 and a threshold >= 0, got {steps} and {final_threshold}")
    return final_threshold / (lr ** (0.5 + mu) * steps**mu)


class GRDA(torch.optim.Optimizer):
    """Generalised regularised dual averaging with soft thresholding (sparsifies what it optimises)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1.0, c: float = 5e-4, mu: float = 0.7) -> None:
        if lr <= 0:
            raise ConfigError(f"GRDA lr must be > 0, got {lr}")
        if c < 0:
            raise ConfigError(f"GRDA c must be >= 0, got {c}")
        if not 0 < mu < 1:
            raise ConfigError(f"GRDA mu must lie in (0, 1), got {mu}")
        super().__init__(params, {"lr": lr, "c": c, "mu": mu})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One dual-averaging update followed by soft thresholding."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, c, mu = group["lr"], group["c"], group["mu"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ConfigError("GRDA does not take sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["accumulator"] = p.detach().clone()
                state["step"] += 1
                acc = state["accumulator"]
                acc.add_(p.grad, alpha=-lr)
                threshold = grda_threshold(c, lr, mu, state["step"])
                p.copy_(acc.sign() * (acc.abs() - threshold).clamp_min(0.0))
        return loss
