"""A REINFORCE controller over a `Space` (Williams 1992; the controller of ENAS and NIS).

The policy is either one logit vector per choice (`kind="logits"`, choices independent) or an LSTM that
emits the choices in order, each conditioned on the ones before (`kind="lstm"`, as in ENAS and NIS).
The update is the policy gradient of the batch of told samples,

    loss = -mean_k (R_k - b) / s * log p(sample_k) - entropy_weight * H,

with b the baseline: an exponential moving average of the rewards (`baseline="moving"`), or for each sample the
mean reward of the other samples told with it (`baseline="leave_one_out"`: when the samples of one update are
scored on the same validation batch, that batch's difficulty moves all their rewards alike and this baseline
cancels it, which a moving average over batches cannot), s a running standard deviation of the
advantages (`normalize=True`: the scale of rewards stops mattering, which is what makes one learning rate
work for logloss differences of 0.005 and for 0/1 bandit rewards alike) and H the policy entropy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from recnas.errors import ConfigError
from recnas.search.sample import SampleStrategy
from recnas.space.choice import Sample, Space


class _LogitsPolicy(nn.Module):
    """Independent categorical distributions, one per choice."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.logits = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in sizes)

    def step_logits(self, k: int, state: Any, prev: int | None) -> tuple[torch.Tensor, Any]:
        return self.logits[k], None


class _LSTMPolicy(nn.Module):
    """An LSTM cell stepping through the choices; its input is the embedding of the previous decision."""

    def __init__(self, sizes: list[int], hidden: int) -> None:
        super().__init__()
        self.offsets = [0]
        for n in sizes:
            self.offsets.append(self.offsets[-1] + n)
        self.start = nn.Parameter(torch.zeros(hidden))
        self.inputs = nn.Embedding(self.offsets[-1], hidden)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in sizes)
        for head in self.heads:  # start near uniform, like the logits policy
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def step_logits(self, k: int, state: Any, prev: int | None) -> tuple[torch.Tensor, Any]:
        x = self.start if prev is None else self.inputs.weight[self.offsets[k - 1] + prev]
        h, c = self.cell(x.unsqueeze(0), state)
        return self.heads[k](h).squeeze(0), (h, c)


class ReinforceController(SampleStrategy):
    """REINFORCE with a moving-average baseline, an advantage scale and an entropy bonus (module docstring).

    Args:
        space: the choices to decide.
        seed: seeds the policy's initialisation and its sampling.
        kind: `logits` (independent choices) or `lstm` (autoregressive).
        lr: Adam learning rate of the policy.
        batch: samples per policy update (`tell` updates once this many are pending).
        baseline_decay: decay of the reward moving average (and of the advantage variance).
        entropy_weight: weight of the entropy bonus.
        normalize: divide advantages by their running standard deviation.
        hidden: LSTM width.
        baseline: `moving` (an average over updates) or `leave_one_out` (the other samples of the same update;
            needs batch >= 2).
    """

    def __init__(self, space: Space, seed: int = 0, kind: Literal["logits", "lstm"] = "logits", lr: float = 0.05,
                 batch: int = 1, baseline_decay: float = 0.9, entropy_weight: float = 1e-3, normalize: bool = True,
                 hidden: int = 32, baseline: Literal["moving", "leave_one_out"] = "moving") -> None:
        super().__init__(space, seed)
        if kind not in ("logits", "lstm"):
            raise ConfigError(f"controller kind must be logits or lstm, got {kind!r}")
        if batch < 1:
            raise ConfigError(f"controller batch must be >= 1, got {batch}")
        if baseline not in ("moving", "leave_one_out"):
            raise ConfigError(f"controller baseline must be moving or leave_one_out, got {baseline!r}")
        if baseline == "leave_one_out" and batch < 2:
            raise ConfigError("a leave-one-out baseline needs at least 2 samples per update (batch >= 2)")
        self.baseline_kind = baseline
        if not 0 <= baseline_decay < 1:
            raise ConfigError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
        self.labels = list(space.choices)
        self.candidates = [space.choices[k].candidates for k in self.labels]
        sizes = [len(c) for c in self.candidates]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy: nn.Module = _LogitsPolicy(sizes) if kind == "logits" else _LSTMPolicy(sizes, hidden)
        self.kind = kind
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.batch = batch
        self.baseline_decay = baseline_decay
        self.entropy_weight = entropy_weight
        self.normalize = normalize
        self.baseline: float | None = None
        self.adv_var: float | None = None
        self.pending: list[tuple[list[int], float]] = []  # (candidate indices, reward): JSON-safe
        self.updates = 0

    # ---- the policy -------------------------------------------------------------------------
    def _index(self, sample: Mapping[str, Any]) -> list[int]:
        return [cands.index(sample[label]) for label, cands in zip(self.labels, self.candidates, strict=True)]

    def _walk(self, picks: list[int] | None, greedy: bool = False) -> tuple[list[int], torch.Tensor, torch.Tensor,
                                                                            list[torch.Tensor]]:
        """Step through the choices: sample (picks None), take the argmax (greedy) or score the given picks.

        Returns the picks, their summed log-probability, the summed entropy and each step's probabilities.
        """
        out: list[int] = []
        logp = torch.zeros(())
        entropy = torch.zeros(())
        probs: list[torch.Tensor] = []
        state: Any = None
        prev: int | None = None
        for k in range(len(self.labels)):
            logits, state = self.policy.step_logits(k, state, prev)
            log_p = torch.log_softmax(logits, dim=0)
            p = log_p.exp()
            if picks is not None:
                j = picks[k]
            elif greedy:
                j = int(torch.argmax(p))
            else:
                j = int(torch.multinomial(p.detach(), 1, generator=self.generator))
            out.append(j)
            logp = logp + log_p[j]
            entropy = entropy - (p * log_p).sum()
            probs.append(p.detach())
            prev = j
        return out, logp, entropy, probs

    def _sample_of(self, picks: list[int]) -> Sample:
        return {label: cands[j] for label, cands, j in zip(self.labels, self.candidates, picks, strict=True)}

    def ask(self) -> Sample:
        """Draw a sample from the policy."""
        with torch.no_grad():
            picks, _, _, _ = self._walk(None)
        return self._sample_of(picks)

    def log_prob(self, sample: Mapping[str, Any]) -> float:
        """The log-probability of `sample` under the current policy."""
        with torch.no_grad():
            return float(self._walk(self._index(sample))[1])

    def tell(self, sample: Mapping[str, Any], reward: float, info: Mapping[str, Any] | None = None) -> None:
        """Queue the reward; update the policy once `batch` rewards are pending."""
        super().tell(sample, reward, info)
        self.pending.append((self._index(sample), float(reward)))
        if len(self.pending) >= self.batch:
            self._update()

    def _update(self) -> None:
        rewards = torch.tensor([r for _, r in self.pending])
        mean = float(rewards.mean())
        if self.baseline_kind == "leave_one_out":  # batch >= 2 (checked at construction)
            adv = rewards - (rewards.sum() - rewards) / (len(rewards) - 1)
        else:
            adv = rewards - (mean if self.baseline is None else self.baseline)
        if self.normalize:
            var = float(adv.pow(2).mean())
            self.adv_var = var if self.adv_var is None else (
                self.baseline_decay * self.adv_var + (1 - self.baseline_decay) * var)
            adv = adv / (self.adv_var ** 0.5 + 1e-8)
        loss = torch.zeros(())
        for (picks, _), a in zip(self.pending, adv, strict=True):
            _, logp, entropy, _ = self._walk(picks)
            loss = loss - a * logp - self.entropy_weight * entropy
        self.optimizer.zero_grad(set_to_none=True)
        (loss / len(self.pending)).backward()
        self.optimizer.step()
        self.baseline = mean if self.baseline is None else (
            self.baseline_decay * self.baseline + (1 - self.baseline_decay) * mean)
        self.pending = []
        self.updates += 1

    def export(self) -> Sample:
        """The most probable sample (argmax per choice; greedy decoding for the LSTM)."""
        with torch.no_grad():
            picks, _, _, _ = self._walk(None, greedy=True)
        return self._sample_of(picks)

    def probs(self) -> dict[str, list[float]]:
        """Each choice's distribution (for the LSTM: along the greedy path)."""
        with torch.no_grad():
            _, _, _, probs = self._walk(None, greedy=True)
        return {label: [round(float(v), 6) for v in p] for label, p in zip(self.labels, probs, strict=True)}

    def entropy(self) -> float:
        """Entropy of the policy along the greedy path (nats); falls as the controller converges."""
        with torch.no_grad():
            return float(self._walk(None, greedy=True)[2])

    # ---- resumption ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Policy, optimiser, baseline, pending rewards and the sampling generator."""
        return {**super().state_dict(), "policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "scalars": json.dumps([self.baseline, self.adv_var, self.pending, self.updates])}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        super().load_state_dict(state)
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline, self.adv_var, pending, self.updates = json.loads(state["scalars"])
        self.pending = [([int(j) for j in picks], float(r)) for picks, r in pending]
