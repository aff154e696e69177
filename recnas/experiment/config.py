"""Typed experiment configs (pydantic) loaded from YAML with `--set key=value` overrides.

An unknown key or a wrong type is a `ConfigError` naming the dotted key. No `eval`: models and
optimisers are registry names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recnas.errors import ConfigError, describe_validation_error
from recnas.nn.numerical import BUILTIN_KINDS, SCHEMA_KINDS
from recnas.train.config import TrainerConfig


class DataConfig(BaseModel):
    """Where the data is and how it is read."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="dataset folder (train/valid/test [+ schema.yaml])")
    cache_dir: str | None = Field(None, description="cache root (default $RECNAS_CACHE_DIR or ~/.cache/recnas)")
    on_bad_row: Literal["error", "skip"] = "error"
    max_train_rows: int | None = Field(None, ge=1, description="use only the first N train rows (smoke tests)")


NUMERICAL_ENCODER_NAMES = (*SCHEMA_KINDS, *BUILTIN_KINDS)


class AutoDisConfig(BaseModel):
    """AutoDis options (Guo et al., KDD'21), used by fields whose numerical encoder is `autodis`."""

    model_config = ConfigDict(extra="forbid")

    meta_embeddings: int = Field(20, ge=2, description="H, meta-embeddings per field")
    logits: Literal["skip", "linear"] = Field("skip", description="skip: h=LeakyReLU(wx+b), Wh+alpha*h; linear: wx+b")
    temperature: float = Field(1.0, gt=0, description="softmax temperature tau (initial value when learned)")
    learn_temperature: bool = False
    aggregation: Literal["weighted", "max", "topk"] = "weighted"
    top_k: int = Field(3, ge=1, description="meta-embeddings summed by the topk aggregation")
    skip_alpha: float = Field(0.1, description="alpha of the skip connection")
    input: Literal["auto", "zscore", "log"] = Field(
        "auto", description="discretiser input: z-score, z-score of log1p, or auto (log for skewed counts)")


class ModelConfig(BaseModel):
    """Which zoo model and its hyper-parameters (options a model does not use are ignored by it)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "deepfm"
    embedding_dim: int = Field(10, ge=1)
    mlp: list[int] = Field(default_factory=lambda: [400, 400, 400])
    dropout: float = Field(0.2, ge=0, lt=1)
    batch_norm: bool = False
    numerical_encoder: str | dict[str, str] = Field(
        "auto", description="one encoder for every numerical field, or {field: encoder}; auto: the schema's "
        "buckets where declared, else scalar")
    numerical_buckets: int = Field(20, ge=2, description="buckets of bucket_equal_width / bucket_equal_freq")
    autodis: AutoDisConfig = Field(default_factory=AutoDisConfig)
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

    @field_validator("numerical_encoder")
    @classmethod
    def _known_encoders(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        for name in [value] if isinstance(value, str) else value.values():
            if name not in NUMERICAL_ENCODER_NAMES:
                known = ", ".join(NUMERICAL_ENCODER_NAMES)
                raise ValueError(f"unknown numerical encoder {name!r}; choose one of {known}")
        return value

    def encoding_kwargs(self) -> dict[str, Any]:
        """How fields are embedded: `numerical`, `numerical_options` and `pooling` (for `FieldEmbedding`)."""
        options = {"n_buckets": self.numerical_buckets, **self.autodis.model_dump()}
        return {"numerical": self.numerical_encoder, "numerical_options": options, "pooling": self.pooling}

    def build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `build_model` (everything but the name)."""
        kw = self.model_dump(exclude={"name", "numerical_encoder", "numerical_buckets", "autodis"})
        return {**kw, **self.encoding_kwargs()}


class NISConfig(BaseModel):
    """NIS (Joglekar et al., KDD'20): the block grid, the controller and the reward."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["me", "se"] = Field("me", description="multi-size (me) or single-size (se) layouts")
    row_shares: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.7], min_length=1,
                                    description="frequency-rank shares of the row buckets, head first")
    col_blocks: int = Field(4, ge=1, description="column blocks per field (model.embedding_dim must divide by it)")
    min_blocks: int = Field(0, ge=0, description="me: column blocks every id keeps (not searched); 0 = the paper, "
                            "where a tail id can end with no columns")
    steps: int = Field(1200, ge=1, description="controller steps")
    warmup_steps: int = Field(100, ge=0, description="first steps that train only the weights")
    samples_per_step: int = Field(8, ge=1, description="layouts scored per step on one validation batch")
    train_batches: int = Field(1, ge=0, description="weight steps per controller step")
    full_share: float = Field(0.0, ge=0, le=1, description="share of the weight steps on the whole supernet "
                              "(every block stored) instead of a sampled layout, so no block goes untrained")
    valid_batch_size: int = Field(2048, ge=1, description="rows of the validation batch of each step")
    controller: Literal["logits", "lstm"] = "logits"
    controller_lr: float | None = Field(None, gt=0, description="default 0.05 (logits), 0.01 (lstm)")
    entropy_weight: float = Field(1e-3, ge=0)
    memory_lambda: float = Field(0.01, ge=0, description="lambda of R = R_Q - lambda * C_M")
    cost: Literal["field_mean", "total"] = Field(
        "field_mean", description="C_M: the stored share averaged over fields, or of all fields together")
    max_cost: float | None = Field(None, gt=0, le=1, description="hard budget on C_M")
    fill_budget: bool = Field(False, description="grow the controller's layout until no larger step fits under "
                              "max_cost (least log-probability lost per unit of C_M first)")
    quality: Literal["logloss", "auc"] = Field("logloss", description="R_Q: -logloss or AUC")


class ESAPNConfig(BaseModel):
    """ESAPN (Liu et al., SIGIR'20): candidate sizes, the decision rounds and the policy."""

    model_config = ConfigDict(extra="forbid")

    sizes: list[int] = Field(default_factory=lambda: [2, 4, 8, 16, 64, 128], min_length=2)
    buckets: int = Field(10, ge=1, description="frequency buckets per field (one decision each per round)")
    passes: int = Field(1, ge=1, description="passes over the training stream (the paper: one)")
    decision_every: int = Field(5, ge=1, description="training batches per decision round")
    warmup: float = Field(0.1, ge=0, lt=1, description="share of the first pass before decisions start")
    valid_rows: int = Field(4000, ge=1, description="rows of the fixed validation set the rewards are measured on")
    policy_lr: float = Field(0.03, gt=0)
    hidden: int = Field(32, ge=1)
    enlarge_init: float = Field(0.1, gt=0, lt=1, description="p(enlarge) of the untrained policy")
    entropy_weight: float = Field(1e-3, ge=0)
    memory_lambda: float = Field(0.01, ge=0, description="weight of the memory share a grow adds")


class SearchConfig(BaseModel):
    """The search stage (`recnas search`): which method and how it searches; unset values take method defaults.

    The retrain and the baseline use `model` and `trainer`; the search itself trains its supernet for
    `epochs` epochs (no early stopping, no lr cuts) and exports the final architecture.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["autofis", "autodim", "nis", "esapn"] = "autofis"
    epochs: int = Field(6, ge=1, description="search epochs")
    batch_size: int | None = Field(None, ge=1, description="search batch size (default trainer.batch_size)")
    lr: float | None = Field(None, gt=0, description="weight lr during the search (default trainer.lr)")
    embedding_l2: float | None = Field(None, ge=0, description="embedding L2 during the search (default trainer's)")
    mode: Literal["one_level", "bi_level"] | None = Field(
        None, description="one_level (same batch; AutoFIS default) or bi_level (validation batches; AutoDim default)")
    arch_optimizer: Literal["adam", "grda"] | None = Field(None, description="default: grda (AutoFIS), adam (AutoDim)")
    arch_lr: float | None = Field(None, gt=0, description="default: 1.0 (GRDA), 0.03 (Adam)")
    warmup_epochs: int | None = Field(None, ge=0, description="weight-only epochs first (default 0 AutoFIS, 2 AutoDim)")
    # AutoFIS
    grda_mu: float = Field(0.8, gt=0, lt=1)
    grda_c: float | None = Field(None, ge=0, description="GRDA c; default: derived from grda_threshold")
    grda_threshold: float = Field(
        2.0, ge=0, description="GRDA's soft threshold at the end of the search; c is derived from the planned steps")
    retrain_gate_init: float | None = Field(
        None, gt=0, description="initial gate of the kept pairs at retrain; default min(0.6, 1/sqrt(kept pairs))")
    # AutoDim
    candidates: list[int] = Field(default_factory=lambda: [2, 4, 8, 16, 32], min_length=1)
    common_dim: int | None = Field(None, ge=1, description="interaction dimension (default: the largest candidate)")
    lift_gamma: float = Field(0.15, gt=0, description="initial batch-norm scale of the candidate lifts (AutoDim) "
                              "and of the retrain's batch norm (NIS / ESAPN with retrain_norm)")
    memory_lambda: float = Field(0.1, ge=0, description="weight of the expected-size term (0 = the paper's form)")
    max_ep: int | None = Field(None, ge=1, description="hard budget on the searched embedding parameters")
    max_ep_fraction: float | None = Field(
        None, gt=0, le=1, description="the budget as a fraction of every field at the largest size (not with max_ep)")
    fill_budget: bool = Field(False, description="grow an export under the budget until it fills it")
    tau_start: float = Field(1.0, gt=0)
    tau_min: float = Field(0.01, gt=0)
    tau_end: float = Field(0.1, gt=0, description="temperature reached at the end of the search (tau_decay auto)")
    tau_decay: float | Literal["auto"] = Field(
        "auto", description="per-step decrease of tau; auto = reach tau_end after the planned architecture steps")
    # NIS and ESAPN
    nis: NISConfig = Field(default_factory=NISConfig)
    esapn: ESAPNConfig = Field(default_factory=ESAPNConfig)
    control: bool = Field(
        False, description="NIS / ESAPN: also retrain a random layout (NIS) or random policy (ESAPN) at the same EP")
    baseline: bool = Field(True, description="also train the unsearched model with the same settings")
    retrain_embedding_l2: float | None = Field(
        None, ge=0, description="embedding L2 of the retrain and the control (default trainer.embedding_l2, which "
        "the baseline keeps): narrow rows behind a learned projection can need less than the full model")
    retrain_norm: bool = Field(
        False, description="NIS / ESAPN: batch norm (scale starting at lift_gamma) on the retrain's and the control's "
        "projected id embeddings, as AutoDim's lift; makes the embedding L2 scale-free")


class ExperimentConfig(BaseModel):
    """A whole run: data, model, trainer, seed and threads (and, for `recnas search`, the search)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    seed: int = 2026
    threads: int = Field(2, ge=1)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)


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
