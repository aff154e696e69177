"""Bad input named by its cause: encodings, binary files, quotes over line ends, values out of range, runaway lists,
one-class splits, unsafe names and cache paths that are files (each found by the reliability issue)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recnas.data.cache import prepare
from recnas.data.infer import infer_schema
from recnas.data.processor import FeatureProcessor
from recnas.data.readers import read_chunks
from recnas.data.schema import FieldSpec, FieldType, Schema, SourceFormat
from recnas.data.source import open_dataset
from recnas.errors import CacheError, DataError, SchemaError
from tests.conftest import write

SCHEMA = Schema((FieldSpec("a", FieldType.CATEGORICAL), FieldSpec("x", FieldType.NUMERICAL)))
GOOD = "label,a,x\n1,u,1.5\n0,v,2.5\n1,w,3.5\n0,u,4.5\n"


def consume(path: Path, schema: Schema = SCHEMA, **kw) -> None:  # noqa: ANN003
    for _ in read_chunks(path, schema, **kw):
        pass


@pytest.mark.parametrize(("encoding", "name"), [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_a_utf16_or_utf32_file_is_named_as_such(tmp_path: Path, encoding: str, name: str) -> None:
    p = tmp_path / "d.csv"
    p.write_bytes(GOOD.encode(encoding))
    with pytest.raises(DataError, match=rf"d\.csv: the file is {name} text; .*UTF-8") as e:
        consume(p)
    assert len(str(e.value)) < 300


def test_a_binary_file_is_named_as_binary_not_as_missing_columns(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_bytes(b"label,a,x\n" + bytes(range(256)) * 20)
    with pytest.raises(DataError, match=r"d\.csv: holds binary data \(a NUL byte at byte \d+\)"):
        consume(p)
    with pytest.raises(DataError, match="binary data"):
        infer_schema(p)


def test_latin1_text_is_named_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_bytes("label,a,x\n1,caf\u00e9,1\n0,v,2\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"d\.csv: is not UTF-8 text \(byte 15"):
        consume(p)


@pytest.mark.parametrize("on_bad_row", ["error", "skip"])
def test_a_quote_left_open_over_a_line_end_is_refused_not_fused(tmp_path: Path, on_bad_row: str) -> None:
    p = write(tmp_path / "d.csv", 'label,a,x\n1,u,1\n0,"v,2\n1,w,3\n0,"u",4\n')
    with pytest.raises(DataError, match=r"d\.csv line 3: column 'a' holds a quoted value that runs over the end"):
        consume(p, on_bad_row=on_bad_row)


@pytest.mark.parametrize(("value", "where"), [("1e39", "line 3"), ("-3.5e38", "line 3"), ("1e300", "line 3")])
def test_a_number_beyond_float32_is_named_not_blamed_on_the_lr(tmp_path: Path, value: str, where: str) -> None:
    p = write(tmp_path / "d.csv", f"label,a,x\n1,u,1\n0,v,{value}\n1,w,3\n")
    with pytest.raises(DataError, match=rf"d\.csv {where}: field 'x' is .*beyond the float32 range"):
        consume(p)


def _dataset(root: Path, train: str, valid: str = GOOD, test: str = GOOD) -> Path:
    root.mkdir(parents=True)
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        write(root / f"{split}.csv", text)
    return root


def test_a_valid_value_far_outside_the_train_range_is_named_before_training(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "d", GOOD, valid="label,a,x\n1,u,1\n0,v,2e30\n")
    with pytest.raises(DataError, match=r"valid\.csv line 3: field 'x' is 2e\+30, more than 1e\+06 times the train"):
        prepare(open_dataset(ds), tmp_path / "cache")


def test_a_runaway_list_neither_grows_the_vocabulary_nor_passes_unsaid(tmp_path: Path) -> None:
    rows = [f"{i % 2},{'|'.join(str(k) for k in range(i % 3 + 1))}" for i in range(40)]
    rows[5] = "1," + "|".join(f"t{k}" for k in range(5000))  # one row of 5,000 distinct values
    schema = Schema((FieldSpec("m", FieldType.MULTI_CATEGORICAL, separator="|"),))
    p = write(tmp_path / "train.csv", "label,m\n" + "\n".join(rows) + "\n")
    proc = FeatureProcessor(schema)
    fitted = proc.fit(p)
    assert fitted["m"].max_len == 64
    assert fitted["m"].cardinality < 64 + 10  # only the first 64 values of that row took ids
    assert len(proc.notes) == 1 and "line 7: field 'm' lists 5,000 values, more than its max_len 64" in proc.notes[0]
    capped = FeatureProcessor(Schema((FieldSpec("m", FieldType.MULTI_CATEGORICAL, separator="|", max_len=3),)))
    assert capped.fit(p)["m"].cardinality < 10 and "max_len 3" in capped.notes[0]


@pytest.mark.parametrize(("split", "label"), [("train", 1), ("train", 0), ("test", 1)])
def test_a_train_or_test_split_of_one_class_is_refused(synth_dir: Path, tmp_path: Path, split: str,
                                                       label: int) -> None:
    from recnas.experiment.config import load_config
    from recnas.experiment.run import load_splits

    d = tmp_path / "d"
    shutil.copytree(synth_dir, d)
    lines = (d / f"{split}.csv").read_text().splitlines()
    (d / f"{split}.csv").write_text("\n".join([lines[0], *(f"{label}{ln[1:]}" for ln in lines[1:])]) + "\n")
    cfg = load_config(None, [f"data.path={d}", f"data.cache_dir={tmp_path / 'cache'}"])
    with pytest.raises(DataError, match=rf"every label of the {split} split is {label}"):
        load_splits(cfg)


@pytest.mark.parametrize("name", ["../../escaped", "a/b", ".hidden", ""])
def test_a_schema_name_that_would_leave_the_cache_is_refused(tmp_path: Path, name: str) -> None:
    d = _dataset(tmp_path / "d", GOOD)
    write(d / "schema.yaml", f"name: '{name}'\nlabel: label\ncolumns:\n- {{name: label, type: label}}\n"
                             "- {name: a, type: categorical}\n- {name: x, type: numerical}\n")
    if name == "":  # an empty name falls back to the folder's
        prepare(open_dataset(d), tmp_path / "cache")
        return
    with pytest.raises(SchemaError, match=r"schema\.yaml: schema name .* would name a folder outside the cache"):
        open_dataset(d)
    assert not (tmp_path / "escaped").exists()


def test_a_cache_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    d = _dataset(tmp_path / "d", GOOD)
    write(tmp_path / "afile", "x")
    with pytest.raises(CacheError, match=r"afile: the cache folder is a file"):
        prepare(open_dataset(d), tmp_path / "afile")
    with pytest.raises(CacheError, match=r"a part of the cache path is a file"):
        prepare(open_dataset(d), tmp_path / "afile" / "sub")
    ds = prepare(open_dataset(d), tmp_path / "cache")
    shutil.rmtree(ds.path)
    write(ds.path, "not a cache")
    with pytest.raises(CacheError, match="a file sits where this dataset's cache goes"):
        prepare(open_dataset(d), tmp_path / "cache")


def test_a_csv_read_as_libfm_says_it_is_not_libfm(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", GOOD)
    with pytest.raises(DataError, match=r"d\.csv line 1: not a libFM line"):
        infer_schema(p, SourceFormat(kind="libfm", delimiter=" ", header=False))


def test_a_header_naming_a_column_twice_is_named(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "label,a,a\n1,u,1.5\n0,v,2.5\n")
    with pytest.raises(DataError, match=r"d\.csv line 1: the header names column\(s\) \['a'\] more than once"):
        infer_schema(p)


def test_a_parquet_list_column_is_inferred_multi_valued_and_other_nested_types_are_named(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"label": [1, 0, 1], "g": pa.array([[1, 2], [3], []], pa.list_(pa.int64())),
                             "s": pa.array([{"x": 1}] * 3)}), tmp_path / "d.parquet")
    with pytest.raises(DataError, match=r"d\.parquet: column 's' has Parquet type struct"):
        infer_schema(tmp_path / "d.parquet")
    pq.write_table(pa.table({"label": [1, 0, 1], "g": pa.array([[1, 2], [3], []], pa.list_(pa.int64()))}),
                   tmp_path / "e.parquet")
    assert infer_schema(tmp_path / "e.parquet").schema["g"].type is FieldType.MULTI_CATEGORICAL
    wrong = Schema((FieldSpec("g", FieldType.CATEGORICAL),), format=SourceFormat(kind="parquet"))
    with pytest.raises(DataError, match=r"column 'g' has Parquet type list.*only as a multi-valued field"):
        consume(tmp_path / "e.parquet", wrong)


def test_a_batch_of_one_row_is_refused_in_the_config() -> None:
    from recnas.errors import ConfigError
    from recnas.experiment.config import load_config

    for key in ("trainer.batch_size=1", "search.batch_size=1"):
        with pytest.raises(ConfigError, match="batch_size"):
            load_config(None, ["search.method=autofis", key])


def test_a_file_starting_with_an_empty_line_is_inferred_from_its_first_row(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "\n0,a3,0.12\n1,a1,0.5\n0,a2,1.5\n")
    assert [f.type for f in infer_schema(p).schema.fields] == [FieldType.CATEGORICAL, FieldType.NUMERICAL]


def test_a_runaway_cell_is_quoted_short_in_the_message(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "label,a,x\n" + "t|" * 3000 + ",u,1.5\n0,v,2.5\n")
    with pytest.raises(DataError, match=r"line 2: label 'label' is 't\|t\|.*\.\.\.', expected") as e:
        consume(p)
    assert len(str(e.value)) < 300
