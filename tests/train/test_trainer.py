from __future__ import annotations

import numpy as np
import pytest
import torch

from recnas.data.batches import BatchIterator
from recnas.errors import DataError, TrainingError
from recnas.nn.models import build_model
from recnas.train import Hook, Trainer, TrainerConfig, evaluate
from recnas.train.optim import build_optimizers, split_parameters

SMALL = {"embedding_dim": 8, "mlp": [32], "dropout": 0.0}


class Recorder(Hook):
    def __init__(self) -> None:
        self.steps = 0
        self.epochs: list[dict] = []

    def after_step(self, trainer, batch, step) -> None:  # noqa: ANN001
        self.steps = step

    def on_epoch_end(self, trainer, epoch, metrics) -> None:  # noqa: ANN001
        self.epochs.append(dict(metrics))


def test_fit_improves_and_reports(prepared_large) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_model("deepfm", prepared_large.schema, **SMALL)
    valid = prepared_large.batches("valid", 4096, shuffle=False)
    before = evaluate(model, valid)["auc"]
    rec = Recorder()
    result = Trainer(TrainerConfig(epochs=3, batch_size=512, lr=3e-3, progress=False)).fit(
        model, prepared_large.batches("train", 512, seed=0), valid, hooks=[rec])
    assert result.epochs == 3 and len(result.history) == 3 == len(rec.epochs)
    assert rec.steps == 3 * len(prepared_large.batches("train", 512))
    assert result.best_valid["auc"] > before + 0.05
    assert result.train_samples == 3 * prepared_large.rows("train")
    assert result.train_samples_per_s > 0 and result.eval_seconds > 0


def test_early_stopping_reduces_lr_and_restores_the_best_weights(prepared_large) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_model("fm", prepared_large.schema, embedding_dim=8)
    valid = prepared_large.batches("valid", 4096, shuffle=False)
    cfg = TrainerConfig(epochs=40, batch_size=256, lr=0.05, patience=2, reduce_lr_factor=0.5, progress=False)
    trainer = Trainer(cfg)
    result = trainer.fit(model, prepared_large.batches("train", 256, seed=0), valid)
    aucs = [h["valid_auc"] for h in result.history]
    assert result.epochs < 40, "a large lr overfits quickly; early stopping must end the run"
    assert result.best_epoch == int(np.argmax(aucs)) + 1
    # it stopped exactly `patience` epochs after the best one, none of which beat it
    assert len(aucs) == result.best_epoch + cfg.patience
    assert all(a <= aucs[result.best_epoch - 1] + cfg.min_delta for a in aucs[result.best_epoch:])
    lrs = [h["lr"] for h in result.history]
    assert lrs[-1] < lrs[0]  # reduced on plateau
    assert evaluate(model, valid)["auc"] == pytest.approx(max(aucs), abs=1e-9)  # best weights restored


def test_min_epochs_lets_early_dips_pass_and_then_stops_as_before(prepared_large) -> None:  # noqa: ANN001
    def fit(min_epochs: int) -> tuple[list[float], list[float], object, object]:
        torch.manual_seed(0)
        model = build_model("fm", prepared_large.schema, embedding_dim=8)
        cfg = TrainerConfig(epochs=40, batch_size=256, lr=0.05, patience=2, reduce_lr_factor=0.5,
                            min_epochs=min_epochs, progress=False)
        res = Trainer(cfg).fit(model, prepared_large.batches("train", 256, seed=0), valid)
        return [h["valid_auc"] for h in res.history], [h["lr"] for h in res.history], res, model

    valid = prepared_large.batches("valid", 4096, shuffle=False)
    plain_aucs, plain_lrs, plain, _ = fit(0)
    warm = plain.epochs + 2  # past the epoch where the plain run stopped
    aucs, lrs, res, model = fit(warm)
    assert res.epochs > warm > plain.epochs, "no stop inside the warm-up, then the usual rule stops it"
    assert lrs[:warm] == [0.05] * warm, "no lr cut inside the warm-up"
    bad = TrainerConfig().min_delta  # the trainer's rule: an epoch is bad unless it beats the best by min_delta
    assert any(a <= max(aucs[:i]) + bad for i, a in enumerate(aucs[:warm]) if i), "the warm-up held a bad epoch"
    assert plain_lrs[-1] < 0.05 and lrs[-1] < 0.05, "after the warm-up bad epochs cut the lr again"
    # bad epochs count from the warm-up's end on, so it stops `patience` of them after that or after its best
    assert res.epochs == max(res.best_epoch, warm) + 2 < 40
    assert res.best_epoch == int(np.argmax(aucs)) + 1
    assert evaluate(model, valid)["auc"] == pytest.approx(max(aucs), abs=1e-9)  # the best weights, as without it
    first_cut = next(i for i, lr in enumerate(plain_lrs) if lr < 0.05)  # the first epoch at a lower lr
    assert first_cut < warm and aucs[:first_cut] == plain_aucs[:first_cut]  # the same run until the plain one cut


def test_same_seed_same_metrics(prepared) -> None:  # noqa: ANN001
    def run() -> list:
        torch.manual_seed(7)
        model = build_model("deepfm", prepared.schema, **{**SMALL, "dropout": 0.2})
        res = Trainer(TrainerConfig(epochs=2, batch_size=256, progress=False)).fit(
            model, BatchIterator(prepared.splits["train"], 256, seed=7), prepared.batches("valid", 4096))
        return [h["valid_auc"] for h in res.history]

    assert run() == run()


def test_parameter_groups_and_sparse_optimizers(prepared) -> None:  # noqa: ANN001
    model = build_model("deepfm", prepared.schema, sparse=True, **SMALL)
    emb, dense = split_parameters(model)
    assert {id(p) for p in emb} == {id(p) for p in model.embedding_tables()}
    assert not {id(p) for p in emb} & {id(p) for p in dense}
    opts = build_optimizers(model, "adam", 1e-3, sparse=True)
    assert isinstance(opts[0], torch.optim.SparseAdam) and isinstance(opts[1], torch.optim.Adam)
    res = Trainer(TrainerConfig(epochs=1, batch_size=256, sparse=True, embedding_l2=0.0, progress=False)).fit(
        model, prepared.batches("train", 256), None)
    assert res.epochs == 1



def test_lazy_l2_on_the_sparse_path_shrinks_only_touched_rows(prepared) -> None:  # noqa: ANN001
    def train(l2: float) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
        torch.manual_seed(0)
        model = build_model("fm", prepared.schema, embedding_dim=8, sparse=True)
        before = model.embedding.table.weight.detach().clone()
        Trainer(TrainerConfig(epochs=2, batch_size=256, lr=1e-2, sparse=True, embedding_l2=l2, progress=False)).fit(
            model, prepared.batches("train", 256, seed=0))
        return before, model.embedding.table.weight.detach(), model

    before, plain, _ = train(0.0)
    _, lazy, model = train(1.0)
    pad_rows = model.embedding.cat_offsets  # id 0 of every categorical field is never looked up
    assert torch.equal(lazy[pad_rows], before[pad_rows])  # untouched rows are not decayed (gradients stay sparse)
    assert lazy.pow(2).sum() < 0.5 * plain.pow(2).sum()  # touched rows are shrunk by the penalty
    assert not model.embedding.track_rows and not model.embedding._touched


def test_embedding_l2_shrinks_the_tables(prepared) -> None:  # noqa: ANN001
    def norm(l2: float) -> float:
        torch.manual_seed(0)
        model = build_model("fm", prepared.schema, embedding_dim=8)
        Trainer(TrainerConfig(epochs=2, batch_size=256, lr=1e-2, embedding_l2=l2, progress=False)).fit(
            model, prepared.batches("train", 256, seed=0), None)
        return float(sum(w.detach().pow(2).sum() for w in model.embedding_tables()))

    assert norm(1.0) < 0.5 * norm(0.0)


def test_one_class_validation_split_is_refused(prepared) -> None:  # noqa: ANN001
    arrays = {k: np.array(v[:100]) for k, v in prepared.splits["valid"].items()}
    arrays["y"][:] = 0
    model = build_model("fm", prepared.schema, embedding_dim=4)
    with pytest.raises(DataError, match="single class"):
        Trainer(TrainerConfig(epochs=1, progress=False)).fit(
            model, prepared.batches("train", 256), BatchIterator(arrays, 64, shuffle=False))


def test_divergence_is_a_clear_error(prepared) -> None:  # noqa: ANN001
    model = build_model("fm", prepared.schema, embedding_dim=4)
    with torch.no_grad():
        model.embedding.table.weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match="diverged in epoch 1"):
        Trainer(TrainerConfig(epochs=1, embedding_l2=0.0, progress=False)).fit(model, prepared.batches("train", 256))


def test_unknown_trainer_key_is_rejected() -> None:
    with pytest.raises(Exception, match="extra"):
        TrainerConfig(epoch=3)  # type: ignore[call-arg]


def test_a_one_row_remainder_batch_is_skipped_so_batch_norm_trains(prepared) -> None:  # noqa: ANN001
    arrays = {k: v[:1025] for k, v in prepared.splits["train"].items()}  # 1,025 = 2 x 512 + 1
    model = build_model("deepfm", prepared.schema, embedding_dim=4, mlp=[8], batch_norm=True)
    result = Trainer(TrainerConfig(epochs=1, batch_size=512, progress=False)).fit(
        model, BatchIterator(arrays, 512, shuffle=True, seed=0))
    assert result.train_samples == 1024


def test_gradient_clipping_leaves_excluded_parameters_out(prepared) -> None:  # noqa: ANN001
    """Architecture parameters (excluded by a hook) neither count in the clip norm nor get clipped."""
    model = build_model("fm", prepared.schema, embedding_dim=4)
    seen: dict[str, float] = {}

    class Exclude(Hook):
        def exclude_parameters(self, m):  # noqa: ANN001, ANN202
            return [m.first_order.bias]

        def after_step(self, trainer, batch, step) -> None:  # noqa: ANN001
            seen["bias_grad"] = float(model.first_order.bias.grad.abs().max())

    cfg = TrainerConfig(epochs=1, batch_size=512, max_grad_norm=1e-6, embedding_l2=0.0, progress=False)
    Trainer(cfg).fit(model, prepared.batches("train", 512, seed=0), hooks=[Exclude()])
    assert seen["bias_grad"] > 1e-4  # left as computed, not clipped to the tiny norm


@pytest.mark.parametrize("kill_at", [3, 7, 18])
def test_a_fit_killed_inside_an_epoch_resumes_from_its_step_checkpoint_to_the_same_end(
        prepared, tmp_path, kill_at: int) -> None:  # noqa: ANN001
    from tests.killing import KillAt, Killed

    cfg = TrainerConfig(epochs=3, batch_size=256, progress=False, checkpoint_every=2, patience=3)

    def fit(checkpoint=None, hooks=()):  # noqa: ANN001, ANN202
        torch.manual_seed(3)
        model = build_model("deepfm", prepared.schema, **{**SMALL, "dropout": 0.3})  # dropout: the RNG must resume
        res = Trainer(cfg).fit(model, BatchIterator(prepared.splits["train"], 256, seed=3),
                               prepared.batches("valid", 4096), hooks=hooks, checkpoint=checkpoint)
        return model, res

    whole, res = fit()
    per_epoch = len(BatchIterator(prepared.splits["train"], 256))
    assert 2 * per_epoch > 18 > per_epoch > 7, "the kill points must fall inside the first and second epochs"
    ckpt = tmp_path / "fit.pt"
    with pytest.raises(Killed):
        fit(ckpt, [KillAt(kill_at)])
    blob = torch.load(ckpt, weights_only=True)
    assert "position" in blob and blob["step"] == kill_at - 1 - (kill_at - 1) % 2  # the last even step, mid-epoch
    resumed, res2 = fit(ckpt)
    assert [h["valid_auc"] for h in res2.history] == [h["valid_auc"] for h in res.history]
    assert [h["train_loss"] for h in res2.history] == [h["train_loss"] for h in res.history]
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert res2.train_samples == res.train_samples
