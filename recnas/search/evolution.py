"""Evolution over genotypes (AutoCTR's search): aging evolution with a learned ranker, and random search.

A strategy proposes genotypes in rounds (`propose(k)`) and learns from finished trials (`observe(records)`). It is
deterministic given its seed and the trial results it is told, in trial-id order: a killed search is resumed by
replaying the recorded results (`recnas.search.trials`), with no state of its own on disk.

`AgingEvolution` (Real et al., 2019, as AutoCTR uses it): a population (default 20), filled first with the `start`
genotypes (a known architecture to begin from) and random ones; then each child mutates one active token of a parent
chosen by rank (the best-ranked parent is the most likely, linearly), and a ranker, where fitted, picks the most
promising of many mutants (default 100) so only it is trained. After each round the population drops the member with
the worst weighted score of age, validation logloss rank and cost rank, so old members leave and cheap ones stay.
`RandomGenotypes` draws new genotypes uniformly (after the same `start` genotypes): the control every evolution run is
measured against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from recnas.errors import ConfigError
from recnas.space.choice import Sample


class GenotypeSpace(Protocol):
    """What a strategy needs of a space (`recnas.space.autoctr.BlockDAGSpace`)."""

    def random(self, rng: np.random.Generator) -> Sample:
        """A random valid genotype."""
        ...

    def mutate(self, g: Mapping[str, Any], rng: np.random.Generator, seen: set[str]) -> Sample | None:
        """A valid one-token child not in `seen`, or None."""
        ...

    def key(self, g: Mapping[str, Any]) -> str:
        """The architecture's identity."""
        ...

    def features(self, g: Mapping[str, Any]) -> list[float]:
        """A numeric vector for the ranker."""
        ...


@dataclass
class Proposal:
    """A genotype to train and how it was made (`random`, `mutant`, `ranked mutant`)."""

    genotype: Sample
    origin: str
    parent: int | None = None  # the parent's trial id


class LambdaRanker:
    """LightGBM's LambdaRank over genotype features, refit on every trial result (one query: all trials).

    Relevance grades are the trials' validation-logloss ranks cut into `grades` levels (best = highest). Fitted
    with one thread and `deterministic`, so the same results give the same scores.
    """

    def __init__(self, seed: int, grades: int = 8, min_trials: int = 10) -> None:
        try:
            import lightgbm  # noqa: F401
        except ImportError:
            raise ConfigError("search.ranker needs LightGBM: pip install 'recnas[ray]' (or lightgbm), or set "
                              "search.ranker=false for plain evolution") from None
        self.seed, self.grades, self.min_trials = int(seed), int(grades), int(min_trials)
        self.model: Any = None

    def fit(self, features: Sequence[Sequence[float]], losses: Sequence[float]) -> None:
        """Refit on every finished trial so far (no-op below `min_trials`)."""
        import lightgbm

        n = len(losses)
        if n < self.min_trials:
            return
        loss = np.asarray(losses, dtype=np.float64)
        worse = (loss[None, :] > loss[:, None]).sum(1)  # trials each one beats; equal losses, equal grades
        grade = (worse * self.grades) // n  # the best -> up to grades - 1, the worst -> 0
        self.model = lightgbm.LGBMRanker(
            objective="lambdarank", n_estimators=60, num_leaves=7, learning_rate=0.1, min_child_samples=3,
            deterministic=True, force_col_wise=True, num_threads=1, random_state=self.seed, verbose=-1)
        self.model.fit(np.asarray(features, dtype=np.float64), grade, group=[n])

    def scores(self, features: Sequence[Sequence[float]]) -> np.ndarray | None:
        """Higher = more promising; None until fitted."""
        if self.model is None:
            return None
        return np.asarray(self.model.predict(np.asarray(features, dtype=np.float64)))


@dataclass
class Member:
    """A population member: its trial, loss and cost, and how many rounds it has lived."""

    trial: int
    genotype: Sample
    loss: float
    cost: float
    age: int = 0


@dataclass
class SurvivalWeights:
    """Weights of the survival score (each term a rank scaled to [0, 1], 1 = worst)."""

    age: float = 0.3
    loss: float = 0.5
    cost: float = 0.2


class RandomGenotypes:
    """New valid genotypes drawn uniformly: the control of every evolution."""

    name = "random"

    def __init__(self, space: GenotypeSpace, seed: int, start: Sequence[Sample] = ()) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.seen: set[str] = set()
        self.start = [dict(g) for g in start]

    def propose(self, k: int) -> list[Proposal]:
        """`k` genotypes never proposed before: the `start` genotypes first, then uniform draws."""
        out: list[Proposal] = []
        pending = set(self.seen)
        for _ in range(k):
            out.append(self._first(pending))
            pending.add(self.space.key(out[-1].genotype))
        return out

    def _first(self, seen: set[str]) -> Proposal:
        """The next `start` genotype not tried yet (origin `start`), else a uniform draw (`random`)."""
        for g in self.start:
            if self.space.key(g) not in seen:
                return Proposal(dict(g), "start")
        return Proposal(self._fresh(seen), "random")

    def _fresh(self, seen: set[str]) -> Sample:
        for _ in range(1000):
            g = self.space.random(self.rng)
            if self.space.key(g) not in seen:
                return g
        raise ConfigError("the space has no architecture left that was not tried; lower search.trials or widen the "
                          "space (search.blocks, search.block_types)")

    def observe(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Remember what was tried (a failed trial is not tried again)."""
        for r in records:
            self.seen.add(str(r["key"]))


class AgingEvolution(RandomGenotypes):
    """Aging evolution with rank-based parents, one-token mutants and a ranker (module docstring).

    `cost_key` names the trial result the survival's cost rank reads (FLOPs per row); the child is drawn among the
    ranker's best-scored `top_share` of the mutants.
    """

    name = "evolution"

    def __init__(self, space: GenotypeSpace, seed: int, population_size: int = 20, mutants: int = 100,
                 ranker: LambdaRanker | None = None, cost_key: str = "flops",
                 weights: SurvivalWeights | None = None, top_share: float = 0.1, start: Sequence[Sample] = ()) -> None:
        super().__init__(space, seed, start)
        self.top_share = float(top_share)
        self.population_size, self.mutants, self.ranker = int(population_size), int(mutants), ranker
        self.cost_key, self.weights = cost_key, weights or SurvivalWeights()
        self.population: list[Member] = []
        self.data: tuple[list[list[float]], list[float]] = ([], [])

    def propose(self, k: int) -> list[Proposal]:
        """The start genotypes and random ones until the population is filled once, then (ranked) mutants."""
        out: list[Proposal] = []
        pending = set(self.seen)
        for _ in range(k):
            if len(self.seen) + len(out) < self.population_size or not self.population:  # seen: one key per trial
                p = self._first(pending)
            else:
                p = self._child(pending)
            pending.add(self.space.key(p.genotype))
            out.append(p)
        return out

    def _child(self, pending: set[str]) -> Proposal:
        ranked = sorted(self.population, key=lambda m: (m.loss, m.trial))
        n = len(ranked)
        weights = np.arange(n, 0, -1, dtype=np.float64)  # best n, worst 1
        parent = ranked[int(self.rng.choice(n, p=weights / weights.sum()))]
        kids: list[Sample] = []
        taken = set(pending)
        for _ in range(self.mutants if self.ranker is not None else 1):
            kid = self.space.mutate(parent.genotype, self.rng, taken)
            if kid is None:
                break
            kids.append(kid)
            taken.add(self.space.key(kid))
        if not kids:  # the parent's neighbourhood is exhausted: a random newcomer
            return Proposal(self._fresh(pending), "random")
        scores = self.ranker.scores([self.space.features(c) for c in kids]) if self.ranker is not None else None
        if scores is None:
            return Proposal(kids[0], "mutant", parent.trial)
        top = max(int(np.ceil(self.top_share * len(kids))), 1)  # a draw among the best-scored few, not the argmax:
        best = np.argsort(-scores, kind="stable")[:top]  # a ranker fitted on few trials scores the parent's twins first
        return Proposal(kids[int(best[int(self.rng.integers(top))])], "ranked mutant", parent.trial)

    def observe(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Add the round's successful trials (age 0), age the rest, drop the worst-scored beyond the size; refit."""
        super().observe(records)
        for m in self.population:
            m.age += 1
        for r in records:
            if r.get("status") != "ok":
                continue
            self.population.append(Member(int(r["id"]), dict(r["genotype"]), float(r["valid_logloss"]),
                                           float(r.get(self.cost_key) or 0.0)))
            self.data[0].append(self.space.features(r["genotype"]))
            self.data[1].append(float(r["valid_logloss"]))
        while len(self.population) > self.population_size:
            self.population.remove(self._worst())
        if self.ranker is not None and records:
            self.ranker.fit(*self.data)

    def _worst(self) -> Member:
        pop = self.population
        n = len(pop)

        def ranks(values: list[float]) -> np.ndarray:  # 0 = best (smallest), 1 = worst; ties by trial id
            order = np.lexsort((np.array([m.trial for m in pop]), np.asarray(values)))
            r = np.empty(n)
            r[order] = np.arange(n) / max(n - 1, 1)
            return r

        w = self.weights
        score = (w.age * ranks([float(m.age) for m in pop]) + w.loss * ranks([m.loss for m in pop])
                 + w.cost * ranks([m.cost for m in pop]))
        return pop[int(np.argmax(score))]


__all__ = ["AgingEvolution", "LambdaRanker", "Proposal", "RandomGenotypes", "SurvivalWeights"]
