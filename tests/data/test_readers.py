from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recnas.data.processor import FeatureProcessor
from recnas.data.readers import ReadReport, read_chunks
from recnas.data.schema import FieldSpec, FieldType, Schema, SourceFormat
from recnas.data.source import open_dataset
from tests.conftest import write


def read_all(path: Path, schema: Schema, **kw) -> tuple[pa.Table, ReadReport]:
    report = ReadReport(path)
    table = pa.concat_tables(list(read_chunks(path, schema, report, **kw)))
    return table, report


def test_csv_with_header_reads_typed_columns(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "label,a,x,g\n1,u1,0.5,x|y\n0,u2,,y\n1,,3,\n")
    schema = Schema((FieldSpec("a", FieldType.CATEGORICAL), FieldSpec("x", FieldType.NUMERICAL),
                     FieldSpec("g", FieldType.MULTI_CATEGORICAL)))
    t, rep = read_all(p, schema)
    assert rep.rows == 3
    assert t["label"].to_pylist() == [1.0, 0.0, 1.0]
    assert t["a"].to_pylist() == ["u1", "u2", ""]
    assert t["x"].to_pylist() == [0.5, None, 3.0]
    assert t["g"].to_pylist() == ["x|y", "y", ""]


def test_tsv_without_header_uses_declared_column_order(tmp_path: Path) -> None:
    p = write(tmp_path / "d.tsv", "a1\t1\t2.5\nb2\t0\t1\n")
    fmt = SourceFormat(kind="csv", delimiter="\t", header=False, columns=("a", "label", "x"))
    schema = Schema((FieldSpec("a", FieldType.CATEGORICAL), FieldSpec("x", FieldType.NUMERICAL)), format=fmt)
    t, _ = read_all(p, schema)
    assert t["a"].to_pylist() == ["a1", "b2"]
    assert t["label"].to_pylist() == [1.0, 0.0]
    assert t["x"].to_pylist() == [2.5, 1.0]


def test_parquet_reader_with_chunks(tmp_path: Path) -> None:
    n = 1000
    rng = np.random.default_rng(0)
    table = pa.table({"label": rng.integers(0, 2, n), "a": rng.integers(0, 9, n).astype(str), "x": rng.random(n)})
    pq.write_table(table, tmp_path / "train.parquet")
    schema = Schema((FieldSpec("a", FieldType.CATEGORICAL), FieldSpec("x", FieldType.NUMERICAL)),
                    format=SourceFormat(kind="parquet"))
    chunks = list(read_chunks(tmp_path / "train.parquet", schema, chunk_rows=300))
    assert len(chunks) == 4
    t = pa.concat_tables(chunks)
    assert t["a"].to_pylist() == table["a"].to_pylist()
    np.testing.assert_allclose(t["x"].to_numpy(), table["x"].to_numpy())


def test_libfm_position_mode_maps_minus_one_to_zero(tmp_path: Path) -> None:
    p = write(tmp_path / "d.libfm", "-1 3:1 10:1\n1 4:1 12:1\n1 3:1 11:1\n")
    src = open_dataset(p)
    assert [f.name for f in src.schema.fields] == ["f1", "f2"]
    t, _ = read_all(p, src.schema)
    assert t["label"].to_pylist() == [0.0, 1.0, 1.0]
    assert t["f1"].to_pylist() == ["3", "4", "3"]
    assert t["f2"].to_pylist() == ["10", "12", "11"]


def test_libfm_ranges_mode_assigns_fields_by_index_range(tmp_path: Path) -> None:
    p = write(tmp_path / "d.libfm", "1 12:1 2:1\n0 1:1\n1 0:1 15:2.5\n")
    fmt = SourceFormat(kind="libfm", header=False, libfm_fields="ranges",
                       libfm_ranges=(("user", 0, 9), ("item", 10, 19)))
    schema = Schema((FieldSpec("user", FieldType.CATEGORICAL), FieldSpec("item", FieldType.CATEGORICAL)), format=fmt)
    t, _ = read_all(p, schema)
    assert t["user"].to_pylist() == ["2", "1", "0"]
    assert t["item"].to_pylist() == ["12", None, "15"]


def test_libfm_single_field_mode_gives_token_lists(tmp_path: Path) -> None:
    p = write(tmp_path / "d.libfm", "1 5:1 7:1 9:1\n0 2:1\n")
    src = open_dataset(p)
    assert [(f.name, f.type) for f in src.schema.fields] == [("features", FieldType.MULTI_CATEGORICAL)]
    proc = FeatureProcessor(src.schema)
    proc.fit(p)
    arrays, _ = proc.transform(p)
    assert arrays["mv_len"][:, 0].tolist() == [3, 1]


def criteo_line(label: int, nums: list[str], cats: list[str]) -> str:
    return "\t".join([str(label), *nums, *cats])


def test_criteo_rows_with_stripped_trailing_fields_are_padded(tmp_path: Path) -> None:
    nums = [str(i) for i in range(13)]
    cats = [f"{i:08x}" for i in range(26)]
    full = criteo_line(1, nums, cats)
    stripped = criteo_line(0, ["", "-1", *nums[2:]], cats[:23])  # last 3 empty fields stripped
    p = write(tmp_path / "train.txt", full + "\n" + stripped)  # no trailing newline
    src = open_dataset(p)
    assert src.schema.format.kind == "criteo"
    assert len(src.schema.numerical) == 13 and len(src.schema.categorical) == 26
    t, rep = read_all(p, src.schema)
    assert rep.rows == 2
    assert t["I1"].to_pylist() == [0.0, None]
    assert t["I2"].to_pylist() == [1.0, -1.0]
    assert t["C26"].to_pylist() == [cats[25], ""]
    assert t["C23"].to_pylist() == [cats[22], cats[22]]


def test_avazu_hour_is_expanded(tmp_path: Path) -> None:
    p = write(tmp_path / "train.csv",
              "id,click,hour,C1,site_id\n1,0,14102100,1005,abc\n2,1,14102523,1002,def\n")
    src = open_dataset(p)
    assert src.schema.format.kind == "avazu"
    t, _ = read_all(p, src.schema)
    assert t["hour"].to_pylist() == ["00", "23"]
    # 2014-10-21 is a Tuesday (1), 2014-10-25 a Saturday (5), Monday = 0
    assert t["weekday"].to_pylist() == ["1", "5"]
    assert "id" not in t.column_names and t["click"].to_pylist() == [0.0, 1.0]


def test_schema_yaml_folder_with_sequence_field(tmp_path: Path) -> None:
    for split in ("train", "valid", "test"):
        write(tmp_path / f"{split}.csv", "label,u,age,genres\n1,a,20,x|y\n0,b,30,y\n")
    write(tmp_path / "schema.yaml", """
name: toy
files: {train: train.csv, valid: valid.csv, test: test.csv}
format: {delimiter: ",", header: true, encoding: utf-8}
label: label
columns:
  - {name: label, type: label, values: [0, 1]}
  - {name: u, type: categorical, definition: "a user"}
  - {name: age, type: numerical, unit: years}
  - {name: genres, type: sequence, separator: "|"}
""")
    src = open_dataset(tmp_path)
    assert set(src.splits) == {"train", "valid", "test"}
    assert [f.type for f in src.schema.fields] == [
        FieldType.CATEGORICAL, FieldType.NUMERICAL, FieldType.MULTI_CATEGORICAL]


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "derived").is_dir(), reason="team data not beside the checkout")
@pytest.mark.parametrize("name", ["frappe_full", "frappe_vt", "ml100k"])
def test_derived_folders_load_as_they_are(name: str) -> None:
    src = open_dataset(SHARED / "derived" / name)
    assert set(src.splits) == {"train", "valid", "test"}
    proc = FeatureProcessor(src.schema)
    schema = proc.fit(src.train)
    if name == "frappe_full":
        assert len(schema.categorical) == 10
        assert schema["item"].cardinality - 2 == 4082
    if name == "ml100k":
        assert schema["genres"].type is FieldType.MULTI_CATEGORICAL
        assert schema["genres"].cardinality - 2 == 19


def test_gzip_csv_is_read_like_plain_csv(tmp_path: Path) -> None:
    import gzip

    with gzip.open(tmp_path / "train.csv.gz", "wt") as fh:
        fh.write("\ufefflabel,a\n1,x\n0,y\n")  # with a byte-order mark
    src = open_dataset(tmp_path / "train.csv.gz")
    t, _ = read_all(tmp_path / "train.csv.gz", src.schema)
    assert t["a"].to_pylist() == ["x", "y"] and t["label"].to_pylist() == [1.0, 0.0]


def test_parquet_list_of_int_multi_valued_column(tmp_path: Path) -> None:
    table = pa.table({"label": [1, 0], "g": pa.array([[1, 2], [3]], pa.list_(pa.int64()))})
    pq.write_table(table, tmp_path / "train.parquet")
    schema = Schema((FieldSpec("g", FieldType.MULTI_CATEGORICAL),), format=SourceFormat(kind="parquet"))
    proc = FeatureProcessor(schema)
    proc.fit(tmp_path / "train.parquet")
    arrays, _ = proc.transform(tmp_path / "train.parquet")
    assert arrays["mv_len"][:, 0].tolist() == [2, 1]


def test_criteo_padded_rows_are_counted(tmp_path: Path) -> None:
    full = criteo_line(1, ["1"] * 13, ["ab"] * 26)
    short = criteo_line(0, ["1"] * 13, ["ab"] * 20)
    p = write(tmp_path / "train.txt", full + "\n" + short + "\n")
    _, rep = read_all(p, open_dataset(p).schema)
    assert rep.padded == 1
