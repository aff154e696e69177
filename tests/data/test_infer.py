from __future__ import annotations

from pathlib import Path

from recnas.data.infer import infer_schema, sniff_format
from recnas.data.schema import FieldType
from tests.conftest import write


def test_inference_rules_and_notes(tmp_path: Path) -> None:
    rows = ["label,user_id,price,day,genres,city"]
    for i in range(300):
        rows.append(f"{i % 2},{i},{i * 0.5:.2f},{i % 7},{'a|b' if i % 3 else 'c'},{'paris' if i % 2 else 'rome'}")
    p = write(tmp_path / "d.csv", "\n".join(rows) + "\n")
    inf = infer_schema(p)
    types = {f.name: f.type for f in inf.schema.fields}
    assert types == {
        "user_id": FieldType.CATEGORICAL,  # integer ids
        "price": FieldType.NUMERICAL,  # decimals
        "day": FieldType.CATEGORICAL,  # few distinct integers
        "genres": FieldType.MULTI_CATEGORICAL,  # list separator in most rows
        "city": FieldType.CATEGORICAL,  # text
    }
    assert inf.schema.label == "label" and inf.schema.inferred
    assert any("day: categorical (integers, 7 distinct)" in n for n in inf.notes)


def test_many_distinct_integers_become_numerical(tmp_path: Path) -> None:
    rows = ["click,count"] + [f"{i % 2},{i * 37 % 1000}" for i in range(600)]
    p = write(tmp_path / "d.csv", "\n".join(rows) + "\n")
    inf = infer_schema(p)
    assert inf.schema.label == "click"
    assert inf.schema["count"].type is FieldType.NUMERICAL


def test_criteo_column_names_in_a_csv(tmp_path: Path) -> None:
    names = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    row = ["1"] + ["3"] * 13 + ["ab12"] * 26
    p = write(tmp_path / "c.csv", ",".join(names) + "\n" + ",".join(row) + "\n")
    s = infer_schema(p).schema
    assert len(s.numerical) == 13 and len(s.categorical) == 26


def test_sniffing_formats(tmp_path: Path) -> None:
    assert sniff_format(write(tmp_path / "a.txt", "1 3:1 9:1\n")).kind == "libfm"
    assert sniff_format(write(tmp_path / "b.tsv", "label\tx\n1\t2\n")).delimiter == "\t"
    assert sniff_format(write(tmp_path / "c.csv", "1,2,3\n")).header is False
    assert sniff_format(write(tmp_path / "d.csv", "id,click,hour,C1\n1,0,14102100,5\n")).kind == "avazu"
