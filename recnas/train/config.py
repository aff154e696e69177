"""Typed trainer settings (pydantic): an unknown key or a wrong type is an error naming the key."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainerConfig(BaseModel):
    """How a model is trained; defaults are sized for a 2-core CPU."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(30, ge=1, description="maximum epochs (early stopping usually ends sooner)")
    batch_size: int = Field(4096, ge=2, description="training batch size (at least 2: batch norm needs two rows)")
    eval_batch_size: int = Field(16384, ge=1, description="batch size of validation and test scoring")
    optimizer: Literal["adam", "adagrad"] = Field("adam", description="optimiser of embeddings and dense weights")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    embedding_lr: float | None = Field(None, gt=0, description="learning rate of embedding tables (default: lr)")
    embedding_l2: float = Field(
        0.1, ge=0, description="penalty embedding_l2/2 * ||E||^2 on the id tables, every step (0 = off)"
    )
    weight_decay: float = Field(0.0, ge=0, description="L2 of dense weights (optimizer weight decay)")
    sparse: bool = Field(
        False, description="sparse embedding gradients (SparseAdam / Adagrad); embedding_l2 then acts lazily, "
        "on the rows each batch touches"
    )
    patience: int = Field(2, ge=1, description="stop after this many epochs in a row without improvement")
    reduce_lr_factor: float = Field(0.1, gt=0, le=1, description="multiply the lr by this on each bad epoch")
    min_epochs: int = Field(
        0, ge=0, description="epochs in which a valid score below the best neither cuts the lr nor counts toward "
        "early stopping: a dip on an early plateau is noise, not convergence (0 = every epoch counts)"
    )
    min_delta: float = Field(1e-6, ge=0, description="smallest gain of the monitored score that counts as better")
    monitor: Literal["auc", "logloss"] = Field("auc", description="valid score of early stopping and lr cuts")
    max_grad_norm: float | None = Field(None, gt=0, description="clip the dense and embedding gradients to this norm")
    restore_best: bool = Field(True, description="end with the best-validation weights (a search keeps the last)")
    checkpoint_every: int | None = Field(
        None, ge=1, description="with a checkpoint, also save it every this many steps inside an epoch, so a kill "
        "loses at most that many steps of a long epoch (None = at epoch ends only)"
    )
    progress: bool = Field(True, description="progress bar (shown only on a terminal)")
