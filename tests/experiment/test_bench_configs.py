"""The benchmark settings in bench/configs are configs `recnas search` accepts as they are, one method each."""

from __future__ import annotations

from pathlib import Path

import pytest

from recnas.experiment.config import load_config
from recnas.methods import method_names

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "bench" / "configs").glob("*.yaml"))


def test_every_method_has_one_bench_config() -> None:
    names = [p.stem for p in CONFIGS]
    assert {"autodim", "autofis", "nis", "esapn"} <= set(names) and all(n in method_names() for n in names)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_a_bench_config_loads_names_its_method_and_holds_for_every_dataset(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.search is not None and cfg.search.method == path.stem and path.stem in method_names()
    assert cfg.data.path is None  # one setting for every dataset: the scripts pass the data
    header = "".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    assert "frappe_full" in header and "ml100k" in header  # it says how it was chosen, on both
