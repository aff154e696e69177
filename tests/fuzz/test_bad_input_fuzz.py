"""Fuzzed bad input: malformed CSV, Parquet and libFM files, schemas and config overrides, through the CLI.

The property, for every generated case: exit 0 with sane output (finite scores in [0, 1]), or a one-line recnas
error naming the place (the data folder or file, the schema, the split or the key); never a traceback, never a
non-finite score. Seeded (derandomised) and bounded: `make test` runs RECNAS_FUZZ_EXAMPLES (default 120) cases,
a fifth of them through train and predict; `make fuzz` runs 10,000 (RECNAS_FUZZ_SPREAD sets how many train).
RECNAS_FUZZ_REPORT=<file> appends what ran (cases per command and outcome).
"""

from __future__ import annotations

import collections
import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from recnas.errors import RecnasError
from recnas.experiment.cli import app

EXAMPLES = int(os.environ.get("RECNAS_FUZZ_EXAMPLES", "120"))
SEED = os.environ.get("RECNAS_FUZZ_SEED")  # a shard of a long run: its own seed (else derandomised)
SPREAD = int(os.environ.get("RECNAS_FUZZ_SPREAD", "20"))  # 4 in SPREAD cases train and predict, 1 in SPREAD searches
runner = CliRunner()
SEEN: collections.Counter[str] = collections.Counter()
HEADER = ["label", "c1", "c2", "n1", "m1"]
TINY = ["--set", "trainer.epochs=1", "--set", "model.embedding_dim=4", "--set", "model.mlp=[8]",
        "--set", "trainer.batch_size=64", "--set", "trainer.progress=false", "--quiet"]

NASTY = ["", " ", "nan", "NaN", "inf", "-inf", "1e39", "-1e300", "3e30", "abc", '"', '""', 'a"b', "x\ny", "\r",
         "\x00", "é", "\U0001f642", "0", "1", "2", "-1", "1.5", "1,5", "|", "a|b|c", ",", ";", "\t", "9" * 400,
         "|".join(["t"] * 2000), "|".join(f"u{i}" for i in range(300)), "true", "None", "null", "0x1F", "1e-320",
         "-0", "+7", "١٢"]


def base_rows(n: int, seed: int) -> list[list[str]]:
    """A valid table: both labels, categorical, numerical and list fields."""
    rng = np.random.default_rng(seed)
    return [[str(i % 2), f"a{rng.integers(5)}", f"b{rng.integers(9)}", f"{rng.normal():.3f}",
             "|".join(f"t{rng.integers(6)}" for _ in range(rng.integers(1, 4)))] for i in range(n)]


def to_csv(header: list[str] | None, rows: list[list[str]], delimiter: str = ",") -> str:
    out = io.StringIO()
    w = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    if header is not None:
        w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


cell = st.one_of(st.sampled_from(NASTY), st.text(max_size=12))
row_edit = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 59), st.integers(0, 4), cell),
    st.tuples(st.just("drop_cell"), st.integers(0, 59)),
    st.tuples(st.just("add_cell"), st.integers(0, 59), cell),
    st.tuples(st.just("blank_line"), st.integers(0, 59)),
    st.tuples(st.just("label"), st.sampled_from(["all0", "all1", "2", "yes"])),
)
byte_edit = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 100).map(lambda k: k / 100)),
    st.tuples(st.just("insert"), st.integers(0, 100).map(lambda k: k / 100), st.binary(min_size=1, max_size=6)),
    st.tuples(st.just("encode"), st.sampled_from(["utf-16", "utf-32", "latin-1", "crlf", "bom", "gzip_name"])),
    st.tuples(st.just("header"), st.sampled_from(["none", "dup", "rename_label", "empty", "extra"])),
)
schema_edit = st.one_of(
    st.none(),
    st.fixed_dictionaries({
        "types": st.lists(st.sampled_from(["categorical", "numerical", "multi_categorical", "label", "bogus"]),
                          min_size=4, max_size=4),
        "name": st.sampled_from(["ok", "../x", "a/b", ".h", "", "fine.name"]),
        "max_len": st.sampled_from([None, -1, 0, 1, 3]),
        "separator": st.sampled_from(["|", ";", "", "ab"]),
        "extra": st.sampled_from([None, "unknown_key", "label_values"]),
        "label": st.sampled_from(["label", "missing_col", "c1"]),
    }),
)
overrides = st.lists(st.sampled_from([
    ("trainer.lr", "-1"), ("trainer.lr", "1e10"), ("trainer.epochs", "0"), ("model.name", "nope"),
    ("model.embedding_dim", "abc"), ("trainer.batch_size", "1"), ("data.on_bad_row", "maybe"),
    ("data.on_bad_row", "skip"), ("nonsense.key", "1"), ("trainer.optimizer", "sgd"), ("model.mlp", "[0]"),
    ("seed", "-5"), ("trainer.monitor", "logloss"), ("model.numerical_encoder", "log_square"),
    ("model.numerical_encoder", "bucket_equal_freq"), ("trainer.max_grad_norm", "1.0"), ("model.name", "dcnv2"),
]), max_size=2)


def apply_rows(rows: list[list[str]], edits: list) -> list[list[str]]:  # noqa: ANN401
    rows = [list(r) for r in rows]
    for e in edits:
        kind = e[0]
        if kind == "set" and e[1] < len(rows) and e[2] < len(rows[e[1]]):
            rows[e[1]][e[2]] = e[3]
        elif kind == "drop_cell" and e[1] < len(rows) and rows[e[1]]:
            rows[e[1]].pop()
        elif kind == "add_cell" and e[1] < len(rows):
            rows[e[1]].append(e[2])
        elif kind == "blank_line" and e[1] < len(rows):
            rows.insert(e[1], [])
        elif kind == "label":  # every label one class, or a bad label value in every seventh row
            for i, r in enumerate(rows):
                if r and e[1] in ("all0", "all1"):
                    r[0] = e[1][-1]
                elif r and i % 7 == 3:
                    r[0] = e[1]
    return rows


def write_file(path: Path, text: str, byte_edits: list) -> Path:  # noqa: ANN401
    header_edit = next((e[1] for e in byte_edits if e[0] == "header"), None)
    if header_edit is not None:
        lines = text.split("\n")
        first = lines[0].split(",")
        if header_edit == "none":
            lines = lines[1:]
        elif header_edit == "dup":
            first[2] = first[1]
        elif header_edit == "rename_label":
            first[0] = "target_x"
        elif header_edit == "empty":
            first = [""]
        elif header_edit == "extra":
            first.append("zz")
        if header_edit != "none":
            lines[0] = ",".join(first)
        text = "\n".join(lines)
    data = text.encode("utf-8")
    for e in byte_edits:
        if e[0] == "truncate":
            data = data[: int(len(data) * e[1])]
        elif e[0] == "insert":
            k = int(len(data) * e[1])
            data = data[:k] + e[2] + data[k:]
        elif e[0] == "encode":
            if e[1] == "crlf":
                data = data.replace(b"\n", b"\r\n")
            elif e[1] == "bom":
                data = b"\xef\xbb\xbf" + data
            elif e[1] == "gzip_name":
                path = path.with_name(path.stem + ".csv.gz")  # not gzip inside: a lying extension
            else:
                data = data.decode("utf-8", errors="replace").encode(e[1], errors="replace")
    path.write_bytes(data)
    return path


def write_schema(folder: Path, s: dict | None, files: dict[str, str]) -> None:
    if s is None:
        return
    cols = [{"name": "label", "type": "label"}]
    for name, t in zip(HEADER[1:], s["types"], strict=True):
        col: dict = {"name": name, "type": t}
        if t == "multi_categorical":
            col["separator"] = s["separator"]
            if s["max_len"] is not None:
                col["max_len"] = s["max_len"]
        cols.append(col)
    doc: dict = {"name": s["name"], "label": s["label"], "files": files, "columns": cols}
    if s["extra"] == "unknown_key":
        doc["shuffle_me"] = True
    elif s["extra"] == "label_values":
        cols[0]["values"] = ["no", "yes"]
    import yaml

    (folder / "schema.yaml").write_text(yaml.safe_dump(doc))


def parquet_column(kind: str, n: int, rng: np.random.Generator) -> pa.Array:
    if kind == "floats_bad":
        return pa.array([float("nan"), float("inf"), 1e39, *rng.normal(size=n - 3)])
    if kind == "nulls":
        return pa.array([None] * n, pa.string())
    if kind == "bools":
        return pa.array([bool(i % 2) for i in range(n)])
    if kind == "lists":
        return pa.array([[1, 2]] * n)
    if kind == "ints":
        return pa.array(rng.integers(-5, 5, n))
    if kind == "binary":
        return pa.array([b"\x00\xff"] * n)
    return pa.array([f"s{i}" for i in range(n)])


class Outcome:
    """Checks one CLI result against the property; returns whether it succeeded."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def check(self, command: str, res) -> bool:  # noqa: ANN001
        exc = res.exception
        if exc is None or (isinstance(exc, SystemExit) and res.exit_code == 0):
            SEEN[f"{command}: exit 0"] += 1
            return True
        if isinstance(exc, SystemExit):  # a usage error of the command line (exit 2), printed by click
            assert res.exit_code == 2, (command, res.output)
            SEEN[f"{command}: usage error"] += 1
            return False
        assert isinstance(exc, RecnasError), (
            f"{command}: a traceback ({type(exc).__name__}: {exc}) instead of a clear error; "
            f"case in {self.folder}")
        msg = str(exc)
        assert "\n" not in msg and len(msg) < 1200, f"{command}: not one line: {msg!r}"
        places = (str(self.folder), "schema", "split", "key", "trainer.", "model.", "data.", "--")
        assert any(p in msg for p in places), f"{command}: the error names no place: {msg}"
        SEEN[f"{command}: clear error"] += 1
        return False


def _report() -> None:
    path = os.environ.get("RECNAS_FUZZ_REPORT")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(dict(SEEN)) + "\n")


@seed(int(SEED or 0))
@settings(max_examples=EXAMPLES, deadline=None, derandomize=SEED is None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fmt=st.sampled_from(["csv", "csv", "csv", "parquet", "libfm"]),
       split=st.sampled_from(["train", "valid", "test"]),
       rows=st.lists(row_edit, max_size=4),
       bytes_=st.lists(byte_edit, max_size=2),
       schema=schema_edit,
       sets=overrides,
       parquet_kind=st.sampled_from(["floats_bad", "nulls", "bools", "lists", "ints", "binary", "ok"]),
       depth=st.integers(0, SPREAD - 1),
       seed=st.integers(0, 3))
def test_bad_input_gives_a_clear_error_or_a_correct_result(fmt, split, rows, bytes_, schema, sets, parquet_kind,
                                                           depth, seed) -> None:  # noqa: ANN001
    SEEN["cases"] += 1
    if SEEN["cases"] % 500 == 0:
        _report()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        files = {}
        for name, n in (("train", 60), ("valid", 30), ("test", 30)):
            table = base_rows(n, seed + len(name))
            target = folder / f"{name}.{'libfm' if fmt == 'libfm' else 'csv' if fmt == 'csv' else 'parquet'}"
            if fmt == "csv":
                text = to_csv(HEADER, apply_rows(table, rows) if name == split else table)
                target = write_file(target, text, bytes_ if name == split else [])
            elif fmt == "parquet":
                cols = {h: [r[i] for r in table] for i, h in enumerate(HEADER)}
                t = pa.table({h: pa.array(v) for h, v in cols.items()})
                if name == split:
                    k = 1 + depth % 4
                    t = t.set_column(k, HEADER[k], parquet_column(parquet_kind, n, np.random.default_rng(seed)))
                pq.write_table(t, target)
                if name == split and any(e[0] == "truncate" for e in bytes_):
                    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
            else:
                lines = [f"{r[0]} {1 + int(r[1][1:])}:1 {10 + int(r[2][1:])}:1" for r in table]
                if name == split:
                    for e in rows:
                        if e[0] == "set" and e[1] < len(lines):
                            parts = lines[e[1]].split(" ")
                            parts[e[2] % len(parts)] = e[3].replace("\n", " ")
                            lines[e[1]] = " ".join(parts)
                target = write_file(target, "\n".join(lines) + "\n", [b for b in bytes_ if b[0] != "header"]
                                    if name == split else [])
            files[name] = target.name
        if fmt == "csv":
            write_schema(folder, schema, files)
        out = Outcome(folder)
        cache = ["--set", f"data.cache_dir={Path(tmp) / 'cache'}"]
        res = runner.invoke(app, ["data", "inspect", str(folder)])
        out.check("inspect", res)
        res = runner.invoke(app, ["data", "prepare", str(folder), "--cache-dir", str(Path(tmp) / "cache")])
        if not out.check("prepare", res) or depth > 3:  # a fifth of the cases train, predict and (some) search
            return
        extra = [x for k, v in sets for x in ("--set", f"{k}={v}")]
        run = Path(tmp) / "run"
        res = runner.invoke(app, ["train", "--data", str(folder), "--model", "deepfm", "--out", str(run), *TINY,
                                  *cache, *extra])
        if out.check("train", res):
            scores = Path(tmp) / "scores.csv"
            res = runner.invoke(app, ["predict", str(run), str(folder / files["test"]), "--out", str(scores)])
            if out.check("predict", res):
                p = pa.csv.read_csv(scores)["score"].to_numpy()
                assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1)), "scores not in [0, 1]"
                assert len(p) > 0
            else:
                assert not scores.exists(), "a failed predict left a scores file"
        if depth == 0:
            config = Path(__file__).resolve().parents[2] / "configs" / "autofis_synth.yaml"
            res = runner.invoke(app, ["search", str(config), "--data", str(folder), "--out", str(Path(tmp) / "s"),
                                      "--set", "search.epochs=1", *TINY, *cache, *extra])
            out.check("search", res)


def test_report_fuzz_counts() -> None:
    """Writes the tallies of the run (RECNAS_FUZZ_REPORT) and checks the fuzz reached training."""
    _report()
    if SEEN["cases"] >= 100:
        assert SEEN["train: exit 0"] > 0 and SEEN["prepare: clear error"] > 0, dict(SEEN)
