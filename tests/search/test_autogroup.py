"""AutoGroup: the searchable sets' export and freeze, and every bad setting refused with the key to change."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recnas.errors import ConfigError, RecnasError
from recnas.experiment.config import load_config
from recnas.experiment.run import load_splits
from recnas.experiment.search import run_search
from recnas.methods import method_of
from recnas.space.autogroup import AutoGroupSets, member_label

FAST = ["model.name=autogroup", "search.method=autogroup", "threads=1", "model.mlp=[16]", "trainer.epochs=1",
        "trainer.batch_size=512", "trainer.progress=false", "search.epochs=2", "search.warmup_epochs=1",
        "search.baseline=false"]


def test_export_freeze_and_a_fixed_sample_agree() -> None:
    torch.manual_seed(0)
    names = ["a", "b", "c", "d"]
    block = AutoGroupSets(names, 2, [2, 1, 1], normalise=False)
    assert len(block.choices()) == 4 * (2 + 1 + 1)
    with torch.no_grad():
        for a in block.structure_logits:
            a.fill_(-1.0)
        block.structure_logits[0][0, 0] = 1.0  # order 1, set 0: {a}
        block.structure_logits[1][[1, 2], 0] = 1.0  # order 2: {b, c}
        block.structure_logits[2][3, 0] = 1.0  # order 3: {d} alone computes nothing
    sample = block.export()
    assert sample[member_label(1, 0, "a")] and not sample[member_label(1, 1, "a")]
    assert block.sets_of(sample) == [[["a"], []], [["b", "c"]], [["d"]]]
    frozen = block.freeze(sample).eval()
    assert frozen.sets == [[["a"]], [["b", "c"]], []]  # the empty set and the one-field order-3 set are left out
    block.eval()
    e = torch.randn(3, 4, 2)
    searched = block(e)  # eval: memberships are the logits' signs
    weights = [w.detach().clone() for w in block.weights]
    with torch.no_grad():  # give the frozen block the searched weights of the sets it kept
        frozen.weights[0].copy_(weights[0][:, :1])
        frozen.weights[1].copy_(weights[1])
    torch.testing.assert_close(frozen(e), torch.cat([searched[:, :2], searched[:, 4:5]], dim=1))
    block.set_sample({k: True for k in sample})  # a fixed sample overrides the logits
    assert all(bool(m.all()) for m in block.memberships())
    block.set_sample(None)
    assert not all(bool(m.all()) for m in block.memberships())


def test_the_search_moves_the_logits_and_records_the_entropy(synth_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(None, [*FAST, f"data.path={synth_dir}", f"data.cache_dir={tmp_path / 'cache'}"])
    res = run_search(cfg, tmp_path / "run")
    arch = res.arch
    assert set(arch["sets"]) == {"order_1", "order_2", "order_3"}
    fields = arch["fields"]
    probs = arch["set_probs"]["order_2"]
    assert len(probs) == len(fields) and any(abs(p - 0.8808) > 1e-3 for s in probs for p in s.values())
    history = (tmp_path / "run" / "search" / "history.jsonl").read_text().splitlines()
    assert len(history) == 2 and '"membership_entropy"' in history[-1]
    assert 0 < arch["membership_entropy"] < 1
    one_shot = arch["one_shot"]  # the searched model as it is: its valid AUC is the last search epoch's
    assert one_shot["valid_auc"] == pytest.approx(arch["valid_auc"], abs=1e-9)
    assert 0.5 < one_shot["test_auc"] < 1
    from recnas.methods import method_of

    assert any("used one-shot" in line for line in method_of(cfg).summary(arch))


@pytest.mark.parametrize(("setting", "message"), [
    ("search.orders=12", "search.orders=12 is above the 11 embedded fields"),
    ("search.sets_per_order=[3, 0, 2]", "search.sets_per_order: every order needs at least one set"),
    ("search.sets_per_order=[3, 3]", "search.sets_per_order lists 2 counts for search.orders=3"),
    ("search.tau_start=0", "tau_start"),
    ("model.name=deepfm", "set model.name=autogroup"),
])
def test_a_bad_setting_is_a_config_error_naming_its_key(setting: str, message: str, synth_dir: Path,
                                                       tmp_path: Path) -> None:
    with pytest.raises(RecnasError, match=message.replace("[", r"\[").replace("]", r"\]")):
        cfg = load_config(None, [*FAST, f"data.path={synth_dir}", f"data.cache_dir={tmp_path / 'cache'}", setting])
        run_search(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "search" / "arch.json").exists()


def test_one_field_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "one"
    data.mkdir()
    for split, n in (("train", 300), ("valid", 60), ("test", 60)):
        (data / f"{split}.csv").write_text("label,user\n" + "".join(f"{i % 2},u{i % 9}\n" for i in range(n)))
    (data / "schema.yaml").write_text("label: label\ncolumns:\n  - {name: label, type: label}\n"
                                      "  - {name: user, type: categorical}\n")
    cfg = load_config(None, [*FAST, f"data.path={data}", f"data.cache_dir={tmp_path / 'cache'}"])
    with pytest.raises(ConfigError, match="needs at least 2"):
        run_search(cfg, tmp_path / "run")


def test_a_search_with_order_tables_retrains_and_reloads_them(synth_dir: Path, tmp_path: Path) -> None:
    from recnas.experiment.run import load_run

    cfg = load_config(None, [*FAST, "model.order_tables=true", f"data.path={synth_dir}",
                             f"data.cache_dir={tmp_path / 'cache'}"])
    res = run_search(cfg, tmp_path / "run")
    _, _, model = load_run(tmp_path / "run" / "retrain")
    assert len(model.order_embeddings) == 2
    assert model.embedding_params() == res.retrain["embedding_params"] > 3 * model.embedding.embedding_params() - 1


@pytest.mark.parametrize("in_search", [False, True])
def test_the_search_and_the_retrain_each_read_raw_embeddings_as_configured(
        in_search: bool, synth_dir: Path, tmp_path: Path) -> None:
    from recnas.experiment.run import load_run

    cfg = load_config(None, [*FAST, f"data.path={synth_dir}", f"data.cache_dir={tmp_path / 'cache'}",
                             f"search.raw_embeddings={str(in_search).lower()}"])
    method = method_of(cfg)
    supernet = method.supernet(load_splits(cfg).ds.schema)
    assert supernet.raw_embeddings is in_search  # by default the paper's MLP: the set interactions only
    assert supernet.mlp.net[0].in_features == supernet.sets.out_dim + in_search * supernet.embedding.flat_dim
    run_search(cfg, tmp_path / "run")
    _, _, model = load_run(tmp_path / "run" / "retrain")
    assert model.raw_embeddings  # the retrain follows model.raw_embeddings (on by default)
    assert model.mlp.net[0].in_features == model.sets.out_dim + model.embedding.flat_dim
