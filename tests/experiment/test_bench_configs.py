"""The benchmark settings in bench/configs are configs `recnas search` accepts as they are, one method each."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from recnas.experiment.config import load_config
from recnas.methods import method_names

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "bench" / "configs").glob("*.yaml"))


def test_every_method_has_a_bench_config_for_new_datasets() -> None:
    names = {p.stem for p in CONFIGS}
    assert CONFIGS and {"autodim", "autofis", "nis", "esapn"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_a_bench_config_loads_and_names_its_method(path: Path) -> None:
    cfg = load_config(path)
    method = path.stem.split("_", 1)[0]
    assert cfg.search is not None and cfg.search.method == method and method in method_names()
    own = path.stem.split("_", 1)[1] if "_" in path.stem else None
    if own is not None:  # a dataset's file reads that dataset, relative to the repository root
        assert Path(str(cfg.data.path)).name == own
        generic = yaml.safe_load(path.with_name(f"{method}.yaml").read_text())
        mine = yaml.safe_load(path.read_text())
        differing = {f"{s}.{k}" for s, body in mine.items() if isinstance(body, dict)
                     for k, v in body.items() if (generic.get(s) or {}).get(k) != v} - {"data.path"}
        header = "".join(line for line in path.read_text().splitlines() if line.startswith("#"))
        for key in differing:  # what differs per dataset is a cost: the file's comment names and justifies it
            assert key in header, f"{path.name}: {key} differs from {method}.yaml but its comment does not say why"
