"""AutoGroup's sets on planted data (slow: `make test-known`): `configs/autogroup_synth.yaml`, 3 seeds.

The data plants a rank-8 pair (c1, c2) and a third-order interaction (c4, c5, c6) on fields small enough to learn it
from 80,000 rows: retrained with the set {c4, c5, c6} fixed, the model gains 0.02-0.03 valid AUC over the same sets
without it (seeds 1, 2). Asserted on every seed: some order-2 set holds c1 and c2, and the noise fields sit in fewer
order-1 and order-2 sets than the planted interactions' fields. Asserted on 2 of the 3 seeds, because that is what
holds: some order-3 set holds all of c4, c5 and c6. At the default `search.terms=distinct` (order-3 sets hold
products of three distinct fields only) it is found on seeds 1 and 3 here (2 threads) and on seeds 1-6 at one
thread; with the paper's terms on 4 of 6 seeds at one thread (bench/log/2026-12-08-issue20-distinct-terms.md).

The search runs at the library's defaults: its supernet's MLP reads the set interactions only (the paper's;
`search.raw_embeddings=false`). With an MLP that reads the embeddings too during the search, the order-2 separation
held on seeds 1 and 3 and not on seed 2 (noise fields in 5.3 order-2 sets on average, the planted ones in 4.2): the
MLP takes over much of what the sets would carry, and the structure gradient weakens against the size pull.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recnas.data.synthetic import Interaction, SynthConfig, write_synthetic
from recnas.experiment.config import load_config
from recnas.experiment.run import load_splits, set_seed
from recnas.experiment.search import search_stage
from recnas.methods import method_of

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PLANTED = [Interaction(["c1", "c2"], 8, 1.2), Interaction(["c4", "c5", "c6"], 2, 1.2)]


def searched_sets(seed: int, work: Path) -> tuple[dict, dict]:
    """(arch.json of the search, truth.json of the data) for data seed `seed`."""
    data = work / f"synth{seed}"
    write_synthetic(data, SynthConfig(rows=100_000, seed=seed, interactions=PLANTED))
    cfg = load_config(ROOT / "configs" / "autogroup_synth.yaml", [
        f"data.path={data}", f"data.cache_dir={work / 'cache'}", "trainer.progress=false", f"seed={seed}"])
    set_seed(cfg.seed, cfg.threads)
    arch = search_stage(method_of(cfg), load_splits(cfg), work / f"run{seed}")
    return arch, json.loads((data / "truth.json").read_text())


SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def searches(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[dict, dict]]:
    """{seed: (arch, truth)}: one search per seed, shared by the tests below."""
    return {seed: searched_sets(seed, tmp_path_factory.mktemp(f"autogroup{seed}")) for seed in SEEDS}


def test_some_order_3_set_holds_the_planted_triple_on_most_seeds(searches: dict) -> None:
    found = {seed: any(set(truth["interactions"][1]) <= set(s) for s in arch["sets"]["order_3"])
             for seed, (arch, truth) in searches.items()}
    assert sum(found.values()) >= 2, found


@pytest.mark.parametrize("seed", SEEDS)
def test_the_planted_pair_is_found_and_noise_fields_join_fewer_sets(seed: int, searches: dict) -> None:
    arch, truth = searches[seed]
    pair = set(truth["interactions"][0])  # PLANTED's order
    assert len(pair) == 2
    assert any(pair <= set(s) for s in arch["sets"]["order_2"]), arch["sets"]["order_2"]
    planted = sorted({f for fields in truth["interactions"] for f in fields})
    noise = truth["noise_fields"]
    for order in ("order_1", "order_2"):
        sets = arch["sets"][order]
        count = {f: sum(f in s for s in sets) for f in arch["fields"]}
        mean_noise = sum(count[f] for f in noise) / len(noise)
        mean_planted = sum(count[f] for f in planted) / len(planted)
        assert mean_noise < mean_planted, (order, count)
