"""Every kind of bad input gets one clear error naming the file, row or key (or is counted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recnas.data.cache import load_prepared, prepare
from recnas.data.processor import FeatureProcessor
from recnas.data.readers import ReadReport, read_chunks
from recnas.data.schema import FieldSpec, FieldType, Schema
from recnas.data.source import open_dataset
from recnas.errors import CacheError, DataError, SchemaError
from tests.conftest import write

SCHEMA = Schema((FieldSpec("a", FieldType.CATEGORICAL), FieldSpec("x", FieldType.NUMERICAL)))


def consume(path: Path, schema: Schema = SCHEMA, **kw) -> ReadReport:
    report = ReadReport(path)
    for _ in read_chunks(path, schema, report, **kw):
        pass
    return report


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        consume(tmp_path / "nope.csv")


def test_empty_file(tmp_path: Path) -> None:
    p = write(tmp_path / "empty.csv", "")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        consume(p)


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    p = write(tmp_path / "h.csv", "label,a,x\n")
    with pytest.raises(DataError, match="no data rows"):
        consume(p)


def test_wrong_field_count_rejected_with_line_number(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "label,a,x\n1,u,1\n0,u\n1,v,2\n")
    with pytest.raises(DataError, match=r"d\.csv line 3: expected 3 fields, found 2"):
        consume(p)


def test_wrong_field_count_skipped_and_counted(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "label,a,x\n1,u,1\n0,u\n1,v,2,9\n0,w,3\n")
    rep = consume(p, on_bad_row="skip")
    assert rep.rows == 2 and rep.skipped == 2
    assert rep.skipped_lines == [3, 4]


def test_row_number_after_skipped_rows_is_the_physical_line(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "label,a,x\n1,u,1\n0,u\n1,v,oops\n")
    with pytest.raises(DataError, match=r"d\.csv line 4: field 'x' expects a number but holds 'oops'"):
        consume(p, on_bad_row="skip")


def test_non_numeric_value_in_numerical_field(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "label,a,x\n1,u,1\n0,u,abc\n")
    with pytest.raises(DataError, match=r"line 3: field 'x' expects a number but holds 'abc'"):
        consume(p)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity"])
def test_nan_and_inf_are_rejected(tmp_path: Path, value: str) -> None:
    p = write(tmp_path / "d.csv", f"label,a,x\n1,u,1\n0,u,{value}\n")
    with pytest.raises(DataError, match=r"line 3: field 'x' is .*NaN and infinity are not allowed"):
        consume(p)


@pytest.mark.parametrize("label", ["2", "-1", "0.5", "yes"])
def test_label_outside_zero_one(tmp_path: Path, label: str) -> None:
    p = write(tmp_path / "d.csv", f"label,a,x\n1,u,1\n{label},u,2\n")
    with pytest.raises(DataError, match=r"line 3: label 'label'"):
        consume(p)


def test_libfm_label_outside_plus_minus_one(tmp_path: Path) -> None:
    p = write(tmp_path / "d.libfm", "1 1:1 5:1\n2 2:1 6:1\n")
    src = open_dataset(p)
    with pytest.raises(DataError, match=r"d\.libfm line 2: label 'label' is '2'"):
        consume(p, src.schema)


def test_libfm_malformed_token(tmp_path: Path) -> None:
    p = write(tmp_path / "d.libfm", "1 1:1 5:1\n0 2:1 x6\n")
    src = open_dataset(p)
    with pytest.raises(DataError, match=r"line 2: token 'x6' is not `index:value`"):
        consume(p, src.schema)


def test_criteo_row_with_too_many_fields(tmp_path: Path) -> None:
    good = "\t".join(["1"] + ["1"] * 13 + ["ab"] * 26)
    p = write(tmp_path / "t.txt", good + "\n" + good + "\textra\n")
    src = open_dataset(p)
    with pytest.raises(DataError, match=r"t\.txt line 2: expected up to 40"):
        consume(p, src.schema)
    assert consume(p, src.schema, on_bad_row="skip").skipped == 1


def test_schema_names_a_missing_column(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "label,a\n1,u\n")
    with pytest.raises(SchemaError, match=r"names column\(s\) \['x'\] that the file does not have"):
        consume(p)


def test_schema_yaml_unknown_key(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", "label,a\n1,u\n")
    write(tmp_path / "schema.yaml", "columns:\n  - {name: a, type: categorical, seperator: '|'}\n")
    with pytest.raises(SchemaError, match=r"schema\.yaml: unknown key 'columns\.0\.seperator'"):
        open_dataset(tmp_path)


def test_schema_yaml_unknown_type(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", "label,a\n1,u\n")
    write(tmp_path / "schema.yaml", "columns:\n  - {name: a, type: categorial}\n")
    with pytest.raises(SchemaError, match=r"columns\.0 \('a'\) has type 'categorial'"):
        open_dataset(tmp_path)


def test_unseen_category_goes_to_oov_and_is_counted(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", "label,a,x\n1,u,1\n0,v,2\n1,u,3\n")
    test = write(tmp_path / "test.csv", "label,a,x\n1,u,1\n0,zz,2\n1,yy,3\n")
    proc = FeatureProcessor(SCHEMA)
    proc.fit(train)
    arrays, rep = proc.transform(test)
    assert arrays["cat"][:, 0].tolist() == [2, 1, 1]
    assert rep.oov["a"] == 2


def make_folder(tmp_path: Path) -> Path:
    d = tmp_path / "ds"
    d.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        rows = "\n".join(f"{rng.integers(0, 2)},{rng.integers(0, 5)},{rng.random():.3f}" for _ in range(50))
        write(d / f"{split}.csv", "label,a,x\n" + rows + "\n")
    return d


def test_corrupt_cache_is_detected_and_rebuilt(tmp_path: Path) -> None:
    d = make_folder(tmp_path)
    first = prepare(open_dataset(d, schema=SCHEMA), tmp_path / "cache")
    expected = np.array(first.splits["train"]["cat"])
    arr_file = first.path / "train" / "cat.bin"
    raw = bytearray(arr_file.read_bytes())
    raw[0] ^= 0xFF  # same size, different content: only the checksum can tell
    arr_file.write_bytes(bytes(raw))
    with pytest.raises(CacheError, match="checksum mismatch"):
        load_prepared(first.path, verify="full")
    again = prepare(open_dataset(d, schema=SCHEMA), tmp_path / "cache")
    assert not again.reused
    assert any("rebuilding" in n for n in again.notes)
    np.testing.assert_array_equal(np.array(again.splits["train"]["cat"]), expected)


def test_truncated_cache_is_detected(tmp_path: Path) -> None:
    d = make_folder(tmp_path)
    first = prepare(open_dataset(d, schema=SCHEMA), tmp_path / "cache")
    f = first.path / "valid" / "num.bin"
    f.write_bytes(f.read_bytes()[:-4])
    with pytest.raises(CacheError, match=r"num\.bin: expected \d+ bytes"):
        load_prepared(first.path)


def test_stale_cache_gets_a_new_key_when_the_source_changes(tmp_path: Path) -> None:
    d = make_folder(tmp_path)
    first = prepare(open_dataset(d, schema=SCHEMA), tmp_path / "cache")
    with open(d / "train.csv", "a") as fh:
        fh.write("1,9,0.5\n")
    second = prepare(open_dataset(d, schema=SCHEMA), tmp_path / "cache")
    assert second.path != first.path and not second.reused
    assert second.rows("train") == first.rows("train") + 1


def test_cli_prints_one_line_error_without_traceback(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "label,a,x\n1,u,1.5\n0,u,nan\n")
    res = subprocess.run([sys.executable, "-m", "recnas", "data", "inspect", str(p)],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "line 3" in lines[0]


def test_avazu_schema_naming_a_missing_column(tmp_path: Path) -> None:
    from recnas.data.readers.avazu import avazu_schema

    p = write(tmp_path / "train.csv", "id,click,hour,C1\n1,0,14102100,5\n")
    schema = avazu_schema(p)
    extra = Schema((*schema.fields, FieldSpec("site_id", FieldType.CATEGORICAL)), label="click",
                   format=schema.format)
    with pytest.raises(SchemaError, match=r"\['site_id'\]"):
        consume(p, extra)


def test_overlapping_libfm_ranges_are_refused(tmp_path: Path) -> None:
    from recnas.data.schema import SourceFormat

    p = write(tmp_path / "d.libfm", "1 1:1 12:1\n")
    fmt = SourceFormat(kind="libfm", header=False, libfm_fields="ranges", libfm_ranges=(("u", 0, 10), ("i", 10, 19)))
    schema = Schema((FieldSpec("u", FieldType.CATEGORICAL), FieldSpec("i", FieldType.CATEGORICAL)), format=fmt)
    with pytest.raises(SchemaError, match="overlaps"):
        consume(p, schema)


def test_blank_libfm_line_is_skipped_when_asked(tmp_path: Path) -> None:
    p = write(tmp_path / "d.libfm", "1 1:1 5:1\n\n0 2:1 6:1\n")
    schema = open_dataset(p).schema
    with pytest.raises(DataError, match="line 2: empty line"):
        consume(p, schema)
    rep = consume(p, schema, on_bad_row="skip")
    assert rep.rows == 2 and rep.skipped_lines == [2]


def test_label_must_match_declared_values(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "label,a\n2,u\n1,v\n")
    schema = Schema((FieldSpec("a", FieldType.CATEGORICAL),), label_values=(1.0, 2.0))
    report = consume(p, schema)
    assert report.rows == 2
    with pytest.raises(DataError, match="expected 1 or 2"):
        consume(write(tmp_path / "e.csv", "label,a\n0,u\n"), schema)


def test_bad_on_bad_row_option(tmp_path: Path) -> None:
    from recnas.errors import ConfigError

    p = write(tmp_path / "d.csv", "label,a,x\n1,u,1\n")
    with pytest.raises(ConfigError, match="--on-bad-row must be"):
        consume(p, on_bad_row="ignore")


def test_damaged_schema_in_the_cache_is_rebuilt(tmp_path: Path) -> None:
    d = make_folder(tmp_path)
    first = prepare(open_dataset(d, schema=SCHEMA), tmp_path / "cache")
    (first.path / "schema.json").write_text("{not json")
    again = prepare(open_dataset(d, schema=SCHEMA), tmp_path / "cache")
    assert not again.reused and any("rebuilding" in n for n in again.notes)
    assert again.schema == first.schema
