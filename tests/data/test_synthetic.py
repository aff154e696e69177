from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.csv as pv
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from recnas.data.synthetic import Interaction, SynthConfig, generate, write_synthetic
from recnas.errors import ConfigError


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("big") / "syn"
    write_synthetic(out, SynthConfig(rows=30_000, seed=11))
    return out


def load(out: Path, split: str) -> dict[str, np.ndarray]:
    t = pv.read_csv(out / f"{split}.csv")
    return {c: t[c].to_numpy(zero_copy_only=False) for c in t.column_names}


def test_truth_has_the_documented_keys_and_default_plants(synth_dir: Path) -> None:
    truth = json.loads((synth_dir / "truth.json").read_text())
    for key in ("interactions", "interaction_ranks", "informative_fields", "noise_fields",
                "nonlinear_numerical_fields", "bayes_test_auc"):
        assert key in truth
    ranks = dict(zip(map(tuple, truth["interactions"]), truth["interaction_ranks"], strict=True))
    assert len(ranks) >= 2
    card = truth["cardinalities"]
    high = [pair for pair, r in ranks.items() if r >= 8]
    assert high and all(card[f] >= 1000 for f in high[0])
    assert any(r <= 2 for r in ranks.values())
    assert len([f for f in truth["noise_fields"] if f.startswith("c")]) == 2
    assert truth["nonlinear_numerical_fields"] == ["n1"]
    assert 0.6 < truth["bayes_test_auc"] < 1.0
    assert not set(truth["noise_fields"]) & set(truth["informative_fields"])


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = generate(SynthConfig(rows=500, seed=1))
    b = generate(SynthConfig(rows=500, seed=1))
    c = generate(SynthConfig(rows=500, seed=2))
    assert np.array_equal(a[2], b[2]) and np.array_equal(a[0]["c1"], b[0]["c1"])
    assert not np.array_equal(a[0]["c1"], c[0]["c1"])


def test_ids_are_zipf_distributed() -> None:
    cols, *_ = generate(SynthConfig(rows=20_000, seed=0))
    counts = np.bincount(cols["c1"])
    assert counts[0] > 10 * np.median(counts[counts > 0])  # a heavy head
    assert (counts == 1).sum() > 100  # and a long tail


def one_hot_auc(tr: dict, te: dict, fields: list[str], crosses: list[tuple[str, str]] = ()) -> float:
    def feats(d: dict) -> np.ndarray:
        cols = [d[f].astype(str) for f in fields]
        cols += [np.char.add(np.char.add(d[a].astype(str), "_"), d[b].astype(str)) for a, b in crosses]
        return np.stack(cols, axis=1)

    enc = OneHotEncoder(handle_unknown="ignore")
    x_tr = enc.fit_transform(feats(tr))
    lr = LogisticRegression(C=0.5, max_iter=300).fit(x_tr, tr["label"])
    return float(roc_auc_score(te["label"], lr.predict_proba(enc.transform(feats(te)))[:, 1]))


def test_logistic_regression_on_planted_fields_beats_noise_fields(big: Path) -> None:
    truth = json.loads((big / "truth.json").read_text())
    tr, te = load(big, "train"), load(big, "test")
    informative = [f for f in truth["informative_fields"] if f.startswith("c")]
    noise = [f for f in truth["noise_fields"] if f.startswith("c")]
    auc_inf = one_hot_auc(tr, te, informative)
    auc_noise = one_hot_auc(tr, te, noise)
    assert auc_inf > 0.65
    assert abs(auc_noise - 0.5) < 0.04
    assert auc_inf < truth["bayes_test_auc"]


def test_planted_low_rank_interaction_adds_signal(big: Path) -> None:
    truth = json.loads((big / "truth.json").read_text())
    pair = next(tuple(i) for i, r in zip(truth["interactions"], truth["interaction_ranks"], strict=True) if r <= 2)
    tr, te = load(big, "train"), load(big, "test")
    informative = [f for f in truth["informative_fields"] if f.startswith("c")]
    base = one_hot_auc(tr, te, informative)
    crossed = one_hot_auc(tr, te, informative, crosses=[pair])
    assert crossed > base + 0.01


def test_third_order_and_custom_interactions() -> None:
    cfg = SynthConfig(rows=300, seed=0, third_order=True)
    assert len(cfg.planted()[-1].fields) == 3
    with pytest.raises(ConfigError, match="noise field"):
        generate(SynthConfig(rows=300, interactions=[Interaction(["c1", "c8"], 2)]))
    with pytest.raises(ConfigError, match="c99"):
        generate(SynthConfig(rows=300, interactions=[Interaction(["c1", "c99"], 2)]))


def test_parquet_output(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "p", SynthConfig(rows=300, seed=0, file_format="parquet"))
    assert (tmp_path / "p" / "train.parquet").is_file()
    from recnas.data.processor import FeatureProcessor
    from recnas.data.source import open_dataset

    src = open_dataset(tmp_path / "p")
    FeatureProcessor(src.schema).fit(src.train)


def test_counts_mode_draws_skewed_counts_with_named_effects() -> None:
    import numpy as np

    from recnas.data.synthetic import SynthConfig, generate

    cols, p, y, truth = generate(SynthConfig(rows=20_000, seed=4, n_numerical=8, numerical_kind="counts", n_multi=0))
    names = [f"n{i + 1}" for i in range(8)]
    for n in names:
        x = cols[n][~np.isnan(cols[n])]
        assert x.min() >= 0 and np.all(x == np.floor(x)) and np.mean(x) > np.median(x)  # right-skewed counts
    assert truth["nonlinear_numerical_fields"] == ["n1", "n2", "n5", "n6"]
    assert truth["linear_numerical_fields"] == ["n3", "n7"]
    assert {"n4", "n8"} <= set(truth["noise_fields"])
    u = np.log1p(np.nan_to_num(cols["n1"]))  # the U-shaped field: both ends click more than the middle
    lo, mid, hi = (y[(u >= a) & (u <= b)].mean() for a, b in [(0, np.quantile(u, 0.1)),
                                                               (np.quantile(u, 0.45), np.quantile(u, 0.55)),
                                                               (np.quantile(u, 0.95), u.max())])
    assert lo > mid and hi > mid
