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
    # categorical field 0 of row 0 reads row `id` of the shared table (its offset is 0)
    torch.testing.assert_close(out[0, 0], emb.table.weight[batch.cat[0, 0]])
    # the multi-valued field is the mean of its non-padding tokens
    j = emb.n_cat + emb.n_bucket + emb.n_scalar
    n = int(batch.mv_len[0, 0])
    ids = batch.mv[0, 0, :n] + emb.multi_offsets[0]
    torch.testing.assert_close(out[0, j], emb.table.weight[ids].mean(0))


def test_scalar_numerical_encoder_handles_missing(prepared) -> None:  # noqa: ANN001
    emb = FieldEmbedding(prepared.schema, 4)
    arrays = {k: np.array(v[:2]) for k, v in prepared.splits["train"].items()}
    arrays["num"][0, 0] = np.nan
    out = emb(FieldBatch.from_arrays(arrays))
    j = emb.n_cat + emb.n_bucket
    torch.testing.assert_close(out[0, j], emb.scalar_missing[0].detach())
    assert torch.isfinite(out).all()
