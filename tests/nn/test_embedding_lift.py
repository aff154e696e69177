"""model.embedding_lift: narrow id tables read through per-field linear maps to a wider vector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recnas.errors import ConfigError
from recnas.experiment.config import load_config
from recnas.experiment.run import load_run, run_train
from recnas.nn.embedding import FieldEmbedding
from recnas.nn.embedding_lift import LiftedEmbedding
from recnas.nn.models import build_model


@pytest.mark.parametrize("name", ["deepfm", "dcnv2", "fm", "widedeep"])
def test_each_field_is_its_own_linear_map_of_its_narrow_row(prepared, name: str) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = build_model(name, prepared.schema, embedding_dim=3, mlp=[8], embedding_lift=7)
    lifted = model.embedding
    assert isinstance(lifted, LiftedEmbedding) and lifted.dim == 7 and lifted.flat_dim == 7 * lifted.num_fields
    batch = next(iter(prepared.batches("train", 64, shuffle=False)))
    rows = lifted.inner(batch)  # [B, F, 3]
    out = lifted(batch)
    for f in range(lifted.num_fields):  # by hand, field by field
        expected = rows[:, f] @ lifted.lift.weight[f] + lifted.lift.bias[f]
        torch.testing.assert_close(out[:, f], expected, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(model(batch)).all()
    plain = build_model(name, prepared.schema, embedding_dim=3, mlp=[8])
    assert model.embedding_params() == plain.embedding_params()  # the maps are dense weights, not EP
    assert model.embedding_tables()[0] is lifted.inner.table.weight  # the L2 and sparse optimisers still find the table


def test_the_norm_wraps_the_lifted_vectors(prepared) -> None:  # noqa: ANN001
    model = build_model("deepfm", prepared.schema, embedding_dim=3, mlp=[8], embedding_lift=7, embedding_norm=True)
    assert isinstance(model.embedding.inner, LiftedEmbedding)
    assert model.embedding.norm.num_features == 7 * model.embedding.num_fields


def test_models_without_one_vector_per_field_or_with_a_given_embedding_refuse_the_lift(prepared) -> None:  # noqa: ANN001
    for name in ("lr", "ffm"):
        with pytest.raises(ConfigError, match="model.embedding_lift"):
            build_model(name, prepared.schema, embedding_dim=3, embedding_lift=7)
    given = FieldEmbedding(prepared.schema, 3)
    with pytest.raises(ConfigError, match="own tables only"):
        build_model("deepfm", prepared.schema, embedding=given, embedding_lift=7)
    names = FieldEmbedding(prepared.schema, 3).field_names
    widths = {n: 2 + i % 2 for i, n in enumerate(names)}
    with pytest.raises(ConfigError, match="one embedding_dim"):
        build_model("widedeep", prepared.schema, embedding_dim=widths, embedding_lift=7)


def test_a_lifted_run_reloads_with_the_same_scores(synth_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(None, [f"data.path={synth_dir}", f"data.cache_dir={tmp_path / 'c'}", "model.mlp=[16]",
                             "model.embedding_dim=3", "model.embedding_lift=8", "trainer.epochs=1",
                             "trainer.progress=false", "threads=1"])
    res = run_train(cfg, tmp_path / "run")
    _, _, model = load_run(tmp_path / "run")
    from recnas.data.cache import prepare
    from recnas.data.source import open_dataset

    ds = prepare(open_dataset(synth_dir), tmp_path / "c")
    b = next(iter(ds.batches("test", 256, shuffle=False)))
    res.model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model(b).numpy(), res.model(b).numpy(), atol=1e-6)
    assert isinstance(model.embedding, LiftedEmbedding)
