"""docs/configuration.md, generated from the config models: every key with its type, default and description.

`python -m recnas.experiment.config_docs` rewrites the file; a test fails when it is stale. Each search method's
keys come from its own config class in the method registry.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from recnas.experiment.config import ExperimentConfig

TARGET = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _type(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return (text or str(annotation)).replace("typing.", "").replace("NoneType", "None").replace("|", "\\|")


def _row(key: str, field: Any) -> str:
    desc = (field.description or "").replace("|", "\\|")
    return f"| `{key}` | {_type(field.annotation)} | {_default(field)} | {desc} |"


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "required"
    if isinstance(value, BaseModel):
        return "section"
    return "none" if value is None else f"`{value}`"


def _section(prefix: str, model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    """A table of `model`'s own keys, then a table per nested section."""
    rows, nested = [], []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested.append((f"{prefix}{name}.", annotation))
            continue
        rows.append(_row(f"{prefix}{name}", field))
    doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
    out = [f"## `{prefix.rstrip('.') or 'top level'}`", "", doc, "", "| key | type | default | description |",
           "|---|---|---|---|", *rows, ""] if rows else []
    for sub_prefix, sub in nested:
        out += _section(sub_prefix, sub)
    return out


def configuration_markdown() -> str:
    """The whole reference."""
    from recnas.methods import METHODS, MethodConfig, load_builtin_methods
    from recnas.methods.base import BUILTIN_METHODS

    load_builtin_methods()
    lines = ["# Configuration reference", "",
             "Generated from the config models by `python -m recnas.experiment.config_docs`; do not edit by hand.",
             "Every key can be set in a YAML config or with `--set section.key=value`. An unknown key, or a model "
             "option the chosen model does not read, is an error naming it.", ""]
    lines += _section("", ExperimentConfig, skip=("search",))
    lines += ["## `search`", "", "The search section is the config class of the method `search.method` names "
              "(`recnas methods`). Keys every method has:", "",
              "| key | type | default | description |", "|---|---|---|---|"]
    for name, field in MethodConfig.model_fields.items():
        lines.append(_row(f"search.{name}", field))
    lines.append("")
    for name in sorted(n for n, m in METHODS.items() if m.__module__ in BUILTIN_METHODS):  # not a user's own
        cls = METHODS[name].config
        lines += [f"### `search.method: {name}`", "", (cls.__doc__ or "").strip().splitlines()[0], "",
                  "| key | type | default | description |", "|---|---|---|---|"]
        for key, field in cls.model_fields.items():
            if key in MethodConfig.model_fields and key != "method":
                continue
            lines.append(_row(f"search.{key}", field))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    """Rewrite docs/configuration.md (or print it with `-`)."""
    text = configuration_markdown()
    if sys.argv[1:] == ["-"]:
        sys.stdout.write(text)
        return
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
