"""Drafting a schema and tasks from data: heuristics and the `infer` CLI."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import mtl_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from mtl_tf.data.files import load_files, read_table
from mtl_tf.schema import Schema
from mtl_tf.schema.infer import HASH_BUCKETS, draft_schema, infer_schema
from mtl_tf.task_config import TaskConfig, label_columns

WORDS = "red blue wireless mouse keyboard cable steel bottle lamp desk".split()


def shop_log(n=300, seed=0) -> pd.DataFrame:
    """An e-commerce log: item title / price / tags, a context device, click and
    purchase (a purchase only ever follows a click)."""
    rng = np.random.default_rng(seed)
    n_items, n_users = 25, 15
    titles = [" ".join(rng.choice(WORDS, 5)) + f" model {i}" for i in range(n_items)]
    prices = np.round(rng.lognormal(2.0, 0.5, n_items), 2)
    prices[0] = 4999.0  # A long tail: log1p.
    tags = ["|".join(rng.choice(["home", "office", "tech", "sale"], 2, replace=False))
            for _ in range(n_items)]
    items = np.arange(n) % n_items  # Every item appears several times.
    users = rng.integers(0, n_users, n)
    click = rng.integers(0, 2, n)
    purchase = click * rng.integers(0, 2, n)
    return pd.DataFrame({
        "user_id": [f"u{u}" for u in users], "item_id": [f"i{i}" for i in items],
        "title": [titles[i] for i in items], "price": prices[items],
        "tags": [tags[i] for i in items],
        "device": rng.choice(["ios", "android", "web"], n),
        "click": click, "purchase": purchase,
        "ts": 1_700_000_000 + 60 * np.arange(n)})


def kinds(schema: Schema) -> dict[str, tuple[str, str]]:
    return {f.name: (f.side, f.kind) for f in schema.features}


SHOP_KINDS = {"user_id": ("user", "id"), "item_id": ("item", "id"),
              "title": ("item", "text"), "price": ("item", "numeric"),
              "tags": ("item", "multi_categorical"),
              "device": ("context", "categorical")}
SHOP_TASKS = [{"name": "click", "type": "binary", "label": "click"},
              {"name": "purchase", "type": "binary", "label": "purchase",
               "where": "click == 1"},
              {"name": "retrieval", "type": "retrieval", "where": "click == 1"}]


def test_shop_log_kinds_sides_and_funnel_tasks():
    schema, tasks = infer_schema(shop_log())
    assert kinds(schema) == SHOP_KINDS
    assert schema["price"].transform == "log1p"
    assert schema["tags"].separator == "|"
    assert schema.timestamp == "ts"
    assert tasks == SHOP_TASKS
    # Labels are never features: a task on a feature would see its own answer.
    assert "click" not in schema and "purchase" not in schema


def test_strings_from_csv_give_the_same_draft(tmp_path):
    path = tmp_path / "shop.csv"
    shop_log().to_csv(path, index=False)
    schema, tasks = infer_schema(read_table(str(path)))  # Every column a string.
    assert kinds(schema) == SHOP_KINDS and tasks == SHOP_TASKS
    assert schema.timestamp == "ts" and schema["price"].transform == "log1p"


def test_the_draft_loads_the_file_it_came_from(tmp_path):
    path = tmp_path / "shop.csv"
    shop_log().to_csv(path, index=False)
    schema, tasks = infer_schema(read_table(str(path)))
    configs = [TaskConfig(**task) for task in tasks]
    data = load_files(schema, str(path), labels=label_columns(configs))
    assert data.num_items == 25 and data.report.rows_kept == 300
    assert set(data.items.columns) == {"item_id", "title", "price", "tags"}


def test_no_funnel_without_implication_and_click_is_preferred():
    log = shop_log()
    log["purchase"] = np.random.default_rng(1).integers(0, 2, len(log))
    log = log[["user_id", "item_id", "purchase", "click"]]  # purchase comes first.
    _, tasks = infer_schema(log)
    assert {t["name"]: t.get("where") for t in tasks} == {
        "purchase": None, "click": None, "retrieval": "click == 1"}


def test_nearest_funnel_parent_and_first_label_for_retrieval():
    log = pd.DataFrame({"user": ["a", "b", "c", "d", "e", "f"],
                        "movieId": ["x", "y", "x", "y", "x", "y"],
                        "view": [1, 1, 1, 1, 1, 0], "cart": [1, 1, 1, 0, 0, 0],
                        "buy": ["true", "false", "true", "false", "false", "false"]})
    schema, tasks = infer_schema(log)
    assert schema.user_id.name == "user" and schema.item_id.name == "movieId"
    assert {t["name"]: t.get("where") for t in tasks} == {
        "view": None, "cart": "view == 1", "buy": "cart == 1",
        "retrieval": "view == 1"}


def test_regression_labels_and_durations_that_are_item_features():
    log = shop_log()[["user_id", "item_id", "click"]].copy()
    rng = np.random.default_rng(2)
    log["rating"] = rng.integers(1, 6, len(log))
    log["watch_time"] = log["click"] * rng.uniform(1, 100, len(log))
    log["duration"] = log["item_id"].str[1:].astype(int) * 10.0 + 30
    schema, tasks = infer_schema(log)
    by_name = {t["name"]: t for t in tasks}
    assert by_name["rating"] == {"name": "rating", "type": "regression",
                                 "label": "rating"}
    assert by_name["watch_time"]["where"] == "click == 1"
    assert "duration" not in by_name
    assert kinds(schema)["duration"] == ("item", "numeric")


def test_side_tables_and_a_shared_key_with_another_name(tmp_path):
    log = pd.DataFrame({"user_id": ["u1", "u2", "u1", "u3"],
                        "pid": ["p1", "p2", "p2", "p3"],
                        "hour": ["9", "10", "22", "9"], "click": [1, 0, 1, 1]})
    items = pd.DataFrame({"pid": ["p1", "p2", "p3", "p4"],
                          "genres": [["a", "b"], ["b"], [], ["c"]],
                          "brand": ["acme", "acme", "zen", "zen"],
                          "description": [f"a long description of product {i}"
                                          for i in range(4)]})
    users = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "age": [20, 35, 61],
                          "premium": [True, False, True]})
    draft = draft_schema(log, items, users)
    assert kinds(draft.schema) == {
        "user_id": ("user", "id"), "pid": ("item", "id"),
        "hour": ("context", "categorical"), "genres": ("item", "multi_categorical"),
        "brand": ("item", "categorical"), "description": ("item", "text"),
        "age": ("user", "numeric"), "premium": ("user", "categorical")}
    assert draft.schema["premium"].dtype == "bool"
    assert draft.schema["hour"].dtype == "int64"
    assert "shares with the log" in draft.notes["pid"]


def test_side_table_sharing_no_column_raises():
    log = pd.DataFrame({"user_id": ["u1"], "item_id": ["a"], "click": [1]})
    with pytest.raises(ValueError, match=r"share no column.*give the item id the "
                                         r"same name in both"):
        infer_schema(log, items=pd.DataFrame({"sku_code": ["a"], "price": [1.0]}))


def test_text_categorical_list_and_left_out_columns():
    rng = np.random.default_rng(3)
    n = 200
    categories = ["Home and Kitchen Goods", "Sports and Outdoors", "Toys and Games"]
    log = pd.DataFrame({
        "user_id": [f"u{i % 40}" for i in range(n)],
        "query": [" ".join(rng.choice(WORDS, 4)) + f" {i}" for i in range(n)],
        "page": rng.choice(categories, n),
        "colors": [",".join(rng.choice(["red", "blue", "green"], 2, replace=False))
                   for _ in range(n)],
        "event_id": [f"e{i}" for i in range(n)],
        "constant": "x",
        "amount": rng.uniform(0, 10, n),
        "click": rng.integers(0, 2, n)})
    draft = draft_schema(log)
    assert kinds(draft.schema) == {
        "user_id": ("user", "id"), "query": ("context", "text"),
        "page": ("context", "categorical"), "colors": ("context", "multi_categorical"),
        "amount": ("context", "numeric")}
    assert draft.schema["colors"].separator == ","
    assert draft.schema["amount"].transform == "standardize"
    assert draft.notes["event_id"].startswith("left out: unique per row")
    assert draft.notes["constant"] == "left out: constant"
    # No item id: no retrieval task.
    assert [t["name"] for t in draft.tasks] == ["click"]


def test_timestamp_from_date_strings_and_a_second_date_left_out():
    log = pd.DataFrame({"user_id": ["a", "b", "a"], "item_id": ["x", "y", "y"],
                        "signup": ["2023-01-05", "2023-02-01", "2023-01-05"],
                        "event_date": ["2024-01-01 10:00", "2024-01-02 11:30",
                                       "2024-01-03 09:15"],
                        "rating": ["4", "5", "3"]})
    draft = draft_schema(log)
    assert draft.schema.timestamp == "event_date"
    assert "signup" not in draft.schema and "second time column" in draft.notes[
        "signup"]
    assert draft.tasks[-1] == {"name": "retrieval", "type": "retrieval"}


def test_huge_id_space_is_hashed():
    n = 100_001
    log = pd.DataFrame({"user_id": np.arange(n).astype(str),
                        "item_id": (np.arange(n) % 7).astype(str),
                        "click": np.arange(n) % 2})
    schema, _ = infer_schema(log)
    assert schema.user_id.hash_buckets == HASH_BUCKETS
    assert schema.item_id.hash_buckets == 0


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mtl_tf.schema", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_prints_a_schema_and_tasks_a_config_accepts(tmp_path):
    path = tmp_path / "shop.csv.gz"
    shop_log().to_csv(path, index=False)
    result = run_cli("infer", str(path), "--sample", "200")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"schema", "tasks"}
    schema = Schema.from_dict(document["schema"])
    assert kinds(schema) == SHOP_KINDS and schema.timestamp == "ts"
    assert [TaskConfig(**task).name for task in document["tasks"]] == [
        "click", "purchase", "retrieval"]
    assert all(line.startswith("#") for line in result.stderr.splitlines())
    assert "interactions 200 rows" in result.stderr
    assert "--sample 0 reads everything" in result.stderr
    assert "price" in result.stderr and "log1p" in result.stderr


def test_cli_with_side_tables(tmp_path):
    pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "b"],
                  "click": [1, 0]}).to_json(tmp_path / "log.jsonl", orient="records",
                                            lines=True)
    pd.DataFrame({"item_id": ["a", "b"], "tags": [["x"], ["y", "z"]]}).to_parquet(
        tmp_path / "items.parquet")
    result = run_cli("infer", str(tmp_path / "log.jsonl"), "--items",
                     str(tmp_path / "items.parquet"))
    assert result.returncode == 0, result.stderr
    schema = Schema.from_dict(json.loads(result.stdout)["schema"])
    assert kinds(schema)["tags"] == ("item", "multi_categorical")


def test_cli_errors_and_help(tmp_path):
    result = run_cli("infer", str(tmp_path / "missing.csv"))
    assert result.returncode == 2 and result.stdout == ""
    assert "interactions file not found" in result.stderr
    assert run_cli("infer").returncode == 2
    assert run_cli("infer", str(tmp_path / "x.csv"), "--sample", "-1").returncode == 2
    for args in (("--help",), ("infer", "--help")):
        result = run_cli(*args)
        assert result.returncode == 0 and "infer" in result.stdout
    assert "--sample N" in run_cli("infer", "--help").stdout
