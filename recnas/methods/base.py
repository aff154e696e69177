"""The method registry: one file per search method, each a `SearchMethod` subclass registered by name.

A method owns its config class (the `search:` section when `search.method` names it), how it builds and
searches its supernet, what it writes to `search/arch.json`, how the retrain model is frozen from the found
sample, the baseline it is measured against, an optional random control, and how its result reads in the
CLI, the report and its plots. The generic runner (`recnas.experiment.search`), the report and the CLI read
this registry and never name a method.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from recnas.data.batches import BatchIterator
from recnas.data.schema import Schema
from recnas.data.splits import Splits, train_arrays
from recnas.errors import ConfigError
from recnas.nn.models import MODELS, CTRModel, build_model
from recnas.train.hooks import Hook

if TYPE_CHECKING:
    from recnas.experiment.config import ExperimentConfig

Log = Callable[[str], None]


class MethodConfig(BaseModel):
    """Settings every search method has; a method's config class adds its own keys (and its `method` literal)."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="the registered search method (`recnas methods`)")
    batch_size: int | None = Field(None, ge=2, description="search batch size (default trainer.batch_size; at "
                                   "least 2)")
    lr: float | None = Field(None, gt=0, description="weight learning rate during the search (default trainer.lr)")
    embedding_l2: float | None = Field(None, ge=0, description="embedding L2 during the search (default "
                                       "trainer.embedding_l2)")
    baseline: bool = Field(True, description="also train the unsearched model with the same settings")


class BudgetConfig(BaseModel):
    """The one budget vocabulary of every embedding search (AutoDim, NIS, ESAPN)."""

    max_ep: int | None = Field(None, ge=1, description="hard budget: floats the searched embedding tables may store")
    max_ep_fraction: float | None = Field(
        None, gt=0, le=1, description="the budget as a fraction of the searched fields' tables at full width "
        "(not with max_ep)")

    @model_validator(mode="after")
    def _one_budget(self) -> BudgetConfig:
        if self.max_ep is not None and self.max_ep_fraction is not None:
            raise ValueError("give max_ep or max_ep_fraction, not both")
        return self

    def budget(self, full_ep: int) -> int | None:
        """The budget in floats, given the searched fields' EP at full width (None: no budget)."""
        if self.max_ep_fraction is not None:
            return int(self.max_ep_fraction * full_ep)
        return self.max_ep


class FillBudgetConfig(BudgetConfig):
    """A budget the export can be grown into (AutoDim, NIS)."""

    fill_budget: bool = Field(False, description="grow the export under the budget until no larger step fits, taking "
                              "first the step that loses the least log-probability per unit of memory")

    @model_validator(mode="after")
    def _fill_needs_budget(self) -> FillBudgetConfig:
        if self.fill_budget and self.max_ep is None and self.max_ep_fraction is None:
            raise ValueError("fill_budget grows the export up to the budget; set max_ep_fraction (e.g. 0.4) or max_ep")
        return self


class SearchMethod:
    """One search method (subclass, set the class variables, register with `@register_method`).

    Constructed on a validated `ExperimentConfig` whose `search` is this method's config class.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    decides: ClassVar[str] = ""  # what the method chooses, in a few words (`recnas methods`)
    config: ClassVar[type[MethodConfig]] = MethodConfig
    # `--set` overrides that make a run of a few seconds on a few thousand rows: the method conformance suite
    # (tests/methods) runs every registered method with them, search -> retrain -> report and kills.
    smoke: ClassVar[tuple[str, ...]] = ()
    # Where `recnas auto` cannot fund every method that fits, it runs them in this order (lower first).
    auto_rank: ClassVar[int] = 100
    # Whether the search runs in a data-parallel job (torchrun): its whole search is the trainer's loop.
    data_parallel: ClassVar[bool] = False

    @classmethod
    def auto_settings(cls, schema: Schema, embedding_dim: int, max_ep: int) -> list[str] | None:
        """`--set` overrides under which `recnas auto` runs this method, or None where it does not fit the data.

        `schema` is the data's, `embedding_dim` the tuned full width, `max_ep` the floats the searched tables may
        store. The default: `recnas auto` does not run the method.
        """
        return None

    def __init__(self, cfg: ExperimentConfig) -> None:
        if not isinstance(cfg.search, self.config):
            raise ConfigError(f"method {self.name!r} needs a search section of its own config class")
        self.cfg = cfg
        self.s: Any = cfg.search

    # ---- what the runner calls ---------------------------------------------------------------
    def check(self) -> None:
        """Refuse settings this method cannot search with (before any work); a `ConfigError` naming the key."""
        if self.cfg.model.name.lower() not in MODELS:
            raise ConfigError(f"model.name: unknown model {self.cfg.model.name!r}; choose one of {sorted(MODELS)} (see "
                              "`recnas models`)")

    def search(self, splits: Splits, search_dir: Path, log: Log, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
        """Run the search (resuming from `search_dir/checkpoint.pt`) and return the arch.json content.

        It holds at least `sample` and `space_fingerprint`; the runner adds `method` and `model`.
        """
        raise NotImplementedError

    def frozen_parts(self, schema: Schema, arch: dict[str, Any]) -> dict[str, nn.Module]:
        """The retrain model's searched parts by constructor argument (`embedding`, `pairwise`).

        Each is frozen from `arch["sample"]` by its block's `freeze()`, with fresh weights.
        """
        raise NotImplementedError

    def retrain_model(self, schema: Schema, arch: dict[str, Any]) -> CTRModel:
        """The found architecture with fresh weights: the zoo model composed with the frozen parts."""
        parts = self.frozen_parts(schema, arch)
        return build_model(str(arch["model"]), schema, **{**model_kwargs(self.cfg), **parts})

    def baseline_config(self) -> ExperimentConfig:
        """The unsearched model's config (the full width the found EP is measured against)."""
        return self.cfg.model_copy(deep=True)

    def control_arch(self, splits: Splits, arch: dict[str, Any], control_dir: Path, log: Log) -> dict[str, Any] | None:
        """A random architecture at the searched one's EP (`lab.control`), or None when the method has none."""
        return None

    # ---- how the result reads ----------------------------------------------------------------
    def summary(self, arch: dict[str, Any]) -> list[str]:
        """Lines the CLI prints about the found architecture."""
        return []

    def warnings(self, arch: dict[str, Any]) -> list[str]:
        """One line per sign that a setting did not fit the data, each naming the setting to change.

        E.g. a search that removed or kept everything; printed after the search and shown atop the report.
        """
        return []

    def architecture(self, arch: dict[str, Any], schema: Schema) -> dict[str, Any]:
        """The report's `architecture` section: the found architecture in human terms."""
        return {}

    def field_memory(self, arch: dict[str, Any]) -> dict[str, float] | None:
        """Floats stored per id of every field the method sizes (its EP over its rows); None if it sizes none.

        What the planted-truth view compares across methods (`recnas.experiment.planted`).
        """
        return None

    def kept_pairs(self, arch: dict[str, Any]) -> list[list[str]] | None:
        """The field pairs the architecture keeps; None if the method selects no interactions."""
        return None

    def curve(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The report's search trace from `search/history.jsonl`."""
        return history

    def html(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[str]:
        """HTML fragments of the report's architecture section."""
        return []

    def plots(self, rep: dict[str, Any], arch: dict[str, Any]) -> list[tuple[str, Any]]:
        """(caption, matplotlib figure) of each plot of the report."""
        return []


METHODS: dict[str, type[SearchMethod]] = {}
BUILTIN_METHODS = ("recnas.methods.autofis", "recnas.methods.autodim", "recnas.methods.nis", "recnas.methods.esapn",
                   "recnas.methods.joint", "recnas.methods.autogroup", "recnas.methods.autoctr")


def load_builtin_methods() -> dict[str, type[SearchMethod]]:
    """Import (so register) the built-in methods; the registry."""
    import importlib

    for module in BUILTIN_METHODS:
        importlib.import_module(module)
    return METHODS


def register_method(name: str) -> Callable[[type[SearchMethod]], type[SearchMethod]]:
    """Class decorator adding a search method to the registry (its config class must name it in `method`)."""

    def wrap(cls: type[SearchMethod]) -> type[SearchMethod]:
        if name in METHODS:
            raise ValueError(f"search method {name!r} is registered twice")
        default = cls.config.model_fields["method"].default
        if default != name:
            raise ValueError(f"{cls.config.__name__}.method must default to {name!r}, got {default!r}")
        cls.name = name
        METHODS[name] = cls
        return cls

    return wrap


def method_names() -> list[str]:
    """Registered method names."""
    return sorted(load_builtin_methods())


def get_method(name: str) -> type[SearchMethod]:
    """The registered method class, with a clear error for an unknown name."""
    if name not in load_builtin_methods():
        raise ConfigError(f"unknown search method {name!r}; choose one of {method_names()} (see `recnas methods`)")
    return METHODS[name]


def method_of(cfg: ExperimentConfig) -> SearchMethod:
    """The method object of a config with a search section."""
    if cfg.search is None:
        raise ConfigError("the config has no search section; set search.method (see `recnas methods`)")
    method = get_method(cfg.search.method)(cfg)
    method.check()
    return method


# ---- helpers the methods share ----------------------------------------------------------------
def model_kwargs(cfg: ExperimentConfig) -> dict[str, Any]:
    """`build_model` keyword arguments of the configured model (sparse gradients from the trainer)."""
    return {"sparse": cfg.trainer.sparse, **cfg.model.build_kwargs()}


def weight_settings(cfg: ExperimentConfig) -> tuple[float, float]:
    """(lr, embedding L2) of the supernet's weights: `search.*`, else the trainer's."""
    s = cfg.search
    assert s is not None
    lr = s.lr if s.lr is not None else cfg.trainer.lr
    l2 = s.embedding_l2 if s.embedding_l2 is not None else cfg.trainer.embedding_l2
    return lr, l2


def search_batches(cfg: ExperimentConfig, splits: Splits) -> BatchIterator:
    """The search's train batches; full batches only (a small remainder would be the noisiest step)."""
    assert cfg.search is not None
    size = cfg.search.batch_size or splits.train.batch_size
    arrays = train_arrays(splits.ds, cfg.lab.max_train_rows)
    return BatchIterator(arrays, size, shuffle=True, seed=cfg.seed, drop_last=len(arrays["y"]) >= size,
                         shuffle_window=cfg.data.shuffle_window, shuffle_block=cfg.data.shuffle_block)


AUTO_MIN_ID_ROWS = 1000  # below this many categorical rows in all, an embedding-size search cannot save much


def categorical_rows(schema: Schema) -> int:
    """Rows of every categorical field's table: the tables an embedding-size search shrinks."""
    return sum(f.cardinality for f in schema.categorical)


def has_large_id_fields(schema: Schema) -> bool:
    """Whether the categorical fields hold enough rows for an embedding-size search to be worth its time."""
    return categorical_rows(schema) >= AUTO_MIN_ID_ROWS


def fits_full_tables(schema: Schema, embedding_dim: int, max_ep: int) -> bool:
    """Whether a search that keeps every table (AutoFIS, AutoGroup) fits: 3+ embedded fields, a full-tables budget."""
    from recnas.nn.embedding import embedded_field_names

    return len(embedded_field_names(schema, "auto")) >= 3 and max_ep >= categorical_rows(schema) * embedding_dim


def sizes_up_to(full: int, ladder: Sequence[int] = (2, 4, 8, 16, 32, 64)) -> list[int]:
    """Candidate sizes for a full width `full`: the ladder below it, then `full` itself (the largest)."""
    return [s for s in ladder if s < full] + [full]


def sizes_within(schema: Schema, full: int, max_ep: int) -> list[int] | None:
    """`sizes_up_to(full)` for a search whose smallest model must fit `max_ep`; None where it cannot.

    Size 1 comes first where every field at the smallest rung would be over `max_ep`; None where even every field
    at 1 is.
    The rows are a default `FieldEmbedding`'s (id tables and numerical encoders); the search's own check stays the
    final word where the tuned numerical encoder has other rows.
    """
    from recnas.nn.embedding import FieldEmbedding

    rows = sum(FieldEmbedding(schema, 1).field_rows().values())
    sizes = sizes_up_to(full)
    if rows * sizes[0] <= max_ep:
        return sizes
    return [1, *sizes] if rows <= max_ep and sizes[0] > 1 else None


def fingerprint(blocks: Sequence[Any]) -> str:
    """The space fingerprint of some searchable blocks."""
    from recnas.space.choice import Space

    return Space([c for b in blocks for c in b.choices()]).fingerprint()


def refuse_field_aware(cfg: ExperimentConfig, method: str) -> None:
    """Embedding searches give each field one vector: refuse field-aware and embedding-free models."""
    cls = MODELS.get(cfg.model.name.lower())
    if cls is not None and (cls.field_aware or not cls.has_embedding):
        what = "keeps several vectors per id (field-aware)" if cls.field_aware else "has no embeddings"
        raise ConfigError(f"{method} gives each field one embedding vector; {cfg.model.name!r} {what}; "
                          "search another model (e.g. deepfm, fm, widedeep, dcnv2)")


__all__ = ["BUILTIN_METHODS", "METHODS", "BudgetConfig", "FillBudgetConfig", "Log", "MethodConfig", "SearchMethod",
           "fingerprint", "get_method", "load_builtin_methods", "method_names", "method_of", "model_kwargs",
           "refuse_field_aware", "register_method", "search_batches", "weight_settings"]
