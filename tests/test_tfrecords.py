"""TFRecord shards: `python -m mtl_tf.data.convert` and the `files` source's reader."""

import gzip

import numpy as np
import pandas as pd
import pytest

from mtl_tf.config import apply_overrides, load_config_file
from mtl_tf.data import load_data
from mtl_tf.data.convert import main as convert
from mtl_tf.data.files import read_table
from mtl_tf.data.shop_log import write_shop_log
from mtl_tf.data.tfrecords import read_tfrecords, write_tfrecords


def test_a_shop_log_converted_to_tfrecords_loads_like_its_csv(tmp_path, repo_root,
                                                              capsys):
    shop = write_shop_log(tmp_path / "shop", num_users=40, num_items=30,
                          impressions_per_user=20, seed=1)
    assert convert([str(shop["interactions"]), str(tmp_path / "tf"),
                    "--shards", "3"]) == 0
    assert "to 3 shards" in capsys.readouterr().out
    shards = sorted((tmp_path / "tf").iterdir())
    assert [p.name for p in shards] == [f"part-0000{i}-of-00003.tfrecord.gz"
                                        for i in range(3)]
    config = apply_overrides(load_config_file(repo_root / "examples" /
                                              "shop_mmoe.json"),
                             [f"data.items_path={shop['items']}",
                              f"data.users_path={shop['users']}"])
    from_csv = load_data(apply_overrides(
        config, [f"data.path={shop['interactions']}"]))
    from_tfrecords = load_data(apply_overrides(
        config, [f"data.path={tmp_path / 'tf' / 'part-*.tfrecord.gz'}"]))
    helpers = ["_file", "_line"]
    pd.testing.assert_frame_equal(from_csv.interactions.drop(columns=helpers),
                                  from_tfrecords.interactions.drop(columns=helpers),
                                  check_like=True)  # an Example has no column order
    # Records count from 1 in each shard, for error messages.
    lines = from_tfrecords.interactions.groupby("_file")["_line"].min()
    assert lines.tolist() == [1, 1, 1]


def test_values_lists_and_missing_cells_round_trip(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b", "c"], "count": [1, 2, 3],
                          "price": [1.5, np.nan, 3.0], "flag": [True, False, True],
                          "tags": [("x", "y"), (), ("z",)]})
    (path,) = write_tfrecords(frame, tmp_path, shards=1, gzip=False)
    back, lines = read_tfrecords(str(path), False, "interactions", 0)
    assert lines.tolist() == [1, 2, 3]
    assert back["id"].tolist() == ["a", "b", "c"]
    assert back["count"].tolist() == ["1", "2", "3"]  # text, like a CSV cell
    assert back["price"].tolist()[0] == "1.5" and back["price"].isna()[1]
    assert back["tags"].tolist() == [("x", "y"), None, "z"]
    assert read_tfrecords(str(path), False, "interactions", 2)[0].shape[0] == 2
    with pytest.raises(ValueError, match=r"shards must be in \[1, rows=3\]"):
        write_tfrecords(frame, tmp_path / "more", shards=4)


def test_a_damaged_or_mislabelled_file_names_the_file(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b"]})
    (path,) = write_tfrecords(frame, tmp_path, shards=1, gzip=False)
    wrong = tmp_path / "plain.tfrecord.gz"  # not GZIP inside
    wrong.write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match=r"plain.tfrecord.gz: cannot read its "
                       r"records after record 0"):
        read_table(str(wrong))
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"cut.tfrecord: cannot read its records "
                       r"after record 1"):
        read_table(str(cut))
    text = tmp_path / "text.tfrecord.gz"
    with gzip.open(text, "wb") as handle:
        handle.write(b"id\na\n")
    with pytest.raises(ValueError, match="text.tfrecord.gz"):
        read_table(str(text))
    assert convert([str(tmp_path / "missing.csv"), str(tmp_path / "out")]) == 2
