"""Typed experiment configs (pydantic) loaded from YAML with `--set key=value` overrides.

An unknown key or a wrong type is a `ConfigError` naming the dotted key. No `eval`: models and
optimisers are registry names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recnas.errors import ConfigError, describe_validation_error
from recnas.train.config import TrainerConfig


class DataConfig(BaseModel):
    """Where the data is and how it is read."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="dataset folder (train/valid/test [+ schema.yaml])")
    cache_dir: str | None = Field(None, description="cache root (default $RECNAS_CACHE_DIR or ~/.cache/recnas)")
    on_bad_row: Literal["error", "skip"] = "error"
    max_train_rows: int | None = Field(None, ge=1, description="use only the first N train rows (smoke tests)")


class ModelConfig(BaseModel):
    """Which zoo model and its hyper-parameters (options a model does not use are ignored by it)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "deepfm"
    embedding_dim: int = Field(10, ge=1)
    mlp: list[int] = Field(default_factory=lambda: [400, 400, 400])
    dropout: float = Field(0.2, ge=0, lt=1)
    batch_norm: bool = False
    numerical: Literal["auto", "scalar", "bucket"] = "auto"
    pooling: Literal["mean", "sum"] = "mean"
    cross_layers: int = Field(3, ge=1, description="DCN / DCNv2")
    structure: Literal["parallel", "stacked"] = "parallel"
    cin_layers: list[int] = Field(default_factory=lambda: [100, 100], description="xDeepFM")
    cin_activation: Literal["identity", "relu"] = "identity"
    attention_layers: int = Field(3, ge=1, description="AutoInt")
    heads: int = Field(2, ge=1)
    head_dim: int = Field(16, ge=1)
    residual: bool = True
    attention_dim: int = Field(16, ge=1, description="AFM")
    product: Literal["inner", "outer"] = "inner"

    def build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `build_model` (everything but the name)."""
        return self.model_dump(exclude={"name"})


class ExperimentConfig(BaseModel):
    """A whole run: data, model, trainer, seed and threads."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    seed: int = 2026
    threads: int = Field(2, ge=1)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)


def parse_value(text: str) -> Any:
    """A `--set` value: YAML scalars and lists, plus plain numbers like 1e-3 that YAML keeps as text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"--set value {text!r} is not valid YAML ({e})") from e
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` overrides to a raw config mapping."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. trainer.lr=1e-3")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = raw
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {p!r} is a value, not a section")
            node = child
        node[parts[-1]] = parse_value(text)
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config (or start from defaults), apply overrides, validate."""
    raw: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    raw = apply_overrides(raw, overrides or [])
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        where = source + (" (with --set overrides)" if overrides else "")
        raise ConfigError(describe_validation_error(e, where)) from None
