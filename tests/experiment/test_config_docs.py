from __future__ import annotations

from pydantic import BaseModel

from recnas.experiment.config import ExperimentConfig
from recnas.experiment.config_docs import TARGET, configuration_markdown
from recnas.methods import METHODS, load_builtin_methods


def test_docs_configuration_md_is_generated_from_the_current_config_models() -> None:
    assert TARGET.read_text() == configuration_markdown(), (
        "docs/configuration.md is stale: run `python -m recnas.experiment.config_docs`")


def _undescribed(model: type[BaseModel], prefix: str) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += _undescribed(annotation, f"{prefix}{name}.")
        elif not field.description:
            out.append(prefix + name)
    return out


def test_every_config_key_has_a_description() -> None:
    load_builtin_methods()
    missing = _undescribed(ExperimentConfig, "")
    for name, method in METHODS.items():
        missing += _undescribed(method.config, f"search[{name}].")
    assert not missing, missing
