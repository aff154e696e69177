"""model.embedding_norm: a batch norm over the field embeddings, saved and loaded with the run, refused by LR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recnas.errors import ConfigError
from recnas.experiment.config import load_config
from recnas.experiment.run import load_run, run_train
from recnas.nn.embedding_norm import NormedEmbedding
from recnas.nn.models import build_model


@pytest.mark.parametrize("name", ["deepfm", "dcnv2", "fm", "widedeep"])
def test_the_norm_standardises_every_embedding_entry_in_training(prepared, name: str) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_model(name, prepared.schema, embedding_dim=4, mlp=[8], embedding_norm=True, embedding_norm_scale=1.0)
    assert isinstance(model.embedding, NormedEmbedding)
    batch = next(iter(prepared.batches("train", 512, shuffle=False)))
    model.train()
    out = model.embedding.flat(batch)
    assert out.shape == (len(batch), model.embedding.flat_dim)
    x = model.embedding.inner.flat(batch)  # by hand: (x - batch mean) / sqrt(batch var + eps), scale 1, shift 0
    expected = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + model.embedding.norm.eps)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    stacked = model.embedding(batch) if model.embedding.equal_dims else None
    if stacked is not None:  # the [B, F, D] view is the same normalised values
        torch.testing.assert_close(stacked.flatten(1), out, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(model(batch)).all()
    plain = build_model(name, prepared.schema, embedding_dim=4, mlp=[8])
    assert model.embedding_params() == plain.embedding_params()  # the norm's scale and shift are not EP


def test_a_normed_run_reloads_with_the_same_scores(synth_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(None, [f"data.path={synth_dir}", f"data.cache_dir={tmp_path / 'c'}", "model.mlp=[16]",
                             "model.embedding_norm=true", "trainer.epochs=1", "trainer.progress=false", "threads=1"])
    res = run_train(cfg, tmp_path / "run")
    _, schema, model = load_run(tmp_path / "run")
    from recnas.data.cache import prepare
    from recnas.data.source import open_dataset

    ds = prepare(open_dataset(synth_dir), tmp_path / "c")
    b = next(iter(ds.batches("test", 256, shuffle=False)))
    res.model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model(b).numpy(), res.model(b).numpy(), atol=1e-6)


def test_a_model_without_embeddings_refuses_the_norm(prepared) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="embedding_norm"):
        build_model("lr", prepared.schema, embedding_norm=True)


def test_the_norm_scale_sets_the_standardised_outputs_spread(prepared) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    batch = next(iter(prepared.batches("train", 512, shuffle=False)))
    spreads = {}
    for scale in (1.0, 0.15):
        model = build_model("deepfm", prepared.schema, embedding_dim=4, mlp=[8], embedding_norm=True,
                            embedding_norm_scale=scale)
        model.train()
        spreads[scale] = model.embedding.flat(batch).std(0, unbiased=False)
    varying = spreads[1.0] > 0.5  # entries with any spread in this batch
    torch.testing.assert_close(spreads[0.15][varying], 0.15 * spreads[1.0][varying], atol=1e-4, rtol=1e-3)


def test_the_norm_scale_comes_from_the_config(synth_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(None, [f"data.path={synth_dir}", f"data.cache_dir={tmp_path / 'c'}", "model.mlp=[16]",
                             "model.embedding_norm=true", "model.embedding_norm_scale=0.15", "trainer.epochs=1",
                             "trainer.progress=false", "threads=1", "lab.max_train_rows=2000"])
    run_train(cfg, tmp_path / "run")
    _, _, model = load_run(tmp_path / "run")
    weight = model.embedding.norm.weight.detach()  # the reloaded run's: one short epoch moves it only a little
    assert abs(float(weight.mean()) - 0.15) < 0.05
