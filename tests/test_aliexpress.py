"""The AliExpress loader and protocol, on files in the exact published format.

`write_aliexpress` writes `AliExpress_<CC>/train.csv` and `test.csv` as
MTReclib's `data/preprocess.py` does (pandas `to_csv` without the index: the
header `search_id, categorical_1..16, numerical_1..63, click, conversion`,
integer codes, numerics in [0, 1], 0/1 labels), with planted signal: the
click rate rises with `categorical_1`'s code and `numerical_1` and falls with
`numerical_2`; a click converts mostly when `categorical_2` is 2, rarely when
it is 0.
"""

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtl_tf.config import Config
from mtl_tf.data.aliexpress import (
    ALIEXPRESS_SCHEMA,
    ALIEXPRESS_TASKS,
    COLUMNS,
    COUNTRIES,
    aliexpress_files,
    aliexpress_splits,
    load_aliexpress,
    load_aliexpress_source,
    read_aliexpress_file,
)
from mtl_tf.experiment import prepare_data
from mtl_tf.schema import Schema

CATEGORICAL = [f"categorical_{i}" for i in range(1, 17)]
NUMERICAL = [f"numerical_{i}" for i in range(1, 64)]
# Codes per categorical column (the published ones are small integer codes).
CARDINALITY = (8, 3, 5, 3, 30, 5, 50, 10, 8, 2, 2, 2, 2, 2, 2, 2)
CLICK_EFFECT = np.linspace(-3.0, 3.0, 8)  # by categorical_1's code
BUY_EFFECT = np.array([-4.0, 0.0, 4.0])  # by categorical_2's code, given a click


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def aliexpress_rows(rows: int, seed: int = 0, part: int = 0) -> pd.DataFrame:
    """The rows `write_aliexpress` writes for one file (`part` 0: train, 1: test),
    in file order with the published columns."""
    rng = np.random.default_rng((seed, part))
    frame = {"search_id": np.sort(rng.integers(0, max(rows // 8, 1), rows))}
    for name, size in zip(CATEGORICAL, CARDINALITY):
        frame[name] = rng.integers(0, size, rows)
    numbers = rng.random((rows, len(NUMERICAL)))
    numbers[:, 30:50] *= rng.random((rows, 20)) < 0.3  # mostly 0, as published
    numbers = np.round(numbers, 6)
    frame.update(zip(NUMERICAL, numbers.T))
    for name in ("numerical_57", "numerical_58", "numerical_59"):
        frame[name] = (rng.random(rows) < 0.1).astype(np.int64)  # written as "0"
    logit = (CLICK_EFFECT[frame["categorical_1"]] + 8.0 * (numbers[:, 0] - 0.5)
             - 8.0 * (numbers[:, 1] - 0.5) - 1.0)
    click = rng.random(rows) < _sigmoid(logit)
    buys = rng.random(rows) < _sigmoid(BUY_EFFECT[frame["categorical_2"]] - 0.3)
    frame["click"] = click.astype(np.int64)
    frame["conversion"] = (click & buys).astype(np.int64)
    return pd.DataFrame(frame)


def write_aliexpress(directory: Path, country: str = "NL", train_rows: int = 3000,
                     test_rows: int = 1500, *, gz: bool = False, seed: int = 0
                     ) -> Path:
    """Writes `directory/AliExpress_<country>/train.csv` and `test.csv` (or
    `.csv.gz`) in the published format with planted signal (see the module
    docstring); the rows are `aliexpress_rows(train_rows, seed, 0)` and
    `aliexpress_rows(test_rows, seed, 1)`. Returns `directory`, the parent.

    About 43% of rows are clicks and 20% purchases; 3000 / 1500 rows are
    learnable in 2 epochs (click and purchase AUCs well above 0.5).
    """
    folder = directory / f"AliExpress_{country}"
    folder.mkdir(parents=True, exist_ok=True)
    for part, (name, rows) in enumerate((("train.csv", train_rows),
                                         ("test.csv", test_rows))):
        path = folder / (name + (".gz" if gz else ""))
        aliexpress_rows(rows, seed, part).to_csv(path, index=False)
    return directory


def _file_rows(data, name: str) -> pd.DataFrame:
    files = data.interactions["_file"].map(lambda f: Path(f).name)
    return data.interactions[files == name].reset_index(drop=True)


def _edit(path: Path, line: int, column: str, value: str) -> None:
    """Sets one field of line `line` (1-based, the header is line 1)."""
    lines = path.read_text().splitlines()
    fields = lines[line - 1].split(",")
    fields[COLUMNS.index(column)] = value
    lines[line - 1] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")


def test_the_raw_files_parse_into_the_built_in_schema(tmp_path):
    parent = write_aliexpress(tmp_path, train_rows=300, test_rows=200)
    text = (parent / "AliExpress_NL" / "train.csv").read_text().splitlines()
    assert text[0].startswith("search_id,categorical_1,categorical_2,")
    assert text[0].endswith(",numerical_62,numerical_63,click,conversion")
    assert len(text[0].split(",")) == 82 and len(text) == 301
    data = load_aliexpress(parent)
    assert len(data.interactions) == 500
    assert data.users is None and data.items is None
    assert data.report.rows_read == 500 and data.report.rows_kept == 500
    for name, part, rows in (("train.csv", 0, 300), ("test.csv", 1, 200)):
        loaded, written = _file_rows(data, name), aliexpress_rows(rows, 0, part)
        assert len(loaded) == rows
        assert loaded["click"].mean() == pytest.approx(written["click"].mean())
        assert loaded["purchase"].mean() == pytest.approx(
            written["conversion"].mean())
        assert loaded["_line"].tolist() == list(range(2, rows + 2))
    train = aliexpress_rows(300, 0, 0)
    assert 0.2 < train["click"].mean() < 0.5 and 0.05 < train["conversion"].mean()
    rows = data.interactions
    assert (rows["purchase"] <= rows["click"]).all()
    assert "conversion" not in rows.columns
    assert rows["categorical_5"].dtype == np.int64
    assert rows["categorical_5"].iloc[7] == train["categorical_5"].iloc[7]
    assert rows["numerical_4"].iloc[3] == pytest.approx(train["numerical_4"].iloc[3],
                                                        abs=1e-6)
    assert rows["numerical_58"].iloc[0] == train["numerical_58"].iloc[0]
    assert rows["search_id"].iloc[9] == train["search_id"].iloc[9]
    assert rows["_file"].iloc[0].endswith("AliExpress_NL/train.csv")
    assert rows["_file"].iloc[300].endswith("AliExpress_NL/test.csv")
    assert set(rows["click"].unique()) == {0.0, 1.0}


def test_the_schema_and_tasks():
    schema = ALIEXPRESS_SCHEMA
    assert schema.user_id is None and schema.item_id is None
    assert schema.names == CATEGORICAL + NUMERICAL
    assert all(f.side == "user" for f in schema.features)
    kinds = {(f.kind, f.dtype, f.transform) for f in schema.features}
    assert kinds == {("categorical", "int64", "standardize"),
                     ("numeric", "float32", "standardize")}
    assert [(t.name, t.label, t.depends_on) for t in ALIEXPRESS_TASKS] == [
        ("click", "click", ""), ("purchase", "purchase", "click")]
    assert COUNTRIES == ("NL", "ES", "FR", "US")


def test_the_country_folder_or_its_parent(tmp_path):
    write_aliexpress(tmp_path, "NL", 40, 20)
    write_aliexpress(tmp_path, "ES", 30, 10, seed=5)
    by_parent = load_aliexpress(tmp_path).interactions
    by_folder = load_aliexpress(tmp_path / "AliExpress_NL").interactions
    pd.testing.assert_frame_equal(by_parent, by_folder)
    spain = load_aliexpress(tmp_path, country="ES")
    assert len(spain.interactions) == 40 and spain.name == "aliexpress-ES"
    assert spain.interactions["_file"].str.contains("AliExpress_ES").all()
    paths = aliexpress_files(tmp_path / "AliExpress_ES", "ES")
    assert paths == {"train": tmp_path / "AliExpress_ES" / "train.csv",
                     "test": tmp_path / "AliExpress_ES" / "test.csv"}
    with pytest.raises(ValueError, match=r"AliExpress_ES is the folder of country "
                       r"'ES', but country='NL'"):
        load_aliexpress(tmp_path / "AliExpress_ES", "NL")


def test_a_schema_subset_reads_only_its_columns(tmp_path):
    write_aliexpress(tmp_path, train_rows=30, test_rows=10)
    schema = Schema(ALIEXPRESS_SCHEMA.features[:2] + ALIEXPRESS_SCHEMA.features[-1:])
    data = load_aliexpress(tmp_path, schema=schema)
    features = [c for c in data.interactions.columns if c.startswith(
        ("categorical", "numerical"))]
    assert features == ["categorical_1", "categorical_2", "numerical_63"]
    source = load_aliexpress_source(tmp_path, ALIEXPRESS_SCHEMA, {})
    assert len(source.interactions) == 40
    with pytest.raises(ValueError, match="data.source='aliexpress' needs a directory"):
        load_aliexpress_source("", ALIEXPRESS_SCHEMA, {})


def test_the_protocol_holds_out_part_of_the_train_file(tmp_path):
    data = load_aliexpress(write_aliexpress(tmp_path, train_rows=300, test_rows=200))
    splits = aliexpress_splits(data, seed=42)
    assert splits.sizes() == {"train": 270, "validation": 30, "test": 200}
    for name in ("train", "validation"):
        assert getattr(splits, name)["_file"].str.endswith("train.csv").all()
    assert splits.test["_file"].str.endswith("test.csv").all()
    assert splits.test["_line"].tolist() == list(range(2, 202))  # whole, in order
    train, validation = set(splits.train["_line"]), set(splits.validation["_line"])
    assert not train & validation and len(train | validation) == 300
    again = aliexpress_splits(data, seed=42)
    assert again.validation["_line"].tolist() == splits.validation["_line"].tolist()
    other = aliexpress_splits(data, seed=7)
    assert set(other.validation["_line"]) != validation
    assert aliexpress_splits(data, validation_fraction=0.25).sizes()["validation"] == 75
    with pytest.raises(ValueError, match="have no '_file' column"):
        aliexpress_splits(data.with_interactions(
            data.interactions.drop(columns=["_file"])))


def test_gzipped_files_and_max_rows(tmp_path):
    write_aliexpress(tmp_path / "gz", train_rows=120, test_rows=80, gz=True)
    write_aliexpress(tmp_path / "plain", train_rows=120, test_rows=80)
    assert gzip.open(tmp_path / "gz" / "AliExpress_NL" / "test.csv.gz", "rt"
                     ).readline().startswith("search_id,categorical_1,")
    packed = load_aliexpress(tmp_path / "gz")
    plain = load_aliexpress(tmp_path / "plain")
    assert packed.interactions["_file"].iloc[0].endswith("train.csv.gz")
    pd.testing.assert_frame_equal(packed.interactions.drop(columns=["_file"]),
                                  plain.interactions.drop(columns=["_file"]))
    assert aliexpress_splits(packed).sizes() == {"train": 108, "validation": 12,
                                                 "test": 80}
    short = load_aliexpress(tmp_path / "gz", max_rows=50)
    assert len(_file_rows(short, "train.csv.gz")) == 50
    assert len(_file_rows(short, "test.csv.gz")) == 50
    assert short.report.rows_read == 100


def test_a_missing_directory_file_or_country_lists_what_is_there(tmp_path):
    with pytest.raises(ValueError, match="data directory not found.*"
                       r"tianchi.aliyun.com/dataset/74690"):
        load_aliexpress(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"country must be one of \['NL', 'ES', "
                       r"'FR', 'US'\]. Received: 'RU'"):
        load_aliexpress(tmp_path, "RU")
    folder = tmp_path / "AliExpress_NL"
    folder.mkdir()
    (folder / "train.csv").write_text("")
    (folder / "notes.txt").write_text("")
    with pytest.raises(ValueError, match=r"AliExpress_NL is missing \['test.csv"
                       r"\[.gz\]'\]; it holds \['notes.txt', 'train.csv'\].*"
                       r"preprocess.py --dataset_name NL"):
        load_aliexpress(tmp_path)
    (tmp_path / "AliExpress_ES").mkdir()
    (tmp_path / "AliExpress_ES" / "es_user_train.csv").write_text("")
    with pytest.raises(ValueError, match=r"holds \['es_user_train.csv'\]. These "
                       r"look like Tianchi's raw files"):
        load_aliexpress(tmp_path, "ES")
    with pytest.raises(ValueError, match=r"missing \['train.csv\[.gz\]', "
                       r"'test.csv\[.gz\]'\]; it holds \['AliExpress_ES/', "
                       r"'AliExpress_NL/'\]. Download aliexpress_FR_datasets.zip"):
        load_aliexpress(tmp_path, "FR")


def test_a_header_without_the_published_columns_is_shown(tmp_path):
    write_aliexpress(tmp_path, train_rows=10, test_rows=5)
    path = tmp_path / "AliExpress_NL" / "test.csv"
    text = path.read_text().replace("numerical_7,", "num_7,", 1)
    path.write_text(text)
    with pytest.raises(ValueError, match=r"test.csv, line 1: the header lacks "
                       r"columns \['numerical_7'\]; expected search_id, "
                       r"categorical_1..categorical_16.*instead: \['num_7'\]. "
                       r"The header reads: 'search_id,.*"
                       r",num_7,numerical_8,"):
        load_aliexpress(tmp_path)
    path.write_text(text.split("\n", 1)[1])  # no header: a data line first
    with pytest.raises(ValueError, match=r"lacks columns \['search_id', "
                       r".* \(82 in all\).*looks like data"):
        load_aliexpress(tmp_path)


def test_malformed_rows_name_the_file_line_and_column(tmp_path):
    write_aliexpress(tmp_path, train_rows=20, test_rows=10)
    path = tmp_path / "AliExpress_NL" / "train.csv"
    clean = path.read_text()
    lines = clean.splitlines()
    lines[4] += ",0.5"  # line 5: 83 fields
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"train.csv, line 5: expected 82 "
                       r"comma-separated fields \(as the header\), found 83"):
        load_aliexpress(tmp_path)
    for line, column, value, message in (
            (7, "numerical_3", "abc", r"field 'numerical_3' \(field 20 of 82\): "
             r"cannot parse 'abc'; expected a number"),
            (8, "categorical_2", "x1", r"field 'categorical_2' \(field 3 of 82\): "
             r"cannot parse 'x1'; expected an integer code"),
            (9, "click", "2", r"field 'click': expected 0 or 1, found 2"),
            (10, "click", "", r"field 'click' \(field 81 of 82\): cannot parse "
             r"''; expected 0 or 1")):
        path.write_text(clean)
        _edit(path, line, column, value)
        with pytest.raises(ValueError, match=rf"train.csv, line {line}: {message}"):
            load_aliexpress(tmp_path)
    path.write_text(clean)
    _edit(path, 11, "click", "0")
    _edit(path, 11, "conversion", "1")
    with pytest.raises(ValueError, match=r"train.csv, line 11: field 'conversion' "
                       r"is 1 but 'click' is 0"):
        load_aliexpress(tmp_path)
    # All of them at once, and a blank line: lenient skips and counts them.
    lines = path.read_text().splitlines()
    lines[4] += ",0.5"
    path.write_text("\n".join(lines[:12]) + "\n\n" + "\n".join(lines[12:]) + "\n")
    for line, column, value in ((7, "numerical_3", "abc"), (9, "click", "2")):
        _edit(path, line, column, value)
    data = load_aliexpress(tmp_path, lenient=True)
    assert data.report.rows_read == 30
    assert data.report.malformed_rows == 2
    assert data.report.out_of_range_labels == 2
    train = _file_rows(data, "train.csv")
    assert len(train) == 16 and len(data.interactions) == 26
    assert 14 in set(train["_line"]) and 13 not in set(train["_line"])  # the blank
    assert not {5, 7, 9, 11} & set(train["_line"])
    path.write_text(clean)
    test = tmp_path / "AliExpress_NL" / "test.csv"
    _edit(test, 4, "numerical_63", "1.2.3")
    with pytest.raises(ValueError, match=r"test.csv, line 4: field 'numerical_63'"):
        load_aliexpress(tmp_path)


def test_line_numbers_hold_across_chunks(tmp_path):
    write_aliexpress(tmp_path, train_rows=20, test_rows=5)
    path = tmp_path / "AliExpress_NL" / "train.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:6] + ["", "  "] + lines[6:]) + "\n")
    frame, counts = read_aliexpress_file(path, chunk_rows=4)
    assert frame["_line"].tolist() == [*range(2, 7), *range(9, 24)]
    assert counts == {"lines": 20, "malformed": 0, "bad_labels": 0}
    expected = aliexpress_rows(20, 0, 0)
    assert frame["numerical_2"].to_numpy() == pytest.approx(
        expected["numerical_2"].to_numpy(), abs=1e-6)
    assert len(read_aliexpress_file(path, chunk_rows=4, max_rows=7)[0]) == 7
    _edit(path, 18, "categorical_16", "1.5")
    with pytest.raises(ValueError, match=r"train.csv, line 18: field "
                       r"'categorical_16'.*'1.5'"):
        read_aliexpress_file(path, chunk_rows=4)


def test_missing_numbers_and_whole_codes_are_values(tmp_path):
    write_aliexpress(tmp_path, train_rows=10, test_rows=5)
    path = tmp_path / "AliExpress_NL" / "train.csv"
    _edit(path, 3, "numerical_9", "")
    _edit(path, 4, "categorical_3", "2.0")
    rows = _file_rows(load_aliexpress(tmp_path), "train.csv")
    assert len(rows) == 10 and rows["numerical_9"].isna().sum() == 1
    assert np.isnan(rows["numerical_9"].iloc[1])
    assert rows["categorical_3"].dtype == np.int64
    assert rows["categorical_3"].iloc[2] == 2
    path.write_text("")
    with pytest.raises(ValueError, match=r"train.csv, line 1: no header"):
        load_aliexpress(tmp_path)


def test_a_bad_value_costs_only_its_row_in_a_long_file(tmp_path):
    # Long enough for pandas to parse a chunk in several internal blocks (of
    # about 8000 lines), where one word makes a column of numbers and strings.
    write_aliexpress(tmp_path, train_rows=10_000, test_rows=5)
    path = tmp_path / "AliExpress_NL" / "train.csv"
    _edit(path, 3, "numerical_10", "zz")
    _edit(path, 9500, "search_id", "x")
    data = load_aliexpress(tmp_path, lenient=True)
    assert data.report.malformed_rows == 2
    assert len(_file_rows(data, "train.csv")) == 9998
    with pytest.raises(ValueError, match=r"line 3: field 'numerical_10' \(field 27 "
                       r"of 82\): cannot parse 'zz'"):
        load_aliexpress(tmp_path)


def test_the_planted_signal_is_there(tmp_path):
    rows = aliexpress_rows(3000, 0, 0)
    by_code = rows.groupby("categorical_1")["click"].mean()
    assert by_code.is_monotonic_increasing
    assert by_code.iloc[-1] > 0.6 > 0.25 > by_code.iloc[0]
    high = rows["numerical_1"] - rows["numerical_2"] > 0.5
    low = rows["numerical_1"] - rows["numerical_2"] < -0.5
    assert rows["click"][high].mean() > 0.85 > 0.05 > rows["click"][low].mean()
    clicks = rows[rows["click"] == 1]
    buys = clicks.groupby("categorical_2")["conversion"].mean()
    assert buys[2] > 0.8 and buys[0] < 0.15


def test_prepare_data_accepts_the_protocol(tmp_path):
    data = load_aliexpress(write_aliexpress(tmp_path, train_rows=200, test_rows=100))
    splits = aliexpress_splits(data)
    prepared = prepare_data(Config(schema=ALIEXPRESS_SCHEMA, tasks=ALIEXPRESS_TASKS),
                            data, splits)
    assert prepared.splits.sizes() == {"train": 180, "validation": 20, "test": 100}
    train = prepared.arrays["train"]
    assert train["categorical_1"].dtype == np.int64 and len(train["click"]) == 180
    assert train["numerical_1"].dtype == np.float32
    np.testing.assert_array_equal(prepared.arrays["test"]["purchase"],
                                  splits.test["purchase"].to_numpy(np.float32))
    state = prepared.preprocessing["numerical_1"]
    assert state.mean == pytest.approx(splits.train["numerical_1"].mean(), abs=1e-5)
    assert set(prepared.preprocessing["categorical_2"].vocabulary) == {"0", "1", "2"}
