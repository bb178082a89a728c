"""The Ali-CCP loader, on files in the exact raw Tianchi format.

`write_ali_ccp` writes `sample_skeleton_{train,test}.csv` and
`common_features_{train,test}.csv` as Tianchi publishes them: no header,
`sample_id,click,conversion,common_feature_index,feature_num,feature_list` and
`common_feature_index,feature_num,feature_list`, features joined by "\\x01",
each `field\\x02id\\x03value`, ids unique across fields. The user fields and
behaviour lists are in the common features, shared by the 1-6 impressions of a
page view; item, scenario and combination fields are in the skeleton.

Planted signal: the click probability rises with the item's category (f206)
and the user's age (f125); a click converts more often the higher the user's
consumption level (f126) and, less steeply, the item's category.
"""

import dataclasses
import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from mtl_tf.data.ali_ccp import (
    ALI_CCP_SCHEMA,
    ALI_CCP_TASKS,
    ali_ccp_files,
    ali_ccp_splits,
    load_ali_ccp,
    load_ali_ccp_source,
)
from mtl_tf.schema import Feature, Schema

USERS, ITEMS, CATEGORIES, SHOPS, BRANDS, NODES = 240, 300, 8, 40, 30, 15
PROFILE = {"121": 20, "122": 5, "124": 2, "125": 7, "126": 3, "127": 3,
           "128": 2, "129": 4}
# Behaviour list -> the item field whose ids it holds, and its id space size.
BEHAVIOUR = {"109_14": ("206", CATEGORIES), "110_14": ("207", SHOPS),
             "127_14": ("216", BRANDS), "150_14": ("210", NODES)}
COMBINATION = {"508": "109_14", "509": "110_14", "702": "127_14", "853": "150_14"}
FIELD_IDS = ["101", *PROFILE, *BEHAVIOUR, "205", "206", "207", "210", "216",
             "301", *COMBINATION]
# Feature ids are unique across fields: each field has its own id range.
BASE = {field: (i + 1) * 1_000_000 for i, field in enumerate(FIELD_IDS)}
CATEGORY_EFFECT = np.linspace(-2.5, 2.5, CATEGORIES)
AGE_EFFECT = np.linspace(-1.0, 1.0, PROFILE["125"])
LEVEL_EFFECT = np.array([-2.0, 0.0, 2.0])


@dataclasses.dataclass
class Part:
    """What the generator wrote for one file pair: the impressions (sample_id,
    click, conversion, index, features) and the features of each index, each
    feature a (field, id, value) triple in file order."""

    samples: list[dict]
    commons: dict[str, list[tuple[str, str, str]]]


def _id(field: str, local: int) -> str:
    return str(BASE[field] + int(local))


def _universe(seed: int) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    users = [{f: int(rng.integers(n)) for f, n in PROFILE.items()}
             for _ in range(USERS)]
    items = [{"206": int(rng.integers(CATEGORIES)), "207": int(rng.integers(SHOPS)),
              "216": int(rng.integers(BRANDS)) if rng.random() < 0.9 else None,
              "210": sorted(rng.choice(NODES, int(rng.integers(1, 4)),
                                       replace=False).tolist())}
             for _ in range(ITEMS)]
    return users, items


def make_part(rows: int, seed: int, part: int) -> Part:
    """`rows` impressions of page views of the users and items of `seed`."""
    users, items = _universe(seed)
    rng = np.random.default_rng([seed, part])
    samples, commons = [], {}
    while len(samples) < rows:
        user = int(rng.integers(USERS))
        index = f"{int(rng.integers(2**62)):016x}"
        features = [("101", _id("101", user), "1.0")]
        features += [(f, _id(f, v), "1.0") for f, v in users[user].items()]
        acted = {}
        for field, (_, size) in BEHAVIOUR.items():
            acted[field] = rng.choice(size, int(rng.integers(0, min(size, 15) + 1)),
                                      replace=False).tolist()
            features += [(field, _id(field, v), f"{rng.integers(1, 30)}.0")
                         for v in acted[field]]
        commons[index] = features
        for _ in range(min(int(rng.integers(1, 7)), rows - len(samples))):
            item = int(rng.integers(ITEMS))
            attributes = items[item]
            logit = (-1.2 + CATEGORY_EFFECT[attributes["206"]]
                     + AGE_EFFECT[users[user]["125"]])
            click = int(rng.random() < 1 / (1 + np.exp(-logit)))
            converts = 1 / (1 + np.exp(0.8 - LEVEL_EFFECT[users[user]["126"]]
                                        - 0.6 * CATEGORY_EFFECT[attributes["206"]]))
            conversion = int(click and rng.random() < converts)
            own = [("205", _id("205", item), "1.0"),
                   ("206", _id("206", attributes["206"]), "1.0"),
                   ("207", _id("207", attributes["207"]), "1.0")]
            own += [("210", _id("210", v), "1.0") for v in attributes["210"]]
            if attributes["216"] is not None:
                own.append(("216", _id("216", attributes["216"]), "1.0"))
            own.append(("301", _id("301", rng.integers(3)), "1.0"))
            for field, behaviour in COMBINATION.items():
                value = attributes[BEHAVIOUR[behaviour][0]]
                value = value[0] if isinstance(value, list) else value
                if value is not None:
                    seen = int(value in acted[behaviour])
                    own.append((field, _id(field, 2 * value + seen),
                                f"{rng.integers(1, 9)}.0"))
            samples.append({"sample_id": str(len(samples) + 1), "click": click,
                            "conversion": conversion, "index": index,
                            "features": own})
    return Part(samples, commons)


def feature_list(features: list[tuple[str, str, str]]) -> str:
    return "\x01".join(f"{field}\x02{id_}\x03{value}" for field, id_, value in features)


def skeleton_line(sample: dict) -> str:
    return ",".join([sample["sample_id"], str(sample["click"]),
                     str(sample["conversion"]), sample["index"],
                     str(len(sample["features"])), feature_list(sample["features"])])


def common_lines(part: Part, seed: int) -> list[str]:
    """The common-features lines in shuffled order, plus two indexes no
    impression references."""
    rng = np.random.default_rng(seed)
    commons = dict(part.commons)
    commons.update({f"{9 + i:016x}": [("101", _id("101", 0), "1.0")] for i in (0, 1)})
    lines = [f"{index},{len(f)},{feature_list(f)}" for index, f in commons.items()]
    return [lines[i] for i in rng.permutation(len(lines))]


def write_ali_ccp(directory: Path, train_rows: int = 2000, test_rows: int = 1000,
                  *, gz: bool = False, seed: int = 0) -> Path:
    """Writes the four raw Ali-CCP files into `directory`, returns it.

    Both parts share one population (`seed`): 240 users with 8 profile fields
    and 300 items; each page view (one common-features line) holds 1-6
    impressions. Planted signal: click logit = -1.2 + c + a, with c from -2.5
    to 2.5 over the 8 item categories (f206) and a from -1 to 1 over the 7
    user ages (f125); conversion given click: logit = -0.8 + (-2, 0, 2) over
    the 3 consumption levels (f126) + 0.6 c. On 3000 / 1500 rows, two epochs
    of any architecture reach test AUCs of ~0.75 (click), ~0.75-0.8
    (purchase) and ~0.6 (purchase given click). With `gz`, each file is
    written as `<name>.gz`. Keep this signature: the benchmark smoke test
    imports it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for part, (name, rows) in enumerate((("train", train_rows), ("test", test_rows)),
                                        1):
        made = make_part(rows, seed, part)
        files = {f"sample_skeleton_{name}.csv": map(skeleton_line, made.samples),
                 f"common_features_{name}.csv": common_lines(made, seed + part)}
        for file, lines in files.items():
            text = "\n".join(lines) + "\n"
            if gz:
                with gzip.open(directory / f"{file}.gz", "wt",
                               encoding="latin-1") as out:
                    out.write(text)
            else:
                (directory / file).write_text(text, encoding="latin-1")
    return directory


def expected(sample: dict, part: Part, cap: int = 10) -> dict:
    """The cells the loader should read for `sample`: first id of a single
    field, the first `cap` ids of a list, "" / () when absent."""
    ids = {}
    for field, id_, _ in part.commons[sample["index"]] + sample["features"]:
        ids.setdefault(field, []).append(id_)
    out = {}
    for feature in ALI_CCP_SCHEMA.features:
        field = {"user_id": "101", "item_id": "205"}.get(feature.name,
                                                         feature.name[1:])
        values = ids.get(field, [])
        out[feature.name] = (tuple(values[:cap]) if feature.is_list
                             else (values[0] if values else ""))
    return out


def parsed(data, position: int) -> dict:
    return data.joined().iloc[position][ALI_CCP_SCHEMA.names].to_dict()


def test_the_raw_files_parse_into_the_built_in_schema(tmp_path):
    directory = write_ali_ccp(tmp_path / "ali", 400, 200)
    raw = (directory / "sample_skeleton_train.csv").read_bytes().split(b"\n")[0]
    assert raw.count(b",") == 5 and b"\x01" in raw and b"\x02" in raw
    assert b"\x03" in raw and not raw.startswith(b"sample_id")
    data = load_ali_ccp(directory)
    train, test = make_part(400, 0, 1), make_part(200, 0, 2)
    rows = data.interactions
    assert len(rows) == 600 and data.report.rows_read == 600
    is_train = rows["_file"].astype(str).str.endswith("sample_skeleton_train.csv")
    assert is_train.sum() == 400 and is_train[:400].all()
    samples = train.samples + test.samples
    assert rows["click"].mean() == pytest.approx(np.mean([s["click"] for s in samples]))
    assert rows["purchase"].sum() == sum(s["conversion"] for s in samples) > 0
    assert 0.15 < rows["click"].mean() < 0.6
    assert rows["click"].dtype == rows["purchase"].dtype == np.float32
    assert (rows["purchase"] <= rows["click"]).all()
    for position, (sample, part) in {0: (train.samples[0], train),
                                     137: (train.samples[137], train),
                                     450: (test.samples[50], test)}.items():
        assert parsed(data, position) == expected(sample, part)
        assert rows["_line"].iloc[position] == int(sample["sample_id"])
    # One row per user (profile fields) and per item (item fields).
    assert data.users.columns.tolist() == ["user_id", "f121", "f122", "f124", "f125",
                                           "f126", "f127", "f128", "f129"]
    assert data.items.columns.tolist() == ["item_id", "f206", "f207", "f210", "f216"]
    commons = {**train.commons, **test.commons}
    assert data.num_users == len({commons[s["index"]][0][1] for s in samples})
    assert data.num_items == len({s["features"][0][1] for s in samples})
    assert "" in set(data.items["f216"])  # an item without a brand


def test_the_schema_names_sides_and_kinds():
    kinds = {f.name: (f.side, f.kind) for f in ALI_CCP_SCHEMA.features}
    assert kinds["user_id"] == ("user", "id") and kinds["item_id"] == ("item", "id")
    assert kinds["f125"] == ("user", "categorical")
    assert kinds["f109_14"] == ("context", "multi_categorical")
    assert kinds["f210"] == ("item", "multi_categorical")
    assert kinds["f206"] == ("item", "categorical")
    assert kinds["f853"] == kinds["f301"] == ("context", "categorical")
    assert len(kinds) == 23 and all(name.isidentifier() for name in kinds)
    bounds = {f.name: (f.min_count, f.max_vocabulary) for f in ALI_CCP_SCHEMA.features}
    assert bounds["item_id"] == (1, 500_000) and bounds["f207"] == (10, 300_000)
    assert bounds["f124"] == (1, 0)
    assert [(t.name, t.label, t.depends_on) for t in ALI_CCP_TASKS] == [
        ("click", "click", ""), ("purchase", "purchase", "click")]


def test_multi_valued_fields_keep_their_first_ids(tmp_path):
    directory = write_ali_ccp(tmp_path / "ali", 300, 50)
    train = make_part(300, 0, 1)
    data = load_ali_ccp(directory, max_values_per_field=3)
    lists = data.joined()["f110_14"]
    assert lists.map(len).max() == 3
    long = next(i for i, s in enumerate(train.samples)
                if len(expected(s, train)["f110_14"]) > 3)
    assert parsed(data, long) == expected(train.samples[long], train, cap=3)
    default = load_ali_ccp(directory).joined()["f110_14"].map(len)
    assert default.max() == 10  # up to 15 ids written, capped at 10


def test_a_field_is_read_from_either_file(tmp_path):
    directory = write_ali_ccp(tmp_path / "ali", 20, 10)
    part = make_part(20, 0, 1)
    indexes = [s["index"] for s in part.samples]
    shared = next([i for i, x in enumerate(indexes) if x == index]
                  for index in indexes if indexes.count(index) > 1)
    first = part.samples[shared[0]]
    # One impression loses its f301; its common line gains one.
    skeleton = directory / "sample_skeleton_train.csv"
    lines = skeleton.read_text(encoding="latin-1").splitlines()
    lines[shared[0]] = skeleton_line({**first, "features": [
        f for f in first["features"] if f[0] != "301"]})
    _write_lines(skeleton, lines)
    common = directory / "common_features_train.csv"
    lines = common.read_text(encoding="latin-1").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(first["index"]))
    index, count, features = lines[at].split(",")
    lines[at] = f"{index},{int(count) + 1},{features}\x01301\x02777\x031.0"
    _write_lines(common, lines)
    rows = load_ali_ccp(directory).interactions
    assert rows["f301"].iloc[shared[0]] == "777"
    for i in shared[1:]:  # The skeleton's own value wins.
        assert rows["f301"].iloc[i] == expected(part.samples[i], part)["f301"] != "777"


def test_the_protocol_holds_out_a_share_of_the_train_file(tmp_path):
    data = load_ali_ccp(write_ali_ccp(tmp_path / "ali", 400, 200))
    splits = ali_ccp_splits(data, seed=42)
    assert splits.sizes() == {"train": 360, "validation": 40, "test": 200}
    for name in ("train", "validation"):
        assert getattr(splits, name)["_file"].astype(str).str.contains("train").all()
    assert splits.test["_file"].astype(str).str.contains("_test").all()
    assert not {*splits.train["_line"]} & {*splits.validation["_line"]}
    again = ali_ccp_splits(data, seed=42).validation["_line"].tolist()
    assert again == splits.validation["_line"].tolist()
    assert ali_ccp_splits(data, seed=1).validation["_line"].tolist() != again
    assert ali_ccp_splits(data, validation_fraction=0.25).sizes()["validation"] == 100


def test_gzipped_files_subfolders_max_rows_and_sampling(tmp_path):
    plain = load_ali_ccp(write_ali_ccp(tmp_path / "plain", 300, 200))
    directory = write_ali_ccp(tmp_path / "gz", 300, 200, gz=True)
    for part in ("train", "test"):  # as the Tianchi tarballs unpack
        (directory / f"sample_{part}").mkdir()
        for name in directory.glob(f"*_{part}.csv.gz"):
            name.rename(directory / f"sample_{part}" / name.name)
    assert ali_ccp_files(directory)["common_test"].parent.name == "sample_test"
    zipped = load_ali_ccp(directory)
    assert zipped.interactions["_file"].iloc[0].endswith("sample_skeleton_train.csv.gz")
    assert zipped.joined()["item_id"].tolist() == plain.joined()["item_id"].tolist()
    first = load_ali_ccp(directory, max_rows=120)
    assert len(first.interactions) == 240 and first.report.rows_read == 240
    assert first.interactions["_line"].max() == 120
    half = load_ali_ccp(directory, sample_fraction=0.5, seed=3)
    keys = {*zip(half.interactions["_file"], half.interactions["_line"])}
    assert 180 < len(keys) < 320 and half.report.rows_read == len(keys)
    assert keys <= {*zip(zipped.interactions["_file"], zipped.interactions["_line"])}
    again = load_ali_ccp(directory, sample_fraction=0.5, seed=3)
    assert again.interactions["_line"].tolist() == half.interactions["_line"].tolist()
    other = load_ali_ccp(directory, sample_fraction=0.5, seed=4)
    assert other.interactions["_line"].tolist() != half.interactions["_line"].tolist()


def test_bad_arguments_and_missing_files_are_explained(tmp_path):
    with pytest.raises(ValueError, match="data directory not found.*Tianchi"):
        load_ali_ccp(tmp_path / "nope")
    (tmp_path / "sample_skeleton_train.csv").write_text("")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ValueError, match=re.escape(
            "is missing ['common_features_train.csv[.gz]', "
            "'sample_skeleton_test.csv[.gz]', 'common_features_test.csv[.gz]']; "
            "it holds ['notes.txt', 'sample_skeleton_train.csv']. Pass the folder "
            "holding ['common_features_test.csv', 'common_features_train.csv', "
            "'sample_skeleton_test.csv', 'sample_skeleton_train.csv'] (or their "
            ".gz). Download sample_train.tar.gz")):
        load_ali_ccp(tmp_path)
    with pytest.raises(ValueError, match=r"sample_fraction must lie in \(0, 1\]. "
                       r"Received: sample_fraction=0"):
        load_ali_ccp(tmp_path, sample_fraction=0)
    with pytest.raises(ValueError, match="max_values_per_field must be >= 1"):
        load_ali_ccp(tmp_path, max_values_per_field=0)
    with pytest.raises(ValueError, match="needs a directory"):
        load_ali_ccp_source("", ALI_CCP_SCHEMA, {})
    directory = write_ali_ccp(tmp_path / "ali", 20, 20)
    wrong = Schema((*ALI_CCP_SCHEMA.without(["f301"]).features,
                    Feature("position", "context", "categorical")))
    with pytest.raises(ValueError, match=r"\['position'\] are not Ali-CCP fields"):
        load_ali_ccp(directory, schema=wrong)


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n\n", encoding="latin-1")


def _mutated(tmp_path: Path, case: str) -> tuple[Path, str]:
    """A 30 / 10-row release with one defect, and the message it must raise."""
    directory = write_ali_ccp(tmp_path / case, 30, 10)
    skeleton_path = directory / "sample_skeleton_train.csv"
    common_path = directory / "common_features_train.csv"
    skeleton = skeleton_path.read_text(encoding="latin-1").splitlines()
    common = common_path.read_text(encoding="latin-1").splitlines()
    fields = skeleton[6].split(",")
    at = "sample_skeleton_train.csv, line 7: "
    if case == "fields":
        skeleton[6] += ",extra"
        message = at + "expected 6 comma-separated fields .* found 7"
    elif case == "click":
        skeleton[6] = ",".join([fields[0], "2", "0", *fields[3:]])
        message = at + r"field 'click' \(comma field 2 of 6\): cannot parse '2'"
    elif case == "conversion":
        skeleton[6] = ",".join([fields[0], "0", "1", *fields[3:]])
        message = at + r"field 'conversion' \(comma field 3 of 6\): conversion=1 on"
    elif case == "feature_num":
        skeleton[6] = ",".join([*fields[:4], "99", fields[5]])
        message = at + r"field 'feature_num' \(comma field 5 of 6\): says '99' feat"
    elif case == "feature":
        skeleton[6] = ",".join([*fields[:5], fields[5].replace("\x03", "", 1)])
        message = at + (r"field 'feature_list' \(comma field 6 of 6\): feature 1 "
                        r"'205\\x02\d+1.0' is not field_id")
    elif case == "index":
        skeleton[6] = ",".join([*fields[:3], "feedfeedfeedfeed", *fields[4:]])
        message = at + ("'common_feature_index' 'feedfeedfeedfeed' is not in "
                        "common_features_train.csv")
    else:
        needed = {line.split(",")[3] for line in skeleton}
        number = next(i for i, line in enumerate(common)
                      if line.split(",")[0] in needed)
        if case == "common":
            common[number] = common[number].replace("\x02", "", 1)
            message = (rf"common_features_train.csv, line {number + 1}: field "
                       r"'feature_list' \(comma field 3 of 3\): feature 1")
        else:  # "duplicate"
            common.insert(number + 1, common[number])
            message = (rf"common_features_train.csv, line {number + 2}: field "
                       r"'common_feature_index' \(comma field 1 of 3\): the index "
                       "appears twice")
    _write_lines(skeleton_path, skeleton)
    _write_lines(common_path, common)
    return directory, message


CASES = ("fields", "click", "conversion", "feature_num", "feature", "index",
         "common", "duplicate")


@pytest.mark.parametrize("case", CASES)
def test_a_malformed_line_names_the_file_line_and_field(tmp_path, case):
    directory, message = _mutated(tmp_path, case)
    with pytest.raises(ValueError, match=message + ".*lenient=True"):
        load_ali_ccp(directory)


def test_lenient_mode_skips_and_counts_each_defect(tmp_path):
    counters = ("rows_read", "malformed_rows", "out_of_range_labels",
                "unknown_user_rows", "duplicate_rows")
    part = make_part(30, 0, 1)
    for case in CASES:
        directory, _ = _mutated(tmp_path, case)
        report = load_ali_ccp(directory, lenient=True).report
        counts = dict(zip(counters, (report.as_dict()[c] for c in counters)))
        # (malformed lines, bad labels, rows without user features, rows dropped)
        skipped = {"fields": (1, 0, 0, 1), "feature_num": (1, 0, 0, 1),
                   "feature": (1, 0, 0, 1), "click": (0, 1, 0, 1),
                   "conversion": (0, 1, 0, 1), "index": (0, 0, 1, 1),
                   "duplicate": (0, 0, 0, 0)}
        if case == "common":  # One common line, and the impressions sharing it.
            needed = {s["index"] for s in part.samples}
            index = next(line.split(",")[0] for line in common_lines(part, 1)
                         if line.split(",")[0] in needed)
            shared = sum(s["index"] == index for s in part.samples)
            skipped["common"] = (1, 0, shared, shared)
        malformed, labels, unknown, dropped = skipped[case]
        assert counts == {"rows_read": 40, "malformed_rows": malformed,
                          "out_of_range_labels": labels,
                          "unknown_user_rows": unknown,
                          "duplicate_rows": int(case == "duplicate")}, case
        assert report.rows_kept == 40 - dropped, case


def test_prepare_data_builds_the_model_arrays(tmp_path):
    from mtl_tf.config import Config
    from mtl_tf.experiment import prepare_data

    data = load_ali_ccp_source(write_ali_ccp(tmp_path / "ali", 300, 100),
                               ALI_CCP_SCHEMA, {})
    splits = ali_ccp_splits(data)
    prepared = prepare_data(Config(schema=ALI_CCP_SCHEMA, tasks=ALI_CCP_TASKS),
                            data, splits)
    train = prepared.arrays["train"]
    # Requests carry user and context features and the item id; the item
    # features come from the items table.
    inputs = [f.name for f in ALI_CCP_SCHEMA.features if f.side != "item"]
    assert set(inputs) | {"item_id", "click", "purchase"} <= set(train)
    assert set(prepared.preprocessing.features) == set(ALI_CCP_SCHEMA.names)
    assert len(train["item_id"]) == 270 and len(prepared.arrays["test"]["f125"]) == 100
    assert train["f110_14"].shape[1] == 10  # up to 15 shops written
    assert prepared.data.items["f210"].map(len).between(1, 3).all()
    assert set(np.unique(train["purchase"])) <= {0.0, 1.0}
    vocabulary = prepared.preprocessing.features["f206"].vocabulary
    assert 0 < len(vocabulary) <= CATEGORIES
