from __future__ import annotations

from pathlib import Path

import pytest

from recnas.data.synthetic import SynthConfig, write_synthetic


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small default synthetic dataset, written once per test session."""
    out = tmp_path_factory.mktemp("synth") / "syn"
    write_synthetic(out, SynthConfig(rows=4000, seed=3))
    return out


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def prepared(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The small synthetic dataset, encoded once per session."""
    from recnas.data.cache import prepare
    from recnas.data.source import open_dataset

    return prepare(open_dataset(synth_dir), tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def planted_rank8(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Small vocabularies, a strong rank-8 c1 x c2 pair and a rank-2 c5 x c6 pair: the embedding-size searches'
    known answer, learnable in a few epochs of 32k rows (encoded once, with its truth)."""
    from recnas.data.cache import prepare
    from recnas.data.source import open_dataset
    from recnas.data.synthetic import Interaction

    out = tmp_path_factory.mktemp("rank8") / "syn"
    cfg = SynthConfig(rows=40_000, seed=1, cat_cardinalities=[40, 30, 40, 30, 20, 12, 50, 30],
                      interactions=[Interaction(["c1", "c2"], rank=8, scale=3.0), Interaction(["c5", "c6"], rank=2)])
    truth = write_synthetic(out, cfg)
    return prepare(open_dataset(out), tmp_path_factory.mktemp("rank8_cache")), truth


@pytest.fixture(scope="session")
def prepared_large(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """20,000 synthetic rows, encoded: enough signal for the learn-something checks."""
    from recnas.data.cache import prepare
    from recnas.data.source import open_dataset

    out = tmp_path_factory.mktemp("synth_large") / "syn"
    write_synthetic(out, SynthConfig(rows=20_000, seed=5))
    return prepare(open_dataset(out), tmp_path_factory.mktemp("cache_large"))
