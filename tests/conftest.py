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
def prepared_large(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """20,000 synthetic rows, encoded: enough signal for the learn-something checks."""
    from recnas.data.cache import prepare
    from recnas.data.source import open_dataset

    out = tmp_path_factory.mktemp("synth_large") / "syn"
    write_synthetic(out, SynthConfig(rows=20_000, seed=5))
    return prepare(open_dataset(out), tmp_path_factory.mktemp("cache_large"))
