"""The `files` data source: formats, shards, side tables, line-exact errors."""

import gzip

import numpy as np
import pandas as pd
import pytest

import mtl_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from mtl_tf.data.files import MALFORMED_ATTR, load_files, read_table
from mtl_tf.schema import Feature, Schema

SCHEMA = Schema((
    Feature("user_id", "user", "id"),
    Feature("item_id", "item", "id"),
    Feature("tags", "item", "multi_categorical"),
    Feature("price", "item", "numeric"),
    Feature("device", "context", "categorical"),
), timestamp="ts")
LABELS = {"click": "number"}
HEADER = "user_id,item_id,tags,price,device,click,ts"
ROWS = ["u1,007,a|b,1.5,ios,1,100",
        "u2,008,c,2.5,web,0,200",
        "u1,008,c,2.5,web,1,300"]
# The same log as a frame with native types (lists for tags).
FRAME = pd.DataFrame({"user_id": ["u1", "u2", "u1"], "item_id": ["007", "008", "008"],
                      "tags": [["a", "b"], ["c"], ["c"]], "price": [1.5, 2.5, 2.5],
                      "device": ["ios", "web", "web"], "click": [1, 0, 1],
                      "ts": [100, 200, 300]})


def write(path, lines, compress=False):
    text = "\n".join(lines) + "\n"
    if compress:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return str(path)


def csv_file(tmp_path, name="events.csv", rows=ROWS, header=HEADER):
    return write(tmp_path / name, [header, *rows])


def test_csv_is_read_as_strings_with_header_as_line_one(tmp_path):
    path = csv_file(tmp_path)
    table = read_table(path)
    # "007" would be 7 if pandas guessed types; the schema decides them instead.
    assert table["item_id"].tolist() == ["007", "008", "008"]
    assert table["price"].tolist() == ["1.5", "2.5", "2.5"]
    assert table["_line"].tolist() == [2, 3, 4]
    assert set(table["_file"]) == {path}
    assert table.attrs[MALFORMED_ATTR] == 0


def test_load_files_coerces_each_kind_and_names_the_data_set(tmp_path):
    data = load_files(SCHEMA, csv_file(tmp_path), labels=LABELS)
    assert data.name == "events"
    items = data.items.set_index("item_id")
    assert items.loc["007", "tags"] == ("a", "b")
    assert items.loc["008", "price"] == 2.5
    assert data.interactions["click"].tolist() == [1.0, 0.0, 1.0]
    assert data.interactions["ts"].dtype == np.int64
    assert data.report.rows_read == 3 and data.report.rows_kept == 3


def _write_format(tmp_path, suffix):
    """FRAME written as `events<suffix>`, the way each format stores it."""
    path = tmp_path / f"events{suffix}"
    compress = suffix.endswith(".gz")
    if suffix.startswith(".csv"):
        return write(path, [HEADER, *ROWS], compress)
    if suffix.startswith(".tsv"):
        return write(path, [r.replace(",", "\t") for r in [HEADER, *ROWS]], compress)
    if suffix.startswith(".jsonl"):
        FRAME.to_json(path, orient="records", lines=True,
                      compression="gzip" if compress else None)
        return str(path)
    FRAME.to_parquet(path)
    return str(path)


@pytest.mark.parametrize("suffix, first_line", [
    (".csv", 2), (".csv.gz", 2), (".tsv", 2), (".tsv.gz", 2),
    (".jsonl", 1), (".jsonl.gz", 1), (".parquet", 1)])
def test_every_format_loads_the_same_data(tmp_path, suffix, first_line):
    path = _write_format(tmp_path, suffix)
    assert read_table(path)["_line"].tolist() == [first_line + i for i in range(3)]
    data = load_files(SCHEMA, path, labels=LABELS)
    assert data.name == "events"
    joined = data.joined()
    assert joined["item_id"].tolist() == ["007", "008", "008"]
    assert joined["tags"].tolist() == [("a", "b"), ("c",), ("c",)]
    np.testing.assert_allclose(joined["price"], [1.5, 2.5, 2.5])
    assert joined["click"].tolist() == [1.0, 0.0, 1.0]
    assert joined["ts"].tolist() == [100, 200, 300]


def test_separator_overrides_the_extension(tmp_path):
    path = write(tmp_path / "events.csv", [HEADER.replace(",", ";"),
                                           *(r.replace(",", ";") for r in ROWS)])
    assert read_table(path, separator=";")["device"].tolist() == ["ios", "web", "web"]
    double = write(tmp_path / "double.csv", ["a::b", "1::x"])
    assert read_table(double, separator="::")["b"].tolist() == ["x"]


def test_glob_reads_sorted_shards_with_per_shard_lines(tmp_path):
    write(tmp_path / "part-1.csv", [HEADER, ROWS[1], ROWS[2]])
    write(tmp_path / "part-0.csv", [HEADER, ROWS[0]])
    (tmp_path / "_SUCCESS").write_text("")  # A job marker, not a shard.
    table = read_table(str(tmp_path / "*"))
    assert [f.rsplit("/", 1)[1] for f in table["_file"]] == [
        "part-0.csv", "part-1.csv", "part-1.csv"]
    assert table["_line"].tolist() == [2, 2, 3]
    assert read_table(str(tmp_path / "part-*.csv"), max_rows=2)["_line"].tolist() == [
        2, 2]
    data = load_files(SCHEMA, str(tmp_path / "part-*.csv"), labels=LABELS)
    assert data.name == tmp_path.name and data.report.rows_read == 3


def test_bad_value_in_second_shard_names_shard_line_and_column(tmp_path):
    write(tmp_path / "part-0.csv", [HEADER, ROWS[0]])
    write(tmp_path / "part-1.csv", [HEADER, ROWS[1], ROWS[2].replace("2.5", "cheap")])
    with pytest.raises(ValueError, match=r"part-1\.csv, line 3: column 'price': "
                                         r"cannot parse 'cheap'"):
        load_files(SCHEMA, str(tmp_path / "part-*.csv"), labels=LABELS)


def test_shards_with_different_columns_raise(tmp_path):
    write(tmp_path / "part-0.csv", [HEADER, ROWS[0]])
    write(tmp_path / "part-1.csv", [HEADER.replace(",ts", ""), ROWS[1][:-4]])
    with pytest.raises(ValueError, match=r"shards differ.*missing: \['ts'\]"):
        read_table(str(tmp_path / "part-*.csv"))


def test_side_tables_provide_item_and_user_features(tmp_path):
    log = write(tmp_path / "log.csv", ["user_id,item_id,device,click",
                                       "u1,i1,ios,1", "u2,i2,web,0"])
    items = write(tmp_path / "items.tsv", ["item_id\ttags\tprice",
                                           "i1\tx|y\t10", "i2\tz\t20",
                                           "i3\tnew\t30"])
    pd.DataFrame({"user_id": ["u1", "u2"], "age": [31.0, 42.0]}).to_parquet(
        tmp_path / "users.parquet")
    schema = Schema((*SCHEMA.features, Feature("age", "user", "numeric")))
    data = load_files(schema, log, items=items, users=str(tmp_path / "users.parquet"),
                      labels=LABELS)
    # i3 has no interaction but belongs to the catalog.
    assert data.items["item_id"].tolist() == ["i1", "i2", "i3"]
    joined = data.joined()
    assert joined["tags"].tolist() == [("x", "y"), ("z",)]
    assert joined["price"].tolist() == [10.0, 20.0]
    assert joined["age"].tolist() == [31.0, 42.0]


def test_unknown_item_in_side_table_strict_and_lenient(tmp_path):
    log = write(tmp_path / "log.csv", ["user_id,item_id,device,click",
                                       "u1,i1,ios,1", "u2,i9,web,0"])
    items = write(tmp_path / "items.csv", ["item_id,tags,price", "i1,x,10"])
    schema = Schema(SCHEMA.without(["tags", "price"]).features)  # No timestamp.
    with pytest.raises(ValueError, match=r"log\.csv, line 3: 'item_id' 'i9' is not"):
        load_files(schema, log, items=items, labels=LABELS)
    data = load_files(schema, log, items=items, labels=LABELS, lenient=True)
    assert data.report.unknown_item_rows == 1 and data.report.rows_kept == 1


def test_side_table_without_its_id_feature_raises(tmp_path):
    log = csv_file(tmp_path)
    items = write(tmp_path / "items.csv", ["item_id,tags", "007,a"])
    schema = Schema((Feature("device", "context", "categorical"),))
    with pytest.raises(ValueError, match="no item id to join it on"):
        load_files(schema, log, items=items)


def test_schema_column_missing_from_file_lists_present_columns(tmp_path):
    schema = Schema((*SCHEMA.features, Feature("country", "context", "categorical")))
    with pytest.raises(ValueError) as error:
        load_files(schema, csv_file(tmp_path), labels=LABELS)
    message = str(error.value)
    assert "['country']" in message and "events.csv" in message
    assert f"columns present: {HEADER.split(',')}" in message  # No _line / _file.


def test_value_that_does_not_parse_names_file_line_and_column(tmp_path):
    rows = [ROWS[0], ROWS[1].replace("2.5", "cheap"), ROWS[2]]
    path = csv_file(tmp_path, rows=rows)
    with pytest.raises(ValueError, match=r"events\.csv, line 3: column 'price': "
                                         r"cannot parse 'cheap'; expected a number"):
        load_files(SCHEMA, path, labels=LABELS)
    data = load_files(SCHEMA, path, labels=LABELS, lenient=True)
    assert data.report.malformed_rows == 1 and data.report.rows_kept == 2


def test_wrong_field_count_strict_names_the_line(tmp_path):
    path = csv_file(tmp_path, rows=[ROWS[0], ROWS[1] + ",extra", ROWS[2]])
    with pytest.raises(ValueError, match=r"events\.csv, line 3: expected 7 fields "
                                         r"\(one per header column\), found 8"):
        read_table(path)
    short = csv_file(tmp_path, "short.csv", rows=[ROWS[0], "u2,008"])
    with pytest.raises(ValueError, match=r"short\.csv, line 3: .*found 2"):
        load_files(SCHEMA, short, labels=LABELS)


def test_wrong_field_count_lenient_skips_and_counts(tmp_path):
    path = csv_file(tmp_path, rows=[ROWS[0], ROWS[1] + ",extra", "u3", ROWS[2]])
    table = read_table(path, lenient=True)
    assert table["_line"].tolist() == [2, 5] and table.attrs[MALFORMED_ATTR] == 2
    data = load_files(SCHEMA, path, labels=LABELS, lenient=True)
    assert data.report.malformed_rows == 2
    assert data.report.rows_read == 4 and data.report.rows_kept == 2


def test_blank_lines_and_quoted_newlines_keep_exact_line_numbers(tmp_path):
    path = csv_file(tmp_path, rows=['u1,007,"a|\nb",1.5,ios,1,100', "",
                                    ROWS[1].replace("2.5", "cheap")])
    table = read_table(path)
    assert table["tags"].tolist() == ["a|\nb", "c"]
    assert table["_line"].tolist() == [2, 5]
    with pytest.raises(ValueError, match=r"events\.csv, line 5: column 'price'"):
        load_files(SCHEMA, path, labels=LABELS)


def test_jsonl_bad_line_strict_and_lenient(tmp_path):
    path = write(tmp_path / "events.jsonl", [
        '{"user_id": "u1", "item_id": "i1", "click": 1}', "{not json",
        '{"user_id": "u2", "item_id": "i2", "click": 0}'])
    with pytest.raises(ValueError, match=r"events\.jsonl, line 2: expected a JSON "
                                         r"object"):
        read_table(path)
    table = read_table(path, lenient=True)
    assert table["_line"].tolist() == [1, 3] and table.attrs[MALFORMED_ATTR] == 1
    array = write(tmp_path / "array.json", ['[{"a": 1}]'])
    with pytest.raises(ValueError, match="holds a JSON array"):
        read_table(array)


def test_parquet_named_index_comes_back_as_a_column(tmp_path):
    FRAME.set_index("item_id").to_parquet(tmp_path / "events.pq")
    table = read_table(str(tmp_path / "events.pq"))
    assert table["item_id"].tolist() == ["007", "008", "008"]
    assert table["tags"].map(list).tolist() == [["a", "b"], ["c"], ["c"]]


def test_missing_file_lists_the_directory(tmp_path):
    csv_file(tmp_path, "events.csv")
    with pytest.raises(ValueError, match=r"interactions file not found: .*evnets\.csv"
                                         r".*holds \['events\.csv'\]"):
        load_files(SCHEMA, str(tmp_path / "evnets.csv"))
    with pytest.raises(ValueError, match=r"items file not found.*no such file"):
        load_files(SCHEMA, str(tmp_path / "events.csv"),
                   items=str(tmp_path / "items.csv"))


def test_empty_glob_lists_the_directory(tmp_path):
    csv_file(tmp_path, "events.csv")
    (tmp_path / "logs").mkdir()
    with pytest.raises(ValueError, match=r"no file matches this glob\); .*holds "
                                         r"\['events\.csv', 'logs/'\]"):
        read_table(str(tmp_path / "part-*.csv"))
    with pytest.raises(ValueError, match=r"is a directory; pass a file, or a glob"):
        read_table(str(tmp_path / "logs"))


def test_unknown_extension_lists_the_supported_ones(tmp_path):
    path = write(tmp_path / "events.txt", [HEADER, ROWS[0]])
    with pytest.raises(ValueError, match=r"unknown format '\.txt'; supported "
                                         r"extensions: \.csv, \.tsv"):
        read_table(path)
    gz_parquet = tmp_path / "events.parquet.gz"
    gz_parquet.write_bytes(b"x")
    with pytest.raises(ValueError, match="Parquet compresses its own pages"):
        read_table(str(gz_parquet))


def test_empty_and_header_only_files_raise(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv is empty"):
        read_table(str(tmp_path / "empty.csv"))
    blank = write(tmp_path / "blank.csv.gz", ["", ""], compress=True)
    with pytest.raises(ValueError, match="is empty \\(no header line\\)"):
        read_table(blank)
    header_only = csv_file(tmp_path, "header.csv", rows=[])
    with pytest.raises(ValueError, match="header.csv' holds no data rows"):
        read_table(header_only)
    every_line_bad = csv_file(tmp_path, "bad.csv", rows=["u1,i1"])
    with pytest.raises(ValueError, match=r"no data rows \(all 1 lines are "
                                         r"malformed\)"):
        read_table(every_line_bad, lenient=True)


def test_fast_and_exact_csv_readers_agree(tmp_path):
    # pyarrow reads well-formed files; the csv-module scan (forced by max_rows)
    # is the reference for quoting, empty fields, a byte order mark and UTF-8.
    path = tmp_path / "events.csv"
    path.write_text("\ufeff" + "\n".join([
        HEADER, 'u1,007,"a,b|c",1.5,"ios ""beta""",1,100', "u2,,,,,,",
        "u3,009,é|ü,3,web,0,300"]) + "\n", encoding="utf-8")
    fast, exact = read_table(str(path)), read_table(str(path), max_rows=100)
    pd.testing.assert_frame_equal(fast, exact)
    assert fast.columns[0] == "user_id"
    assert fast.loc[0, "tags"] == "a,b|c" and fast.loc[0, "device"] == 'ios "beta"'
    assert fast.loc[1].tolist()[:7] == ["u2", "", "", "", "", "", ""]
