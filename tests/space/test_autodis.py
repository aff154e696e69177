"""AutoDis (Guo et al., KDD'21): a known-answer test on a planted U-shaped effect, and its properties."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recnas.data.synthetic import SynthConfig, write_synthetic
from recnas.errors import ConfigError
from recnas.experiment.config import load_config
from recnas.experiment.run import run_train
from recnas.nn.numerical import BucketEncoder, is_skewed_count
from recnas.space.autodis import AutoDisEncoder
from tests.nn.test_numerical import spec_from

BASELINES = ["scalar", "bucket_equal_width", "bucket_equal_freq", "log_square"]


def fm_run(data: Path, cache: Path, encoder: str, out: Path, *extra: str):  # noqa: ANN201
    """FM (no MLP: the encoder is the model's only route to a nonlinear effect of a value) on `data`."""
    cfg = load_config(None, [f"data.path={data}", f"data.cache_dir={cache}", f"model.numerical_encoder={encoder}",
                             "model.name=fm", "trainer.epochs=20", "trainer.lr=0.003", "trainer.progress=false",
                             "threads=1", "seed=1", *extra])
    return run_train(cfg, out)


@pytest.fixture(scope="module")
def u_shaped(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """n1 ~ N(0, 1) adds 1.0 * (n1^2 - 1) to the logit; no planted pairs, so FM trains stably in seconds."""
    root = tmp_path_factory.mktemp("u_shape")
    data = root / "data"
    write_synthetic(data, SynthConfig(rows=40_000, seed=1, u_shape_scale=1.0, n_numerical=3, interactions=[]))
    runs = {enc: fm_run(data, root / "cache", enc, root / enc) for enc in [*BASELINES, "autodis"]}
    return {"data": data, "cache": root / "cache", "runs": runs}


def test_autodis_learns_the_u_shape_better_than_scalar_and_as_well_as_the_best_buckets(u_shaped: dict) -> None:
    auc = {k: r.metrics["test_auc"] for k, r in u_shaped["runs"].items()}
    best_bucket = max(auc[k] for k in BASELINES if k != "scalar")
    assert auc["autodis"] - auc["scalar"] > 0.1, auc  # measured: 0.7590 vs 0.6083
    assert auc["autodis"] >= best_bucket - 0.001, auc  # measured: 0.7590 vs 0.7554 (equal frequency)
    # the learned first-order effect of n1 is U-shaped: higher at -2 and +2 than at 0
    model = u_shaped["runs"]["autodis"].model
    enc = next(e for e in model.first_order.weights.numerical_encoders() if "n1" in e.field_names)
    j = enc.field_names.index("n1")
    x = torch.zeros(3, enc.num_fields)
    x[:, j] = torch.tensor([-2.0, 0.0, 2.0])
    with torch.no_grad():
        w = enc(x)[:, j, 0]
    assert w[0] - w[1] > 0.2 and w[2] - w[1] > 0.2, w  # measured: 0.34 and 0.27


def test_trained_autodis_is_continuous_while_hard_buckets_jump(u_shaped: dict) -> None:
    def encoder(kind: str) -> tuple[torch.nn.Module, int]:
        emb = u_shaped["runs"][kind].model.embedding
        enc = next(e for e in emb.numerical_encoders() if "n1" in e.field_names)
        return enc, enc.field_names.index("n1")

    def gap(enc: torch.nn.Module, j: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        xa, xb = torch.zeros(len(a), enc.num_fields), torch.zeros(len(b), enc.num_fields)
        xa[:, j], xb[:, j] = a, b
        with torch.no_grad():
            return (enc(xa)[:, j] - enc(xb)[:, j]).norm(dim=-1)

    ad, j = encoder("autodis")
    grid = torch.linspace(-2.5, 2.5, 201)
    step_small, step_big = gap(ad, j, grid + 1e-3, grid), gap(ad, j, grid + 1e-2, grid)
    far = gap(ad, j, torch.tensor([-2.0]), torch.tensor([0.0]))
    assert step_small.max() < 0.01 * far  # close values -> close embeddings
    ratio = step_small.sum() / step_big.sum()
    assert 0.05 < ratio < 0.2  # the change shrinks with the step (about 10x): continuous, no jumps
    bk, jb = encoder("bucket_equal_freq")
    edge = torch.tensor([bk.edges[jb][len(bk.edges[jb]) // 2]])
    jump_small = gap(bk, jb, edge + 1e-4, edge - 1e-4)
    jump_big = gap(bk, jb, edge + 1e-2, edge - 1e-2)
    assert jump_small > 0.5 * jump_big  # a hard bucket edge jumps however close the values are


def test_far_values_get_distinct_embeddings(u_shaped: dict) -> None:
    enc = u_shaped["runs"]["autodis"].model.embedding.numerical_encoders()[0]
    j = enc.field_names.index("n1")
    x = torch.zeros(3, enc.num_fields)
    x[:, j] = torch.tensor([-2.0, 0.0, 2.0])
    with torch.no_grad():
        e = enc(x)[:, j]
        p = enc.probabilities(x)[:, j]
    cos = torch.nn.functional.cosine_similarity(e[1:2], e[[0, 2]])
    assert (cos < 0.9).all(), cos
    assert int(p[0].argmax()) != int(p[1].argmax()) and int(p[2].argmax()) != int(p[1].argmax())


def test_autodis_writes_its_soft_buckets_next_to_the_run(u_shaped: dict) -> None:
    run = u_shaped["runs"]["autodis"]
    m = json.loads((run.path / "metrics.json").read_text())
    export = json.loads(Path(m["autodis"]["json"]).read_text())
    fields = export["embedding.encoders.0"]["fields"]
    a = fields["n1"]
    p = np.asarray(a["p"])
    assert p.shape == (200, 20) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert a["x"][0] == pytest.approx(min(a["x"])) and a["edges"] == sorted(a["edges"])
    assert Path(m["autodis"]["plot"]).stat().st_size > 5_000


def test_same_seed_same_metrics(u_shaped: dict, tmp_path: Path) -> None:
    again = fm_run(u_shaped["data"], u_shaped["cache"], "autodis", tmp_path / "again")
    first = u_shaped["runs"]["autodis"].metrics
    assert again.metrics["test_auc"] == first["test_auc"] and again.metrics["valid_logloss"] == first["valid_logloss"]


def make(**kw) -> AutoDisEncoder:  # noqa: ANN003
    rng = np.random.default_rng(0)
    specs = [spec_from(rng.normal(0, 1, 5000), "a"), spec_from(rng.lognormal(1.0, 1.2, 5000), "b")]
    torch.manual_seed(0)
    return AutoDisEncoder(specs, 3, init_std=1.0, meta_embeddings=6, **kw)


def test_the_three_aggregations() -> None:
    x = torch.tensor([[0.3, 2.0], [-1.0, 40.0], [1.5, 0.0]])
    weighted, top1, top3 = make(), make(aggregation="max"), make(aggregation="topk", top_k=3)
    p = weighted.probabilities(x)
    meta = weighted.meta  # same seed: the three blocks share their initial weights
    torch.testing.assert_close(weighted(x), torch.einsum("bfh,fhd->bfd", p, meta))
    idx = p.argmax(-1)
    torch.testing.assert_close(top1(x), torch.stack([meta[f, idx[:, f]] for f in range(2)], dim=1))
    top = p.topk(3, dim=-1).indices
    torch.testing.assert_close(top3(x), torch.stack([meta[f, top[:, f]].sum(1) for f in range(2)], dim=1))
    top1(x).sum().backward()  # hard choices pass no gradient to the discretiser (the paper's caveat)
    assert top1.w.grad is None or top1.w.grad.abs().sum() == 0
    weighted(x).sum().backward()
    assert weighted.w.grad.abs().sum() > 0


def test_logit_forms_temperature_and_input_transform() -> None:
    x = torch.tensor([[0.3, 2.0], [-1.0, 40.0]])
    skip, linear = make(), make(logits="linear")
    assert skip.mix is not None and linear.mix is None
    assert not torch.allclose(skip.probabilities(x), linear.probabilities(x))

    def entropy(enc: AutoDisEncoder) -> float:
        with torch.no_grad():
            p = enc.probabilities(x)
        return float(-(p * p.log()).sum())
    assert entropy(make(temperature=0.2)) < entropy(make(temperature=1.0)) < entropy(make(temperature=5.0))
    learned = make(learn_temperature=True)
    learned(x).sum().backward()
    assert learned.log_tau.grad is not None and learned.log_tau.grad.abs().sum() > 0
    assert any(p is learned.log_tau for p in learned.arch_parameters())
    assert skip.use_log.tolist() == [False, True]  # b is a skewed count: log1p; a is normal: z-score
    assert is_skewed_count(skip.fields[1].stats) and not is_skewed_count(skip.fields[0].stats)
    with pytest.raises(Exception, match="aggregation"):
        make(aggregation="mean")


def test_export_freezes_into_a_plain_bucket_encoder() -> None:
    enc = make()
    sample = enc.export()
    assert set(sample) == {"disc/a", "disc/b"}
    for f, spec in zip(enc.field_names, enc.fields, strict=True):
        edges = sample[f"disc/{f}"]
        assert edges == sorted(edges) and all(spec.stats.min <= e <= spec.stats.max for e in edges)
    frozen = enc.freeze(sample)
    assert isinstance(frozen, BucketEncoder) and frozen.edges == [sorted(sample["disc/a"]), sorted(sample["disc/b"])]
    assert not any(p is q for p in frozen.parameters() for q in enc.arch_parameters())
    shares = enc.export_probs()["disc/a"]
    assert len(shares) == 6 and sum(shares) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="no sampled paths"):
        enc.set_sample({"disc/a": [0.0]})


def test_unknown_autodis_option_names_the_key() -> None:
    with pytest.raises(ConfigError, match="model.autodis.buckets"):
        load_config(None, ["model.autodis.buckets=3"])
