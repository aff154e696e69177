"""OneShotStrategy: warm-up, temperature schedule, bi-level steps on validation data, optimiser routing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recnas.data.batches import BatchIterator
from recnas.errors import ConfigError
from recnas.nn.models import build_model
from recnas.search.oneshot import OneShotStrategy, arch_parameters, temperature
from recnas.space.autodim import AutoDimEmbedding
from recnas.train import Trainer, TrainerConfig

BATCH = 512


def autodim_model(schema, seed: int = 0) -> torch.nn.Module:  # noqa: ANN001
    torch.manual_seed(seed)
    model = build_model("fm", schema, embedding_dim=8)
    model.embedding = AutoDimEmbedding(schema, (2, 4, 8), 8)
    return model


def fit(prepared, model, strategy: OneShotStrategy, epochs: int = 2) -> None:  # noqa: ANN001
    cfg = TrainerConfig(epochs=epochs, batch_size=BATCH, lr=3e-3, embedding_l2=0.0, patience=epochs,
                        reduce_lr_factor=1.0, restore_best=False, progress=False)
    Trainer(cfg).fit(model, prepared.batches("train", BATCH, seed=0), prepared.batches("valid", 4096),
                     hooks=[strategy])


def test_temperature_schedule_is_linear_then_floored() -> None:
    assert temperature(0) == 1.0
    assert temperature(1000, 1.0, 5e-5, 0.01) == pytest.approx(0.95)
    assert temperature(10**6, 1.0, 5e-5, 0.01) == 0.01


def test_no_architecture_step_during_warmup_then_steps_with_annealing(prepared) -> None:  # noqa: ANN001
    model = autodim_model(prepared.schema)
    start = model.embedding.logits.detach().clone()
    strategy = OneShotStrategy("one_level", "adam", lr=0.05, warmup_epochs=1, tau_decay=1e-3)
    fit(prepared, model, strategy, epochs=1)
    assert strategy.arch_steps == 0 and torch.equal(model.embedding.logits.detach(), start)
    assert model.embedding.logits.grad is None  # cleared, not accumulated for later
    model2 = autodim_model(prepared.schema)
    strategy2 = OneShotStrategy("one_level", "adam", lr=0.05, warmup_epochs=1, tau_decay=1e-3)
    fit(prepared, model2, strategy2, epochs=2)
    steps = len(prepared.batches("train", BATCH))
    assert strategy2.arch_steps == steps
    assert not torch.equal(model2.embedding.logits.detach(), start)
    assert model2.embedding.tau == pytest.approx(1.0 - 1e-3 * steps)
    assert [h["arch_steps"] for h in strategy2.history] == [0, steps]


def test_weight_optimiser_never_touches_architecture_parameters(prepared) -> None:  # noqa: ANN001
    model = autodim_model(prepared.schema)
    strategy = OneShotStrategy("one_level", "adam", lr=0.05)
    cfg = TrainerConfig(epochs=1, batch_size=BATCH, embedding_l2=0.0, progress=False)
    trainer = Trainer(cfg)
    trainer.fit(model, prepared.batches("train", BATCH, seed=0), None, hooks=[strategy])
    weight_params = {id(p) for opt in trainer.optimizers for g in opt.param_groups for p in g["params"]}
    arch = {id(p) for p in arch_parameters(model)}
    assert arch == {id(model.embedding.logits)}
    assert not weight_params & arch
    assert {id(p) for g in strategy.optimizer.param_groups for p in g["params"]} == arch
    assert len(weight_params) == sum(1 for _ in model.parameters()) - 1


def _with_labels(arrays: dict[str, np.ndarray], y: np.ndarray) -> dict[str, np.ndarray]:
    return {**arrays, "y": y.astype(arrays["y"].dtype)}


def test_bi_level_architecture_follows_the_validation_batches(prepared) -> None:  # noqa: ANN001
    """Same training data, different validation labels -> a different architecture; same -> identical."""
    valid = prepared.splits["valid"]
    flipped = _with_labels(valid, 1 - valid["y"])

    def run(arrays: dict[str, np.ndarray]) -> torch.Tensor:
        model = autodim_model(prepared.schema)
        torch.manual_seed(7)
        strategy = OneShotStrategy("bi_level", "adam", lr=0.05, valid=BatchIterator(arrays, BATCH, True, 0))
        fit(prepared, model, strategy, epochs=2)
        assert strategy.valid_pass >= 1  # more steps than validation batches: the validation set was cycled
        return model.embedding.logits.detach().clone()

    a, b, c = run(valid), run(valid), run(flipped)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="valid"):
        OneShotStrategy("bi_level", "adam")
    with pytest.raises(ConfigError, match="mode"):
        OneShotStrategy("two_level")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="optimizer"):
        OneShotStrategy("one_level", "sgd")  # type: ignore[arg-type]


@pytest.mark.parametrize("patience", [None, 2])
def test_patience_ends_the_search_once_the_valid_score_stops_improving(patience: int | None, synth_dir,  # noqa: ANN001
                                                                      tmp_path) -> None:  # noqa: ANN001
    """Flipped validation labels: the better the supernet learns, the lower its valid AUC, so with patience 2 the
    search ends two epochs after the warm-up (whose epochs never count against it); without, it runs every epoch."""
    from recnas.experiment.config import load_config
    from recnas.experiment.run import load_splits
    from recnas.methods import method_of

    sets = ["search.method=autofis", "threads=1", "model.mlp=[16]", "trainer.batch_size=256", "trainer.lr=0.01",
            "trainer.progress=false", "search.epochs=6", "search.warmup_epochs=1", f"data.path={synth_dir}",
            f"data.cache_dir={tmp_path / 'cache'}"]
    cfg = load_config(None, [*sets, *([f"search.patience={patience}"] if patience else [])])
    splits = load_splits(cfg)
    valid = dict(splits.ds.splits["valid"])
    valid["y"] = 1 - valid["y"]
    splits.ds.splits["valid"] = valid
    splits.valid = splits.ds.batches("valid", 4096)
    arch = method_of(cfg).search(splits, tmp_path / "search", log=lambda _m: None)
    history = (tmp_path / "search" / "history.jsonl").read_text().splitlines()
    assert arch["epochs_run"] == len(history) == (1 + 2 if patience else 6)
