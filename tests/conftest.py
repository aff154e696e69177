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
