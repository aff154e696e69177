from __future__ import annotations

from pathlib import Path

import pytest

from recnas.errors import ConfigError
from recnas.experiment.config import load_config


def test_overrides_are_typed(tmp_path: Path) -> None:
    cfg = load_config(None, ["trainer.lr=1e-3", "model.mlp=[64, 32]", "model.batch_norm=true", "seed=3",
                             "data.path=/x"])
    assert cfg.trainer.lr == 1e-3 and cfg.model.mlp == [64, 32] and cfg.model.batch_norm is True
    assert cfg.seed == 3 and cfg.data.path == "/x"


def test_yaml_file_then_overrides(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("model: {name: fm, embedding_dim: 4}\ntrainer: {epochs: 2}\n")
    cfg = load_config(p, ["trainer.epochs=5"])
    assert cfg.model.name == "fm" and cfg.model.embedding_dim == 4 and cfg.trainer.epochs == 5


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'trainer.learning_rate'"):
        load_config(None, ["trainer.learning_rate=0.1"])
    p = tmp_path / "c.yaml"
    p.write_text("modle: {name: fm}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key 'modle'"):
        load_config(p)


def test_wrong_type_is_named() -> None:
    with pytest.raises(ConfigError, match="key 'trainer.epochs'"):
        load_config(None, ["trainer.epochs=many"])
    with pytest.raises(ConfigError, match="key 'trainer.optimizer'"):
        load_config(None, ["trainer.optimizer=sgd"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["trainer.epochs"])


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", ""])
def test_a_run_name_that_would_leave_runs_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="would name a folder outside runs/"):
        load_config(None, [f"name={name!r}" if name else "name=''"])


@pytest.mark.parametrize("key", ["model.mlp=[64,0]", "model.cin_layers=[-1]"])
def test_a_layer_of_width_zero_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="layer widths must be >= 1"):
        load_config(None, [key])


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_loads_as_it_is(path: Path) -> None:
    """Every configs/*.yaml validates as shipped (e.g. its warm-up below its search epochs at the method's defaults)."""
    cfg = load_config(path)
    method = path.stem.split("_")[0]
    assert cfg.search is None or cfg.search.method == method, (path.name, cfg.search)
