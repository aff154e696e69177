"""ONNX export: every zoo model and every numerical encoder scores raw rows through onnxruntime as torch does;
serving imports no torch; bad exports and bad rows are one clear error each. (Every search method's retrained
model is checked by the method conformance suite, tests/methods/test_conformance.py.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recnas.errors import DataError, RecnasError
from recnas.experiment.config import load_config
from recnas.experiment.export import export_run
from recnas.experiment.run import run_train
from recnas.fileio import file_sha256
from recnas.nn.models import MODELS, ZOO
from recnas.nn.models.base import model_options
from recnas.nn.numerical import BUILTIN_KINDS, NUMERICAL_ENCODERS
from recnas.serving import predict_onnx
from tests.export.parity import assert_onnx_matches_torch, hard_rows_csv

TINY = ["threads=1", "model.mlp=[16]", "model.embedding_dim=4", "trainer.epochs=1", "trainer.batch_size=256",
        "trainer.progress=false"]
SMALL_OPTIONS = {"cin_layers": "[8]", "attention_layers": "1", "head_dim": "4"}  # where a model reads them


def train(synth_dir: Path, cache: Path, out: Path, name: str, *extra: str) -> Path:
    small = [f"model.{k}={v}" for k, v in SMALL_OPTIONS.items() if k in model_options(MODELS[name])]
    cfg = load_config(None, [*TINY, f"model.name={name}", *small, f"data.path={synth_dir}",
                             f"data.cache_dir={cache}", *extra])
    return run_train(cfg, out).path


@pytest.fixture(scope="module")
def rows(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hard_rows_csv(synth_dir, tmp_path_factory.mktemp("rows") / "hard.csv")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")  # the synthetic data encoded once for every run of this module


@pytest.fixture(scope="module")
def deepfm_run(synth_dir: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(synth_dir, cache, tmp_path_factory.mktemp("deepfm") / "run", "deepfm")


@pytest.fixture(scope="module")
def deepfm_export(deepfm_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deepfm_export") / "export"
    export_run(deepfm_run, out)
    return out


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_scores_the_same_through_onnxruntime(name: str, synth_dir: Path, cache: Path, rows: Path,
                                                             tmp_path: Path) -> None:
    run = train(synth_dir, cache, tmp_path / "run", name)
    assert_onnx_matches_torch(run, rows, tmp_path)


KINDS = sorted({*BUILTIN_KINDS, *NUMERICAL_ENCODERS})
PAIRS = [KINDS[i : i + 2] for i in range(0, len(KINDS), 2)]  # the synthetic data has two numerical fields


@pytest.mark.parametrize("kinds", PAIRS, ids=["+".join(p) for p in PAIRS])
def test_every_numerical_encoder_scores_the_same_through_onnxruntime(kinds: list[str], synth_dir: Path,
                                                                     cache: Path, rows: Path, tmp_path: Path) -> None:
    mapping = {"n1": kinds[0], "n2": kinds[-1]}
    run = train(synth_dir, cache, tmp_path / "run", "deepfm", "model.embedding_norm=true",
                f"model.numerical_encoder={json.dumps(mapping)}")
    assert_onnx_matches_torch(run, rows, tmp_path)


def test_bucketised_and_hashed_fields_score_the_same_through_onnxruntime(synth_dir: Path, rows: Path,
                                                                        tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    schema = yaml.safe_load((data / "schema.yaml").read_text())
    for col in schema["columns"]:
        col.update({"n2": {"buckets": "quantile"}, "c1": {"hash_buckets": 64}}.get(col["name"], {}))
    (data / "schema.yaml").write_text(yaml.safe_dump(schema))
    run = train(data, tmp_path / "cache", tmp_path / "run", "deepfm")
    doc = assert_onnx_matches_torch(run, rows, tmp_path)
    assert doc["inputs"][2]["fields"] == ["n2"]  # the num_bucket input is used
    assert "rank" in next(f for f in doc["schema"]["fields"] if f["name"] == "c1")["vocab"]["inline"]["columns"]


def test_serving_imports_no_torch(deepfm_run: Path, deepfm_export: Path, synth_dir: Path, tmp_path: Path) -> None:
    probe = ("import json, sys\n"
             "from recnas.serving import predict_onnx\n"
             f"s, _ = predict_onnx({str(deepfm_export)!r}, {str(synth_dir / 'test.csv')!r}, "
             f"{str(tmp_path / 'p.csv')!r})\n"
             "print(json.dumps({'auc': s['auc'], 'torch': 'torch' in sys.modules}))\n")
    out = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                    check=True).stdout.splitlines()[-1])
    metrics = json.loads((deepfm_run / "metrics.json").read_text())
    assert out["torch"] is False
    assert abs(out["auc"] - metrics["test_auc"]) < 1e-6


def test_the_export_follows_a_search_run_into_its_retrain(deepfm_run: Path, tmp_path: Path) -> None:
    search_run = tmp_path / "search"
    shutil.copytree(deepfm_run, search_run / "retrain")
    s = export_run(search_run)
    assert Path(s["out"]) == search_run / "retrain" / "export"
    doc = json.loads((search_run / "retrain" / "export" / "preprocess.json").read_text())
    assert [e["name"] for e in doc["inputs"]] == ["cat", "num", "num_bucket", "mv", "mv_len"]
    assert doc["inputs"][0]["fields"] == [f"c{i}" for i in range(1, 9)]
    assert doc["embedding_params"] == json.loads((deepfm_run / "metrics.json").read_text())["embedding_params"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recnas", *args], capture_output=True, text=True, timeout=300)


def one_error_line(res: subprocess.CompletedProcess, *words: str) -> str:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


def test_bad_exports_are_one_clear_error_each(deepfm_run: Path, deepfm_export: Path, synth_dir: Path,
                                              tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    one_error_line(cli("export", str(empty)), str(empty), "model.safetensors")
    one_error_line(cli("predict", str(empty), str(synth_dir / "test.csv"), "--engine", "onnx"), "recnas export")

    broken = tmp_path / "broken"
    shutil.copytree(deepfm_run, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    one_error_line(cli("export", str(broken)), "model.safetensors", "damaged")

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(deepfm_export, a)
    shutil.copytree(deepfm_export, b)
    tiny_graph(a / "model.onnx")  # preprocess.json of one export beside another model
    one_error_line(cli("predict", str(a), str(synth_dir / "test.csv"), "--engine", "onnx"), "preprocess.json",
                   "export again")
    tiny_graph(b / "model.onnx")  # the checksum made to match: the layouts still differ
    doc = json.loads((b / "preprocess.json").read_text())
    doc["model_sha256"] = file_sha256(b / "model.onnx")
    (b / "preprocess.json").write_text(json.dumps(doc))
    one_error_line(cli("predict", str(b), str(synth_dir / "test.csv"), "--engine", "onnx"), "'cat'", "export again")
    (b / "model.onnx").write_bytes(b"not a model")
    doc["model_sha256"] = file_sha256(b / "model.onnx")
    (b / "preprocess.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="not a readable ONNX model"):
        predict_onnx(b, synth_dir / "test.csv", tmp_path / "p.csv")


def tiny_graph(path: Path) -> None:
    """A valid ONNX model with the export's input and output names but one column per input."""
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT if n == "num" else TensorProto.INT64, ["batch", 1])
              for n in ("cat", "num", "num_bucket", "mv", "mv_len")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 1]) for n in ("probability", "logit")]
    nodes = [helper.make_node("Identity", ["num"], [n]) for n in ("probability", "logit")]
    model = helper.make_model(helper.make_graph(nodes, "tiny", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(path))


def test_bad_rows_are_one_clear_error_for_the_onnx_engine(deepfm_export: Path, synth_dir: Path,
                                                          tmp_path: Path) -> None:
    shutil.copytree(deepfm_export, tmp_path / "export")
    lines = (synth_dir / "test.csv").read_text().splitlines()
    header = lines[0].split(",")
    missing = tmp_path / "missing.csv"
    keep = [i for i, h in enumerate(header) if h != '"n1"']
    missing.write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in lines[:50]) + "\n")
    one_error_line(cli("predict", str(tmp_path / "export"), str(missing), "--engine", "onnx",
                       "--out", str(tmp_path / "p.csv")), "n1")
    wrong = tmp_path / "wrong.csv"
    n1 = header.index('"n1"')
    body = [line.split(",") for line in lines[1:50]]
    body[10][n1] = "abc"
    wrong.write_text("\n".join([lines[0], *(",".join(r) for r in body)]) + "\n")
    err = one_error_line(cli("predict", str(tmp_path / "export"), str(wrong), "--engine", "onnx",
                             "--out", str(tmp_path / "p.csv")), "n1")
    assert "abc" in err or "row" in err
    assert not (tmp_path / "p.csv").exists()
    with pytest.raises(RecnasError, match="batch_size"):
        predict_onnx(tmp_path / "export", synth_dir / "test.csv", tmp_path / "p.csv", batch_size=0)
