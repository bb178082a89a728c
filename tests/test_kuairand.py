"""The KuaiRand-Pure loader and protocol, on files in the exact raw format.

`write_kuairand` writes `KuaiRand-Pure/data/` as the archive holds it (the
headers and value formats of the dataset README), with planted signal that a
tiny model learns in a couple of epochs; the benchmark smoke test imports it.
"""

import csv
import dataclasses
import datetime as dt
import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from mtl_tf.config import Config
from mtl_tf.data.kuairand import (
    KUAIRAND_SCHEMA,
    KUAIRAND_TASKS,
    kuairand_files,
    kuairand_splits,
    load_kuairand,
    load_kuairand_source,
)
from mtl_tf.experiment import prepare_data
from mtl_tf.schema import Feature
from mtl_tf.task_config import label_columns

# The headers exactly as the README's field tables list them.
LOG_HEADER = ("user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,"
              "is_comment,is_forward,is_hate,long_view,play_time_ms,duration_ms,"
              "profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab")
USER_HEADER = ("user_id,user_active_degree,is_lowactive_period,is_live_streamer,"
               "is_video_author,follow_user_num,follow_user_num_range,"
               "fans_user_num,fans_user_num_range,friend_user_num,"
               "friend_user_num_range,register_days,register_days_range,"
               + ",".join(f"onehot_feat{i}" for i in range(18)))
VIDEO_HEADER = ("video_id,author_id,video_type,upload_dt,upload_type,"
                "visible_status,video_duration,server_width,server_height,"
                "music_id,music_type,tag")
STANDARD = {"log_standard_4_08_to_4_21_pure.csv": (dt.date(2022, 4, 8), 14),
            "log_standard_4_22_to_5_08_pure.csv": (dt.date(2022, 4, 22), 17)}
RANDOM = ("log_random_4_22_to_5_08_pure.csv", dt.date(2022, 4, 22), 17)
BEIJING = dt.timezone(dt.timedelta(hours=8))
# One tag id per topic (a user's favourite topic is its onehot_feat1, 0..6).
TOPIC_TAGS = (3, 11, 18, 27, 39, 45, 60)
EXTRA_TAGS = (2, 8, 50, 66)
ACTIVITY = {"high_active": 0.4, "full_active": 0.2, "middle_active": -0.2,
            "UNKNOWN": -0.4}
# The README's value ranges of onehot_feat0..17 (upper bounds, inclusive).
ONEHOT_MAX = (1, 6, 49, 1470, 14, 33, 2, 117, 453, 6, 4, 4, 1, 1, 1, 1, 1, 1)
BUCKETS = {  # (upper bound, label) of the README's *_range values
    "follow_user_num": ((0, "0"), (10, "(0,10]"), (50, "(10,50]"),
                        (100, "(50,100]"), (150, "(100,150]"), (250, "(150,250]"),
                        (500, "(250,500]"), (10**9, "500+")),
    "fans_user_num": ((0, "0"), (9, "[1,10)"), (99, "[10,100)"), (999, "[100,1k)"),
                      (4999, "[1k,5k)"), (9999, "[5k,1w)"), (10**9, "[1w,10w)")),
    "friend_user_num": ((0, "0"), (4, "[1,5)"), (29, "[5,30)"), (59, "[30,60)"),
                        (119, "[60,120)"), (249, "[120,250)"), (10**9, "250+")),
    "register_days": ((30, "15-30"), (60, "31-60"), (90, "61-90"),
                      (180, "91-180"), (365, "181-365"), (730, "366-730"),
                      (10**9, "730+")),
}


def _bucket(name: str, value: int) -> str:
    return next(label for top, label in BUCKETS[name] if value <= top)


def _standardized(x):
    x = np.asarray(x, np.float64)
    return (x - x.mean()) / (x.std() + 1e-9)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def write_kuairand(directory: Path, num_users: int = 40, num_videos: int = 30,
                   rows_per_log: int = 300, *, gz: bool = False,
                   seed: int = 0) -> Path:
    """Writes a synthetic KuaiRand-Pure: `directory/data/*.csv[.gz]`.

    The two standard logs (`rows_per_log` rows each, dates 2022-04-08 ..
    04-21 and 04-22 .. 05-08), the random log (a quarter as many rows,
    `is_rand` 1), `user_features_pure.csv` and `video_features_basic_pure.csv`
    (the statistic table, never read, is not written), with the README's
    headers and value formats: `date` yyyymmdd, `hourmin` the Beijing hour as
    HH00, `time_ms` epoch milliseconds, `tag` a quoted "27,50" or empty,
    `video_duration` a float ("17200.0", empty for ~3% of videos), log rows
    ordered by user, then time.

    Planted signal: each user has a favourite topic (written as its
    `onehot_feat1`) and a second one; each video one topic, whose tag id leads
    its `tag`. Standard feeds show the favourite topic 60% of the time.
    Click logit: -1.2, +2.4 on the favourite topic, +1.0 on the second, -1.5
    on ads, -1.2 per standard deviation of log duration, +0.8 per standard
    deviation of log register days, -0.4 .. +0.4 by `user_active_degree`.
    Likes need a click (logit -1.0, +2.0 on the favourite topic, +0.8 per sd
    of log register days). `long_view` logit: -1.5, +2.5 after a click, +0.6
    on the favourite topic, -1.5 per sd of log duration; `play_time_ms`
    agrees with it (at least min(18 s, the video) exactly when long_view).
    The numeric effects make the heads learnable in two epochs (test AUCs
    ~0.7 on 200 users / 150 videos / 2 x 2000 rows, batch 256 or 1024); the
    topics make retrieval learnable.

    Returns:
        The `data` folder (its parent is the `KuaiRand-Pure` folder).
    """
    rng = np.random.default_rng(seed)
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    favourite = rng.integers(0, 7, num_users)
    second = (favourite + rng.integers(1, 7, num_users)) % 7
    degree = rng.choice(list(ACTIVITY), num_users, p=[0.3, 0.4, 0.2, 0.1])
    users = []
    for u in range(num_users):
        counts = {"follow_user_num": int(rng.geometric(0.02)) - 1,
                  "fans_user_num": int(rng.lognormal(3, 2)),
                  "friend_user_num": int(rng.geometric(0.1)) - 1,
                  "register_days": int(rng.integers(15, 3700))}
        onehot = [int(rng.integers(0, top + 1)) for top in ONEHOT_MAX]
        onehot[1] = int(favourite[u])
        users.append([u, degree[u], *rng.integers(0, 2, 3),
                      *(v for name, n in counts.items()
                        for v in (n, _bucket(name, n))), *onehot])
    topic = rng.permutation(np.arange(num_videos) % 7)
    duration = rng.integers(30, 3000, num_videos) * 100
    ad = rng.random(num_videos) < 0.1
    videos = []
    for v in range(num_videos):
        tags = [TOPIC_TAGS[topic[v]]] + ([int(rng.choice(EXTRA_TAGS))]
                                         if rng.random() < 0.4 else [])
        videos.append([
            v, 1000 + 37 * int(rng.integers(0, max(1, num_videos // 3))),
            "AD" if ad[v] else "NORMAL",
            str(dt.date(2021, 1, 1) + dt.timedelta(int(rng.integers(0, 460)))),
            rng.choice(["ShortImport", "LongImport", "ShortCamera", "Web"]),
            1, "" if rng.random() < 0.03 else f"{float(duration[v])}",
            720, 1280, int(rng.integers(10**8, 10**9)),
            int(rng.choice([4, 8, 9, 11])),
            "" if rng.random() < 0.08 else ",".join(map(str, tags))])
    by_topic = [np.flatnonzero(topic == t) for t in range(7)]
    # Standardized log duration and log register days: numeric main effects
    # that even a couple of epochs pick up.
    short = _standardized(np.log(duration))
    tenure = _standardized(np.log([row[11] for row in users]))
    logs = {name: (start, days, rows_per_log, 0)
            for name, (start, days) in STANDARD.items()}
    logs[RANDOM[0]] = (RANDOM[1], RANDOM[2], max(1, rows_per_log // 4), 1)
    for name, (start, days, rows, is_rand) in logs.items():
        user = rng.integers(0, num_users, rows)
        video = np.where(rng.random(rows) < (0.6 if not is_rand else 0.0),
                         [rng.choice(by_topic[favourite[u]]) for u in user],
                         rng.integers(0, num_videos, rows))
        match = topic[video] == favourite[user]
        logit = (-1.2 + 2.4 * match + 1.0 * (topic[video] == second[user])
                 - 1.5 * ad[video] - 1.2 * short[video] + 0.8 * tenure[user]
                 + np.vectorize(ACTIVITY.get)(degree[user]))
        click = rng.random(rows) < _sigmoid(logit)
        like = click & (rng.random(rows) < _sigmoid(-1.0 + 2.0 * match
                                                    + 0.8 * tenure[user]))
        long_view = rng.random(rows) < _sigmoid(-1.5 + 2.5 * click + 0.6 * match
                                                - 1.5 * short[video])
        day = rng.integers(0, days, rows)
        second_of_day = rng.integers(0, 86400, rows)
        lines = []
        for i in range(rows):
            when = dt.datetime.combine(start + dt.timedelta(int(day[i])),
                                       dt.time(), BEIJING)
            time_ms = (int(when.timestamp()) + int(second_of_day[i])) * 1000 + int(
                rng.integers(0, 1000))
            length = int(duration[video[i]])
            enough = min(length, 18000)
            play = (int(rng.integers(enough, int(length * 1.5) + 1)) if long_view[i]
                    else int(rng.integers(0, enough)))
            comment = int(click[i] and rng.random() < 0.03)
            profile = int(rng.random() < 0.03)
            lines.append((int(user[i]), time_ms, [
                int(user[i]), int(video[i]), f"{when:%Y%m%d}",
                int(second_of_day[i]) // 3600 * 100, time_ms, int(click[i]),
                int(like[i]), int(click[i] and rng.random() < 0.02), comment,
                int(click[i] and rng.random() < 0.02),
                int(not click[i] and rng.random() < 0.01), int(long_view[i]), play,
                length, int(rng.integers(1000, 60000)) if profile else 0,
                int(rng.integers(1000, 90000)) if comment else 0, profile, is_rand,
                int(rng.choice([0, 1, 2, 4, 6], p=[0.1, 0.5, 0.2, 0.1, 0.1]))]))
        lines.sort(key=lambda line: line[:2])
        _write(data / name, LOG_HEADER, [row for _, _, row in lines], gz)
    _write(data / "user_features_pure.csv", USER_HEADER, users, gz)
    _write(data / "video_features_basic_pure.csv", VIDEO_HEADER, videos, gz)
    return data


def _write(path: Path, header: str, rows: list, gz: bool) -> None:
    opener = (lambda: gzip.open(f"{path}.gz", "wt", newline="")) if gz else (
        lambda: open(path, "w", newline=""))
    with opener() as handle:
        handle.write(header + "\n")
        csv.writer(handle, lineterminator="\n").writerows(rows)


def raw_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    return write_kuairand(tmp_path_factory.mktemp("kuairand") / "KuaiRand-Pure")


@pytest.fixture(scope="module")
def loaded(written):
    return load_kuairand(written)


def test_the_generator_writes_the_raw_format(written):
    for name, header in [(n, LOG_HEADER) for n in (*STANDARD, RANDOM[0])] + [
            ("user_features_pure.csv", USER_HEADER),
            ("video_features_basic_pure.csv", VIDEO_HEADER)]:
        assert (written / name).read_text().splitlines()[0] == header
    first = raw_rows(written / "log_standard_4_08_to_4_21_pure.csv")[0]
    when = dt.datetime.fromtimestamp(int(first["time_ms"]) / 1000, BEIJING)
    assert first["date"] == f"{when:%Y%m%d}" and len(first["time_ms"]) == 13
    assert int(first["hourmin"]) == when.hour * 100
    text = (written / "video_features_basic_pure.csv").read_text()
    assert re.search(r',"\d+,\d+"\n', text)  # A tag list is one quoted field.
    assert any(row["video_duration"].endswith(".0")
               for row in raw_rows(written / "video_features_basic_pure.csv"))


def test_the_raw_files_parse_into_the_built_in_schema(written, loaded):
    logs = [raw_rows(written / name) for name in STANDARD]
    rows = logs[0] + logs[1]
    frame = loaded.interactions
    assert len(frame) == 600 and loaded.report.rows_read == 600
    assert loaded.report.rows_kept == 600 and loaded.num_users == 40
    assert loaded.num_items == 30 and (frame["is_rand"] == 0).all()
    for label in ("is_click", "long_view", "is_like"):
        assert frame[label].mean() == pytest.approx(
            np.mean([float(r[label]) for r in rows]))
    click, long_view = frame["is_click"], frame["long_view"]
    assert 0.15 < click.mean() < 0.7 and 0 < frame["is_like"].mean() < click.mean()
    assert long_view[click == 1].mean() > long_view[click == 0].mean() + 0.3
    assert (frame.loc[frame["is_like"] == 1, "is_click"] == 1).all()
    # Time order across both files; the date and the hour stay columns.
    assert np.all(np.diff(frame["time_ms"].to_numpy()) >= 0)
    assert frame["date"].dtype == np.int64 and frame["date"].min() >= 20220408
    assert (frame["hour"] == frame["hourmin"] // 100).all()
    assert frame["hour"].between(0, 23).all()
    assert {"_file", "_line", "play_time_ms"} <= set(frame.columns)
    assert "tag" not in frame.columns and "onehot_feat1" not in frame.columns
    # Side tables: tags as tuples ("" -> ()), durations numeric (blank -> NaN).
    videos = {r["video_id"]: r for r in raw_rows(
        written / "video_features_basic_pure.csv")}
    items = loaded.items.set_index("video_id")
    for video, row in videos.items():
        assert items.loc[video, "tag"] == tuple(t for t in row["tag"].split(",") if t)
        duration = items.loc[video, "video_duration"]
        assert (np.isnan(duration) if not row["video_duration"]
                else duration == float(row["video_duration"]))
    assert items["video_duration"].dtype == np.float64
    assert loaded.users.set_index("user_id").loc["0", "follow_user_num"] == float(
        raw_rows(written / "user_features_pure.csv")[0]["follow_user_num"])


def test_the_planted_signal_is_there(written, loaded):
    users = {r["user_id"]: int(r["onehot_feat1"]) for r in raw_rows(
        written / "user_features_pure.csv")}
    topic = {r["video_id"]: TOPIC_TAGS.index(int(r["tag"].split(",")[0]))
             for r in raw_rows(written / "video_features_basic_pure.csv") if r["tag"]}
    frame = loaded.interactions[loaded.interactions["video_id"].isin(topic)]
    match = np.array([users[u] == topic[v] for u, v in zip(frame["user_id"],
                                                            frame["video_id"])])
    assert frame["is_click"][match].mean() > frame["is_click"][~match].mean() + 0.25
    assert frame["is_like"][match].mean() > frame["is_like"][~match].mean()
    duration = loaded.items.set_index("video_id")["video_duration"]
    long = (frame["duration_ms"] > frame["duration_ms"].median()).to_numpy()
    assert frame["is_click"][~long].mean() > frame["is_click"][long].mean() + 0.1
    assert frame["long_view"][~long].mean() > frame["long_view"][long].mean() + 0.1
    known = duration.dropna()
    assert (frame["duration_ms"][frame["video_id"].isin(known.index)].to_numpy()
            == known[frame["video_id"][frame["video_id"].isin(
                known.index)]].to_numpy()).all()


def test_the_schema_and_tasks_validate():
    config = Config(schema=KUAIRAND_SCHEMA, tasks=KUAIRAND_TASKS)
    assert [t.name for t in config.tasks] == ["retrieval", "click", "long_view",
                                              "like"]
    assert config.task("retrieval").where == "is_click == 1"
    labels = label_columns(KUAIRAND_TASKS)
    assert set(labels) == {"is_click", "long_view", "is_like"}
    assert not set(labels) & set(KUAIRAND_SCHEMA.names)
    feedback = {"is_follow", "is_comment", "is_forward", "is_hate", "play_time_ms",
                "duration_ms", "is_profile_enter", "is_rand", "counts"}
    assert not feedback & set(KUAIRAND_SCHEMA.names)
    schema = KUAIRAND_SCHEMA
    assert (schema.user_id.name, schema.item_id.name) == ("user_id", "video_id")
    assert schema.timestamp == "time_ms"
    assert (schema["author_id"].kind, schema["author_id"].min_count) == (
        "categorical", 2)
    assert (schema["tag"].kind, schema["tag"].separator) == ("multi_categorical",
                                                             ",")
    assert (schema["video_duration"].kind, schema["video_duration"].transform) == (
        "numeric", "log1p")
    assert schema["fans_user_num"].transform == "log1p"
    assert [f.name for f in schema.on_side("context")] == ["tab", "hour"]
    assert schema["hour"].dtype == "int64"
    assert len(schema.on_side("user")) == 31 and len(schema.on_side("item")) == 7
    with pytest.raises(ValueError, match="is also a model input"):
        Config(schema=dataclasses.replace(schema, features=schema.features + (
            Feature("is_click", "context", "numeric"),)), tasks=KUAIRAND_TASKS)


def test_the_protocol_splits_by_date(written, loaded):
    splits = kuairand_splits(loaded)
    dates = {name: set(getattr(splits, name)["date"]) for name in
             ("train", "validation", "test")}
    assert max(dates["train"]) < min(dates["validation"])
    assert max(dates["validation"]) < min(dates["test"])
    assert dates["test"] <= set(range(20220502, 20220509))
    assert dates["validation"] <= {20220429, 20220430, 20220501}
    late = raw_rows(written / "log_standard_4_22_to_5_08_pure.csv")
    count = {name: sum(lo <= int(r["date"]) <= hi for r in late) for name, lo, hi in
             (("validation", 20220429, 20220501), ("test", 20220502, 20220508))}
    assert splits.sizes() == {"train": 600 - count["validation"] - count["test"],
                              **count}
    assert count["test"] > 50 and count["validation"] > 15
    other = kuairand_splits(loaded, validation_days=0, test_days=10)
    assert len(other.validation) == 0 and min(other.test["date"]) >= 20220429
    with pytest.raises(ValueError, match=r"test_days must be >= 1.*test_days=0"):
        kuairand_splits(loaded, test_days=0)
    with pytest.raises(ValueError, match=r"\['train'\] split\(s\) would be empty: "
                       r"the data spans 31 days \(2022-04-08 \.\. 2022-05-08\)"):
        kuairand_splits(loaded, validation_days=4, test_days=27)


def test_prepare_data_builds_every_split(loaded):
    config = Config(schema=KUAIRAND_SCHEMA, tasks=KUAIRAND_TASKS)
    prepared = prepare_data(config, loaded, kuairand_splits(loaded))
    assert prepared.splits.sizes() == kuairand_splits(loaded).sizes()
    train = prepared.arrays["train"]
    assert len(train["user_id"]) == prepared.splits.sizes()["train"]
    assert train["hour"].dtype == np.int64 and "tab" in train
    fitted = prepared.preprocessing
    assert set(fitted["tag"].vocabulary) <= {str(t) for t in TOPIC_TAGS + EXTRA_TAGS}
    assert len(fitted["tag"].vocabulary) >= 7
    assert fitted["video_duration"].std > 0  # log1p'd, fitted on training videos


def test_gzipped_files_max_rows_and_either_folder(tmp_path):
    data = write_kuairand(tmp_path / "KuaiRand-Pure", 20, 15, 120, gz=True)
    paths = kuairand_files(data.parent)
    assert paths == kuairand_files(data)
    assert paths["users"].name == "user_features_pure.csv.gz"
    assert paths["random_4_22_to_5_08"].name == "log_random_4_22_to_5_08_pure.csv.gz"
    assert "video_statistics" not in paths
    assert len(load_kuairand(data.parent).interactions) == 240
    capped = load_kuairand(data, max_rows=50)
    assert len(capped.interactions) == 100 and capped.report.rows_read == 100
    assert capped.interactions["_file"].str.endswith(".csv.gz").all()
    assert set(capped.interactions["_line"]) == set(range(2, 52))


def test_a_missing_directory_or_file_lists_what_is_there(tmp_path):
    with pytest.raises(ValueError, match=r"data directory not found.*kuairand\.com"):
        load_kuairand(tmp_path / "nope")
    data = write_kuairand(tmp_path / "KuaiRand-Pure", 10, 8, 20)
    (data / "user_features_pure.csv").unlink()
    (data / "notes.txt").write_text("")
    with pytest.raises(ValueError, match=r"missing \['user_features_pure.csv\[.gz\]'"
                       r"\]; it holds \['log_random_4_22_to_5_08_pure.csv', "
                       r".*'notes.txt', 'video_features_basic_pure.csv'\]\. "
                       r"Pass the KuaiRand-Pure folder \(or its data/ subfolder\)\. "
                       r"Download KuaiRand-Pure.tar.gz from https://kuairand.com "
                       r"\(Zenodo record 10439422; CC BY-SA 4.0\)"):
        load_kuairand(data.parent)


def _corrupt(path: Path, line: int, column: str, value: str) -> None:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    if column == "<extra field>":
        lines[line - 1] += ",7"
    else:
        fields = next(csv.reader([lines[line - 1]]))
        fields[header.index(column)] = value
        lines[line - 1] = ",".join(f'"{f}"' if "," in f else f for f in fields)
    path.write_text("\n".join(lines) + "\n")


BAD_LINES = [  # (column, value, the message after "<file>, line <n>")
    ("is_click", "2", r": column 'is_click': cannot parse '2'; expected 0 or 1"),
    ("long_view", "", r": column 'long_view': cannot parse ''; expected 0 or 1"),
    ("user_id", "u7", r": column 'user_id': cannot parse 'u7'; expected a "
     r"non-negative integer"),
    ("time_ms", "soon", r": column 'time_ms': cannot parse 'soon'; expected epoch "
     r"milliseconds"),
    ("date", "20220431", r": column 'date': cannot parse '20220431'; expected a "
     r"date as yyyymmdd"),
    ("hourmin", "2500", r": column 'hourmin': cannot parse '2500'; expected the "
     r"time as HHMM"),
    ("<extra field>", "", r": expected 19 fields \(one per header column\), "
     r"found 20"),
]


@pytest.mark.parametrize("column, value, message", BAD_LINES,
                         ids=[c for c, _, _ in BAD_LINES])
def test_a_malformed_log_line_names_the_file_line_and_column(tmp_path, column,
                                                             value, message):
    data = write_kuairand(tmp_path / "KuaiRand-Pure", 10, 8, 30)
    path = data / "log_standard_4_22_to_5_08_pure.csv"
    _corrupt(path, 7, column, value)
    with pytest.raises(ValueError, match=r"log_standard_4_22_to_5_08_pure\.csv, "
                       rf"line 7{message}.*lenient=True"):
        load_kuairand(data)
    lenient = load_kuairand(data, lenient=True)
    flag = column in ("is_click", "long_view")
    assert len(lenient.interactions) == 59 and lenient.report.rows_read == 60
    assert (lenient.report.out_of_range_labels, lenient.report.malformed_rows) == (
        (1, 0) if flag else (0, 1))
    assert 7 not in set(lenient.interactions.loc[lenient.interactions[
        "_file"].str.contains("4_22"), "_line"])


def test_lenient_counts_every_kind_of_bad_line(tmp_path):
    data = write_kuairand(tmp_path / "KuaiRand-Pure", 10, 8, 30)
    path = data / "log_standard_4_08_to_4_21_pure.csv"
    for line, (column, value, _) in enumerate(BAD_LINES, 3):
        _corrupt(path, line, column, value)
    with pytest.raises(ValueError, match=r"4_21_pure\.csv, line 9: expected 19 "):
        load_kuairand(data)  # The field count is checked while reading.
    report = load_kuairand(data, lenient=True).report
    assert (report.rows_read, report.rows_kept) == (60, 53)
    assert (report.malformed_rows, report.out_of_range_labels) == (5, 2)


def test_unknown_videos_and_bad_side_table_keys(tmp_path):
    data = write_kuairand(tmp_path / "KuaiRand-Pure", 10, 8, 40)
    videos = data / "video_features_basic_pure.csv"
    logs = [r for name in STANDARD for r in raw_rows(data / name)]
    gone = logs[0]["video_id"]
    lines = videos.read_text().splitlines()
    videos.write_text("\n".join(line for line in lines
                                if not line.startswith(f"{gone},")) + "\n")
    with pytest.raises(ValueError, match=rf"_pure\.csv, line \d+: 'video_id' "
                       rf"'{gone}' is not in the item table "
                       r"\(video_features_basic_pure\.csv\)\. Add it there"):
        load_kuairand(data)
    lenient = load_kuairand(data, lenient=True)
    missing = sum(r["video_id"] == gone for r in logs)
    assert lenient.report.unknown_item_rows == missing
    assert len(lenient.interactions) == 80 - missing
    users = data / "user_features_pure.csv"
    _corrupt(users, 4, "user_id", "x2")
    with pytest.raises(ValueError, match=r"user_features_pure\.csv, line 4: column "
                       r"'user_id': cannot parse 'x2'"):
        load_kuairand(data, lenient=False)


def test_the_source_loader_needs_a_directory(written):
    with pytest.raises(ValueError, match="data.source='kuairand' needs a directory"):
        load_kuairand_source(None, KUAIRAND_SCHEMA, label_columns(KUAIRAND_TASKS))
    data = load_kuairand_source(written.parent, KUAIRAND_SCHEMA,
                                label_columns(KUAIRAND_TASKS))
    assert len(data.interactions) == 600 and data.schema == KUAIRAND_SCHEMA
    smaller = KUAIRAND_SCHEMA.without(["tag", "hour"])
    data = load_kuairand(written, schema=smaller)
    assert "tag" not in data.items.columns and data.schema == smaller
