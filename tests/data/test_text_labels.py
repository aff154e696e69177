"""Text labels ('>50K' / '<=50K', 'yes' / 'no'): named positive values, unknown values named by row, and the
CLI's advice matching what each command accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from recnas.data.cache import prepare
from recnas.data.source import open_dataset
from recnas.errors import DataError, SchemaError
from recnas.experiment.cli import app
from tests.conftest import write

ROWS = {"train": [("u", ">50K"), ("v", "<=50K"), ("u", " >50K "), ("w", "<=50K"), ("v", "<=50K"), ("u", ">50K")],
        "valid": [("u", ">50K"), ("v", "<=50K")],
        "test": [("u", ">50K"), ("w", "<=50K"), ("v", "<=50K")]}


def census(folder: Path, rows: dict[str, list[tuple[str, str]]] = ROWS, schema: str | None = None) -> Path:
    """A small dataset with a text label `income`; optional schema.yaml text."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, rs in rows.items():
        write(folder / f"{split}.csv", "job,income\n" + "\n".join(f"{a},{y}" for a, y in rs) + "\n")
    if schema is not None:
        write(folder / "schema.yaml", schema)
    return folder


def labels(folder: Path, cache: Path, **kw) -> dict[str, list[float]]:
    ds = prepare(open_dataset(folder, **kw), cache)
    return {s: np.asarray(ds.splits[s]["y"]).tolist() for s in ("train", "valid", "test")}


def expected(split: str) -> list[float]:
    return [1.0 if y.strip() == ">50K" else 0.0 for _, y in ROWS[split]]


def test_positive_named_on_the_command_line(tmp_path: Path) -> None:
    """--positive: the train file's other values are the negatives; every split is coded by them."""
    d = census(tmp_path / "d")
    src = open_dataset(d, label="income", positive=[">50K"])
    assert src.schema.label_positive == (">50K",) and src.schema.label_negative == ("<=50K",)
    got = labels(d, tmp_path / "c", label="income", positive=[">50K"])
    assert got == {s: expected(s) for s in ROWS}


def test_values_in_schema_yaml(tmp_path: Path) -> None:
    """`values: [neg, pos]` with text, or `positive:` over several values, in schema.yaml."""
    two = ("label: income\ncolumns:\n  - {name: job, type: categorical}\n"
           "  - {name: income, type: label, values: ['<=50K', '>50K']}\n")
    assert labels(census(tmp_path / "a", schema=two), tmp_path / "c") == {s: expected(s) for s in ROWS}
    rows = {s: [(a, {">50K": "high", "<=50K": "low"}[y.strip()]) for a, y in rs] for s, rs in ROWS.items()}
    rows["test"].append(("w", "mid"))
    several = ("label: income\ncolumns:\n  - {name: job, type: categorical}\n"
               "  - {name: income, type: label, values: [low, mid, high], positive: [high, mid]}\n")
    got = labels(census(tmp_path / "b", rows, several), tmp_path / "c")
    assert got["test"] == [*expected("test"), 1.0]


@pytest.mark.parametrize("typo", [">50K.", "yes", "1"])
def test_unknown_label_value_names_the_row(tmp_path: Path, typo: str) -> None:
    """A value neither positive nor negative (the Adult test file's '>50K.') is an error, never a negative."""
    rows = {**ROWS, "test": [*ROWS["test"], ("u", typo)]}
    d = census(tmp_path / "d", rows)
    with pytest.raises(DataError, match=r"test\.csv line 5: label 'income' is .*neither a positive value"):
        labels(d, tmp_path / "c", label="income", positive=[">50K"])


def test_positive_checks(tmp_path: Path) -> None:
    d = census(tmp_path / "d")
    with pytest.raises(DataError, match=r"never takes the positive value\(s\) \['>50k'\]"):
        open_dataset(d, label="income", positive=[">50k"])
    with pytest.raises(DataError, match="every label value of 'income' is positive"):
        open_dataset(d, label="income", positive=[">50K", "<=50K"])
    bad = ("label: income\ncolumns:\n  - {name: job, type: categorical}\n"
           "  - {name: income, type: label, values: [a, b], positive: [c]}\n")
    with pytest.raises(SchemaError, match=r"positive value\(s\) \['c'\] are not among its values"):
        open_dataset(census(tmp_path / "e", schema=bad))
    on_field = ("label: income\ncolumns:\n  - {name: job, type: categorical, positive: [u]}\n"
                "  - {name: income, type: label}\n")
    with pytest.raises(SchemaError, match="only the label column takes"):
        open_dataset(census(tmp_path / "f", schema=on_field))


def test_text_label_without_positive_says_how(tmp_path: Path) -> None:
    d = census(tmp_path / "d")
    with pytest.raises(DataError, match=r"train\.csv line 2: label 'income' is '>50K'.*--positive VALUE"):
        labels(d, tmp_path / "c", label="income")


def test_parquet_text_and_bool_labels(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    for split, rs in ROWS.items():
        pq.write_table(pa.table({"job": [a for a, _ in rs], "income": [y for _, y in rs],
                                 "flag": [y.strip() == ">50K" for _, y in rs]}), d / f"{split}.parquet")
    assert labels(d, tmp_path / "c", label="income", positive=[">50K"]) == {s: expected(s) for s in ROWS}
    got = labels(d, tmp_path / "c2", label="flag")
    assert got == {s: expected(s) for s in ROWS}


def test_train_command_takes_label_and_positive(tmp_path: Path) -> None:
    """`recnas train` accepts the --label / --positive its own error message advises (and data.* via --set)."""
    d = census(tmp_path / "d")
    common = ["train", "--data", str(d), "--model", "lr", "--quiet", "--set", "trainer.epochs=1",
              "--set", f"data.cache_dir={tmp_path / 'c'}"]
    res = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "r1"), "--label", "income",
                                   "--positive", ">50K"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "r2"), "--set", "data.label=income",
                                   "--set", "data.positive=['>50K']"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("args", [["train", "--bogus"], ["search"], ["data", "inspect", "/no/such/place"]])
def test_every_error_line_has_one_form(args: list[str]) -> None:
    """Usage errors print `error: ...` as recnas's own errors do (no 'Error' box or 'Error:' line)."""
    res = subprocess.run([sys.executable, "-m", "recnas", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Error" not in res.stderr
