"""MixedWidthEmbedding: each id stored at its own width, exact EP, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recnas.errors import ConfigError
from recnas.nn.mixed_width import MixedWidthEmbedding, blocks_from_widths, size_counts, widths_from_blocks
from recnas.nn.models import build_model


def test_blocks_and_widths_convert_both_ways() -> None:
    w = widths_from_blocks([[3, 16], [2, 8], [5, 0]], 10)
    assert w.tolist() == [16] * 3 + [8] * 2 + [0] * 5
    assert blocks_from_widths(w) == [[3, 16], [2, 8], [5, 0]]
    assert size_counts(w) == {0: 5, 8: 2, 16: 3}
    with pytest.raises(ConfigError, match="covers 9 rows"):
        widths_from_blocks([[4, 16], [5, 8]], 10, "c1")


def test_ids_are_stored_at_their_width_and_zero_width_ids_embed_to_zero(prepared) -> None:  # noqa: ANN001
    schema = prepared.schema
    cat = schema.categorical
    rng = np.random.default_rng(0)
    widths = {f.name: rng.choice([0, 2, 8], size=f.cardinality) for f in cat}
    emb = MixedWidthEmbedding(schema, widths, 8)
    assert emb.field_ep() == {f: int(w.sum()) for f, w in widths.items()}
    assert emb.own_embedding_params() == sum(emb.field_ep().values())
    assert emb.projection_params() == sum(p.numel() for p in emb.projections)
    batch = next(iter(prepared.batches("train", 512, shuffle=False)))
    with torch.no_grad():
        out = emb(batch)
    assert out.shape == (512, len(emb.field_names), 8)
    for i, f in enumerate(cat):
        w = torch.from_numpy(widths[f.name])[batch.cat[:, i]]
        assert float(out[w == 0, i].abs().sum()) == 0.0
        assert float(out[w == 2, i, 2:].abs().sum()) == 0.0  # [I 0] projection: width 2 fills columns 0-1
        assert float(out[w == 8, i].abs().sum()) > 0.0


def test_a_zoo_model_counts_the_mixed_tables_in_ep_and_regularises_them(prepared) -> None:  # noqa: ANN001
    schema = prepared.schema
    model = build_model("deepfm", schema, embedding_dim=8, mlp=[16])
    widths = {f.name: np.full(f.cardinality, 4) for f in schema.categorical}
    model.embedding = MixedWidthEmbedding(schema, widths, 8)
    first_order = model.first_order.weights.embedding_params()
    rest = model.embedding.rest.embedding_params()
    assert model.embedding_params() == first_order + rest + sum(4 * f.cardinality for f in schema.categorical)
    tables = {id(w) for w in model.embedding_tables()}
    assert all(id(t.weight) in tables for t in model.embedding.tables)


def test_wrong_widths_are_clear_errors(prepared) -> None:  # noqa: ANN001
    schema = prepared.schema
    f = schema.categorical[0]
    with pytest.raises(ConfigError, match="one width per id"):
        MixedWidthEmbedding(schema, {f.name: [4, 4]}, 8)
    with pytest.raises(ConfigError, match="not categorical fields"):
        MixedWidthEmbedding(schema, {"nope": [4]}, 8)
    with pytest.raises(ConfigError, match=">= 0"):
        MixedWidthEmbedding(schema, {f.name: np.full(f.cardinality, -1)}, 8)


def test_the_optional_batch_norm_makes_the_output_blind_to_the_rows_scale(prepared) -> None:  # noqa: ANN001
    schema = prepared.schema
    widths = {f.name: np.full(f.cardinality, 4) for f in schema.categorical}
    batch = next(iter(prepared.batches("train", 512, shuffle=False)))
    n_cat = len(schema.categorical)
    for gamma in (None, 0.15):
        torch.manual_seed(0)
        emb = MixedWidthEmbedding(schema, widths, 8, norm_gamma=gamma, init_std=0.1)
        with torch.no_grad():
            before = emb(batch)[:, :n_cat]
            for t in emb.tables:
                t.weight.mul_(10.0)
            after = emb(batch)[:, :n_cat]
        if gamma is None:
            assert emb.norm is None
            assert torch.allclose(after, 10.0 * before, atol=1e-6)
        else:  # batch statistics: the same output whatever the scale, each used column at std ~ gamma
            assert torch.allclose(after, before, rtol=1e-2, atol=1e-3)  # up to the norm's eps
            std = before[:, :, :4].std(dim=0)
            assert torch.allclose(std, torch.full_like(std, gamma), rtol=0.05)


def test_ids_find_their_rows_alike_by_runs_and_by_per_id_maps(prepared, monkeypatch) -> None:  # noqa: ANN001
    import recnas.nn.mixed_width as mw

    schema = prepared.schema
    rng = np.random.default_rng(1)
    # head-to-tail layouts of a few runs (width 0 included), and one field of random widths (many runs)
    widths = {f.name: widths_from_blocks([[f.cardinality // 3, 8], [f.cardinality // 3, 0],
                                          [f.cardinality - 2 * (f.cardinality // 3), 2]], f.cardinality)
              for f in schema.categorical}
    widths["c1"] = rng.choice([0, 2, 4, 8], size=schema["c1"].cardinality)
    by_runs = MixedWidthEmbedding(schema, widths, 8)
    assert by_runs._by_runs == [f.name != "c1" for f in schema.categorical]
    monkeypatch.setattr(mw, "MAX_RUNS", 0)
    per_id = MixedWidthEmbedding(schema, widths, 8)
    assert not any(per_id._by_runs)
    per_id.load_state_dict(by_runs.state_dict())
    batch = next(iter(prepared.batches("train", 512, shuffle=False)))
    with torch.no_grad():
        assert torch.equal(by_runs(batch), per_id(batch))
