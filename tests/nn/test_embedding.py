from __future__ import annotations

import numpy as np
import torch

from recnas.data.batches import FieldBatch
from recnas.nn.embedding import FieldEmbedding


def test_one_table_with_offsets_and_masked_pooling(prepared) -> None:  # noqa: ANN001
    schema = prepared.schema
    emb = FieldEmbedding(schema, 4, pooling="mean")
    assert emb.n_rows == sum(f.cardinality for f in schema.fields if f.type.embedded)
    batch = FieldBatch.from_arrays({k: np.asarray(v[:6]) for k, v in prepared.splits["train"].items()})
    out = emb(batch)
    assert out.shape == (6, len(schema.fields), 4)
    # every categorical field j of row r reads row offset_j + id of the shared table, offsets from cardinalities
    cards = [f.cardinality for f in schema.categorical]
    offsets = np.concatenate([[0], np.cumsum(cards)[:-1]])
    for j in range(len(cards)):
        for r in range(6):
            torch.testing.assert_close(out[r, j], emb.table.weight[offsets[j] + batch.cat[r, j]])
    # the multi-valued field's rows follow every categorical table; it is the mean of its non-padding tokens
    mv_offset = sum(cards)
    j = emb.n_cat + emb.n_bucket + emb.n_encoded
    for r in range(6):
        n = int(batch.mv_len[r, 0])
        ids = batch.mv[r, 0, :n] + mv_offset
        torch.testing.assert_close(out[r, j], emb.table.weight[ids].mean(0))


def test_dimension_map_with_unknown_field_is_refused(prepared) -> None:  # noqa: ANN001
    import pytest

    from recnas.errors import SchemaError

    dims = {f.name: 4 for f in prepared.schema.fields} | {"nope": 4}
    with pytest.raises(SchemaError, match="unknown field"):
        FieldEmbedding(prepared.schema, dims)


def test_scalar_numerical_encoder_handles_missing(prepared) -> None:  # noqa: ANN001
    emb = FieldEmbedding(prepared.schema, 4)
    arrays = {k: np.array(v[:2]) for k, v in prepared.splits["train"].items()}
    arrays["num"][0, 0] = np.nan
    out = emb(FieldBatch.from_arrays(arrays))
    j = emb.n_cat + emb.n_bucket
    torch.testing.assert_close(out[0, j], emb.encoders[0].missing[0].detach())
    assert torch.isfinite(out).all()
