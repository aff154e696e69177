"""Typed experiment configs (pydantic) loaded from YAML with `--set key=value` overrides.

An unknown key or a wrong type is a `ConfigError` naming the dotted key. No `eval`: models and
optimisers are registry names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from recnas.data.schema import is_folder_name
from recnas.errors import ConfigError, describe_validation_error
from recnas.experiment.distill import DistillConfig
from recnas.methods.base import MethodConfig
from recnas.nn.embedding_norm import INITIAL_SCALE
from recnas.nn.numerical import BUILTIN_KINDS, SCHEMA_KINDS
from recnas.train.config import TrainerConfig


class DataConfig(BaseModel):
    """Where the data is and how it is read."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="dataset folder (train/valid/test [+ schema.yaml])")
    cache_dir: str | None = Field(None, description="cache root (default $RECNAS_CACHE_DIR or ~/.cache/recnas)")
    on_bad_row: Literal["error", "skip"] = Field("error", description="a malformed row stops the run (error) or is "
                                                 "dropped and counted (skip)")
    label: str | None = Field(None, description="label column (default: schema.yaml's, else found by name)")
    positive: list[str] | None = Field(
        None, description="label value(s) meaning positive, for a text label (e.g. ['>50K']); the train file's other "
        "values are the negatives, and any other value is an error")
    hash_buckets: dict[str, int] = Field(
        {}, description="per categorical or multi-valued field: hash its tokens into this many buckets (the hashing "
        "trick) instead of a vocabulary; overrides schema.yaml's `hash_buckets` (e.g. {isbn: 32768})")
    min_count: dict[str, int] = Field(
        {}, description="per field with a vocabulary: keep the tokens seen at least this often in train, the rarer "
        "ones share the out-of-vocabulary row; overrides schema.yaml's `min_count` (e.g. {isbn: 3})")
    shuffle_window: int | None = Field(
        None, ge=1, description="rows the train shuffle permutes together: None permutes the whole split each epoch; "
        "N visits blocks of shuffle_block rows in a seeded order and permutes the rows within each N rows of blocks, "
        "so the order holds N indices, not one per row, and batches read runs of the cache, not scattered rows (for "
        "data larger than memory)")
    shuffle_block: int = Field(1024, ge=1, description="consecutive rows read as one unit by the block-wise shuffle "
                               "(with shuffle_window; at most shuffle_window)")

    @model_validator(mode="after")
    def _block_within_window(self) -> DataConfig:
        if self.shuffle_window is not None and self.shuffle_block > self.shuffle_window:
            raise ValueError(f"data.shuffle_block ({self.shuffle_block}) must be at most data.shuffle_window "
                             f"({self.shuffle_window})")
        return self

    @field_validator("positive", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        """`positive: yes` is one value; numbers are compared as the cell's text."""
        if value is None:
            return None
        return [str(v) for v in (value if isinstance(value, list) else [value])]


NUMERICAL_ENCODER_NAMES = (*SCHEMA_KINDS, *BUILTIN_KINDS)


class AutoDisConfig(BaseModel):
    """AutoDis options (Guo et al., KDD'21), used by fields whose numerical encoder is `autodis`."""

    model_config = ConfigDict(extra="forbid")

    meta_embeddings: int = Field(20, ge=2, description="H, meta-embeddings per field")
    logits: Literal["skip", "linear"] = Field("skip", description="skip: h=LeakyReLU(wx+b), Wh+alpha*h; linear: wx+b")
    temperature: float = Field(1.0, gt=0, description="softmax temperature tau (initial value when learned)")
    learn_temperature: bool = Field(False, description="learn tau")
    aggregation: Literal["weighted", "max", "topk"] = Field(
        "weighted", description="sum_h p_h m_h (weighted), the most probable (max) or the top_k meta-embeddings")
    top_k: int = Field(3, ge=1, description="meta-embeddings summed by the topk aggregation")
    skip_alpha: float = Field(0.1, description="alpha of the skip connection")
    input: Literal["auto", "zscore", "log"] = Field(
        "auto", description="discretiser input: z-score, z-score of log1p, or auto (log for skewed counts)")


MODEL_OPTIONS = ("cross_layers", "structure", "cin_layers", "cin_activation", "attention_layers", "heads", "head_dim",
                 "residual", "attention_dim", "product", "order_tables", "raw_embeddings")


class ModelConfig(BaseModel):
    """Which zoo model and its hyper-parameters; a model-specific option the model does not read is an error."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("deepfm", description="zoo model (`recnas models`)")
    embedding_dim: int = Field(10, ge=1, description="embedding width of every field")
    mlp: list[int] = Field(default_factory=lambda: [400, 400, 400], description="hidden widths of the deep part")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout of the deep part")
    batch_norm: bool = Field(False, description="batch norm in the deep part")
    embedding_norm: bool = Field(False, description="batch norm over the field embeddings before the interactions "
                                 "(it lifted frappe_full's DeepFM by 0.003-0.005 test AUC; `recnas tune` tries it)")
    embedding_norm_scale: float = Field(
        INITIAL_SCALE, gt=0, description="initial output scale of model.embedding_norm's batch norm (its affine "
        "weight); 0.15 beat 1 on valid in 11 of 12 runs of DeepFM and DCNv2 on frappe_full and ml100k, 3 seeds "
        "(bench/log/2026-12-06-issue19-defaults.md)")
    numerical_encoder: str | dict[str, str] = Field(
        "auto", description="one encoder for every numerical field, or {field: encoder}; auto, per field: the "
        "schema's buckets where declared, levels for an integer field of <= 20 values, log_square for a skewed "
        "non-negative count, else scalar")
    numerical_buckets: int = Field(20, ge=2, description="buckets of bucket_equal_width / bucket_equal_freq")
    autodis: AutoDisConfig = Field(default_factory=AutoDisConfig)
    pooling: Literal["mean", "sum"] = Field("mean", description="pooling of multi-valued fields")
    cross_layers: int = Field(3, ge=1, description="DCN / DCNv2: cross layers")
    structure: Literal["parallel", "stacked"] = Field("parallel", description="DCNv2: cross and deep side by side "
                                                      "or stacked")
    cin_layers: list[int] = Field(default_factory=lambda: [100, 100], description="xDeepFM: CIN layer widths")
    cin_activation: Literal["identity", "relu"] = Field("identity", description="xDeepFM: CIN activation")
    attention_layers: int = Field(3, ge=1, description="AutoInt: self-attention layers")
    heads: int = Field(2, ge=1, description="AutoInt: attention heads")
    head_dim: int = Field(16, ge=1, description="AutoInt: width per head")
    residual: bool = Field(True, description="AutoInt: residual connections")
    attention_dim: int = Field(16, ge=1, description="AFM: attention network width")
    product: Literal["inner", "outer"] = Field("inner", description="IPNN: inner (IPNN) or outer (OPNN) products")
    order_tables: bool = Field(False, description="AutoGroup: an embedding table per interaction order (the public "
                               "implementation's; P times the tables' EP) instead of one for every order")
    raw_embeddings: bool = Field(True, description="AutoGroup: the MLP also reads the field embeddings themselves, "
                                 "as DeepFM's deep part does, so no field's signal hangs on the sets it was kept in; "
                                 "false is the paper's MLP (set interactions only). Chosen on frappe_full and ml100k "
                                 "valid, searched sets: 0.9818 / 0.6911 with it, 0.9804 / 0.6278 without")

    @field_validator("mlp", "cin_layers")
    @classmethod
    def _positive_widths(cls, widths: list[int]) -> list[int]:
        """A layer of width 0 or less would be silently empty."""
        bad = [w for w in widths if w < 1]
        if bad:
            raise ValueError(f"layer widths must be >= 1, got {widths}")
        return widths

    @field_validator("numerical_encoder")
    @classmethod
    def _known_encoders(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        for name in [value] if isinstance(value, str) else value.values():
            if name not in NUMERICAL_ENCODER_NAMES:
                known = ", ".join(NUMERICAL_ENCODER_NAMES)
                raise ValueError(f"unknown numerical encoder {name!r}; choose one of {known}")
        return value

    @model_validator(mode="after")
    def _options_of_the_model(self) -> ModelConfig:
        """An option the chosen model does not read (set to other than its default) is an error naming it."""
        from recnas.nn.models import MODELS, model_options

        cls = MODELS.get(self.name.lower())
        if cls is None:
            return self
        taken = model_options(cls)
        for key in MODEL_OPTIONS:
            if key not in taken and getattr(self, key) != ModelConfig.model_fields[key].get_default(
                    call_default_factory=True):
                options = sorted(taken - {"pairwise"}) or "none"
                raise ValueError(f"model.{key} is not an option of model {self.name!r} (its options: {options}); "
                                 "remove it or choose a model that reads it")
        return self

    def encoding_kwargs(self) -> dict[str, Any]:
        """How fields are embedded: `numerical`, `numerical_options` and `pooling` (for `FieldEmbedding`)."""
        options = {"n_buckets": self.numerical_buckets, **self.autodis.model_dump()}
        return {"numerical": self.numerical_encoder, "numerical_options": options, "pooling": self.pooling}

    def build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `build_model` (everything but the name)."""
        kw = self.model_dump(exclude={"name", "numerical_encoder", "numerical_buckets", "autodis"})
        return {**kw, **self.encoding_kwargs()}


class RetrainConfig(BaseModel):
    """How the found architecture is retrained (and, where a method has one, its random control).

    Unset values take `trainer.*`; the baseline always keeps `trainer.*`.
    """

    model_config = ConfigDict(extra="forbid")

    embedding_l2: float | None = Field(
        None, ge=0, description="embedding L2 of the retrain and the control (default trainer.embedding_l2): narrow "
        "rows behind a learned projection can need less than the full model")


class LabConfig(BaseModel):
    """Benchmark instruments: ablations and controls the benchmarks use, not settings an everyday search needs."""

    model_config = ConfigDict(extra="forbid")

    control: bool = Field(False, description="also retrain the method's random control at the searched EP (methods "
                          "that define one: NIS a random layout, ESAPN a random policy)")
    retrain_norm: float | None = Field(
        None, gt=0, description="mixed-width retrains (NIS, ESAPN): a batch norm on the projected id embeddings whose "
        "scale starts at this value (0.15 = AutoDim's lift), so the embedding L2 cannot shrink narrow rows' signal "
        "away; unset = no norm")
    max_train_rows: int | None = Field(None, ge=1, description="use only the first N train rows (smoke tests)")


class ExperimentConfig(BaseModel):
    """A whole run: data, model, trainer, seed and threads (and, for `recnas search`, the search and its retrain).

    `search` is the config class of the method it names (`search.method`), from the method registry
    (`recnas methods`): each method's keys live in its own file.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="run name (default folder runs/<name>)")
    seed: int = Field(2026, ge=0, description="seed of every generator: same seed and config, same metrics")
    threads: int = Field(2, ge=1, description="torch threads")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    search: SerializeAsAny[MethodConfig] | None = Field(
        None, description="the search (`recnas search`): `method` picks the registered method and its keys")
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    lab: LabConfig = Field(default_factory=LabConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str | None) -> str | None:
        """A run name is one folder under runs/: no path separator, no leading dot."""
        if name is not None and not is_folder_name(name):
            raise ValueError(f"the run name {name!r} would name a folder outside runs/; use letters, digits, '-', "
                             "'_' and '.' (or pass --out)")
        return name

    @field_validator("search", mode="before")
    @classmethod
    def _method_config(cls, raw: Any) -> Any:
        """Validate the search section with the config class of the method it names."""
        if raw is None or isinstance(raw, MethodConfig):
            return raw
        if not isinstance(raw, dict):
            raise ValueError("search must be a mapping with a `method` key")
        from recnas.methods import get_method, method_names

        name = raw.get("method")
        if name is None:
            raise ValueError(f"search.method is not set; choose one of {method_names()}")
        return get_method(str(name)).config.model_validate(raw)


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
