"""Conformance suite: every registered zoo model, the same checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from recnas.data.batches import BatchIterator, FieldBatch
from recnas.errors import ConfigError, SchemaError
from recnas.nn.models import MODELS, ZOO, build_model
from recnas.train.metrics import binary_metrics

SMALL = {"embedding_dim": 8, "mlp": [32, 32], "dropout": 0.0, "cin_layers": [16, 16], "attention_layers": 2,
         "head_dim": 8}


def first_rows(prepared, split: str, n: int) -> FieldBatch:  # noqa: ANN001
    return FieldBatch.from_arrays({k: np.asarray(v[:n]) for k, v in prepared.splits[split].items()})


def test_zoo_has_the_thirteen_models_and_the_autoint_plus_variant() -> None:
    expected = {"lr", "fm", "fwfm", "ffm", "afm", "nfm", "widedeep", "deepfm", "ipnn", "dcn", "dcnv2", "xdeepfm",
                "autoint", "autoint+"}
    assert expected <= set(ZOO)
    for name in ZOO:
        assert MODELS[name].paper, f"{name} must cite its paper"
    # every registered model is in ZOO, so the conformance suite below covers it
    assert {cls.model_name for cls in MODELS.values()} == set(ZOO)


def test_unknown_model_is_a_clear_error(prepared) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="unknown model 'deepfmm'"):
        build_model("deepfmm", prepared.schema)


@pytest.mark.parametrize("name", ZOO)
def test_output_shape_for_batch_sizes_0_1_n(name: str, prepared) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_model(name, prepared.schema, **SMALL).eval()
    for n in (0, 1, 37):
        out = model(first_rows(prepared, "valid", n))
        assert out.shape == (n,)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ZOO)
def test_a_step_changes_the_weights(name: str, prepared) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_model(name, prepared.schema, **SMALL)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = first_rows(prepared, "train", 128)
    batch.num[0] = float("nan")  # a missing value in every numerical field: its missing vector gets a gradient
    F.binary_cross_entropy_with_logits(model(batch), batch.y).backward()
    no_grad = [k for k, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    opt.step()
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert any("embedding" in k or "first_order" in k for k in changed)
    assert len(changed) >= len(before) // 2


@pytest.mark.parametrize("name", ZOO)
def test_training_beats_a_constant_predictor(name: str, prepared_large) -> None:  # noqa: ANN001
    prepared = prepared_large
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = build_model(name, prepared.schema, **SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    it = BatchIterator(prepared.splits["train"], batch_size=256, seed=0)
    steps = 0
    while steps < 200:
        for batch in it:
            opt.zero_grad()
            F.binary_cross_entropy_with_logits(model(batch), batch.y).backward()
            opt.step()
            steps += 1
            if steps >= 200:
                break
    model.eval()
    test = first_rows(prepared, "test", 10_000)
    with torch.no_grad():
        auc = binary_metrics(test.y.numpy(), model(test).numpy())["auc"]
    assert auc > 0.6, f"{name}: test AUC {auc:.3f} is no better than a constant (0.5)"


@pytest.mark.parametrize("name", ZOO)
def test_save_load_same_predictions(name: str, prepared, tmp_path: Path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_model(name, prepared.schema, **SMALL).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"))
    torch.manual_seed(1)
    other = build_model(name, prepared.schema, **SMALL).eval()
    other.load_state_dict(load_file(str(tmp_path / "m.safetensors")))
    batch = first_rows(prepared, "test", 50)
    with torch.no_grad():
        assert torch.equal(model(batch), other(batch))


@pytest.mark.parametrize("name", ZOO)
def test_mixed_dimensions_refused_or_supported(name: str, prepared) -> None:  # noqa: ANN001
    fields = [f.name for f in prepared.schema.fields]
    dims = {f: (4 if i % 2 else 8) for i, f in enumerate(fields)}
    kw = {**SMALL, "embedding_dim": dims}
    cls = MODELS[name]
    if name == "lr":
        return  # LR has no latent embedding to size
    if cls.needs_equal_dims:
        with pytest.raises(SchemaError, match="needs equal embedding dimensions"):
            build_model(name, prepared.schema, **kw)
    else:
        model = build_model(name, prepared.schema, **kw).eval()
        assert model(first_rows(prepared, "valid", 5)).shape == (5,)
        assert model.embedding.flat_dim == sum(dims.values())
