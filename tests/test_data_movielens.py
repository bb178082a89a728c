"""Tests for mtl_tf.data.movielens on tiny hand-written ml-100k / ml-1m folders."""

import numpy as np
import pandas as pd
import pytest

from mtl_tf.data import movielens_schema as F
from mtl_tf.data.movielens import (
    TFDS_OCCUPATIONS,
    detect_layout,
    load_movielens_dir,
)


def _flags(*on):
    return "|".join("1" if i in on else "0" for i in range(19))


# u.genre order: 0 unknown, 3 Animation, 4 Children's, 5 Comedy, 14 Romance.
ITEMS_100K = [
    f"1|Toy Story (1995)|01-Jan-1995||http://imdb/1|{_flags(3, 4, 5)}",
    f"2|Amélie (2001)|01-Jan-2001||http://imdb/2|{_flags(5, 14)}",
    f"3|unknown||||{_flags(0)}",
]
USERS_100K = [
    "1|17|M|student|01002",
    "2|24|F|administrator|T8H1N",
    "3|45|M|none|55105",
    "4|61|F|healthcare|94043",
]
DATA_100K = [
    "1\t1\t5\t881250949",
    "2\t1\t3\t881250950",
    "1\t2\t4\t881250951",
    "3\t3\t1\t881250952",
    "4\t2\t2\t881250953",
]

MOVIES_1M = [
    "1::Toy Story (1995)::Animation|Children's|Comedy",
    "2::Heat (1995)::Action|Crime|Thriller",
    "3::Sabrina (1995)::Comedy|Romance",
]
USERS_1M = [
    "1::F::1::10::48067",
    "2::M::56::16::70072",
    "3::M::25::15::55117",
    "4::F::45::0::02460",
    "5::M::35::20::55455",
]
RATINGS_1M = [
    "1::1::5::978300760",
    "2::2::3::978302109",
    "3::3::4::978301968",
    "4::1::1::978300275",
    "5::2::2::978824291",
]


def _write(path, lines, newline="\n"):
    path.write_bytes((newline.join(lines) + newline).encode("latin-1"))


def write_ml100k(root, data=DATA_100K, items=ITEMS_100K, users=USERS_100K):
    root.mkdir(exist_ok=True)
    _write(root / "u.data", data)
    _write(root / "u.item", items)
    _write(root / "u.user", users)
    return root


def write_ml1m(root, ratings=RATINGS_1M, movies=MOVIES_1M, users=USERS_1M):
    root.mkdir(exist_ok=True)
    _write(root / "ratings.dat", ratings)
    _write(root / "movies.dat", movies)
    _write(root / "users.dat", users)
    return root


def test_tfds_label_tables():
    # The ClassLabel orders of tensorflow_datasets/structured/movielens.py.
    assert len(F.GENRES) == 21 and F.GENRES.index("Unknown") == 17
    assert F.GENRES.index("Western") == 19 and F.GENRES[-1] == "(no genres listed)"
    assert len(TFDS_OCCUPATIONS) == 22 and TFDS_OCCUPATIONS.index("student") == 17


def test_ml100k_interactions(tmp_path):
    data = load_movielens_dir(write_ml100k(tmp_path / "ml"))
    assert data.name == "ml-100k"
    rows = data.interactions
    assert list(rows.columns) == ["user_id", "movie_id", "user_rating", "timestamp",
                                  "like"]
    assert rows["like"].tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]  # rating >= 4
    assert rows["user_id"].tolist() == ["1", "2", "1", "3", "4"]
    assert rows["movie_id"].tolist() == ["1", "1", "2", "3", "2"]
    assert rows["user_rating"].tolist() == [5.0, 3.0, 4.0, 1.0, 2.0]
    assert rows["timestamp"].tolist() == [881250949 + i for i in range(5)]
    assert rows["user_rating"].dtype == np.float32
    assert rows["timestamp"].dtype == np.int64
    assert pd.api.types.is_string_dtype(rows["user_id"])
    assert data.report.rows_read == 5 and data.report.rows_kept == 5


def test_ml100k_items_use_tfds_genre_ids_and_latin1_titles(tmp_path):
    items = load_movielens_dir(write_ml100k(tmp_path / "ml")).items
    assert items["movie_id"].tolist() == ["1", "2", "3"]
    assert items["movie_title"].tolist() == [
        "Toy Story (1995)", "Amélie (2001)", "unknown"]
    # TFDS ids: Animation 2, Children 3, Comedy 4, Romance 14, Unknown 17.
    assert items["movie_genres"].tolist() == [(2, 3, 4), (4, 14), (17,)]


def test_ml100k_users_bucketize_age_and_map_occupations(tmp_path):
    users = load_movielens_dir(write_ml100k(tmp_path / "ml")).users
    assert users["user_id"].tolist() == ["1", "2", "3", "4"]
    # 17 -> 1 (under 18), 24 -> 18, 45 -> 45, 61 -> 56, as TFDS bucketizes.
    assert users["bucketized_user_age"].tolist() == [1.0, 18.0, 45.0, 56.0]
    assert users["bucketized_user_age"].dtype == np.float32
    assert users["user_gender"].tolist() == [True, False, True, False]
    assert users["user_gender"].dtype == bool
    # student 17, administrator -> clerical/admin 2, none -> other 11,
    # healthcare -> doctor/health care 4.
    assert users["user_occupation_label"].tolist() == [17, 2, 11, 4]
    assert users["user_occupation_label"].dtype == np.int64
    assert users["user_zip_code"].tolist() == ["01002", "T8H1N", "55105", "94043"]


def test_ml1m_tables(tmp_path):
    data = load_movielens_dir(write_ml1m(tmp_path / "ml"))
    assert data.name == "ml-1m"
    assert data.interactions["user_rating"].tolist() == [5.0, 3.0, 4.0, 1.0, 2.0]
    assert data.interactions["timestamp"].tolist()[0] == 978300760
    # "Children's" is TFDS's "Children" (3); Action 0, Crime 5, Thriller 16.
    assert data.items["movie_genres"].tolist() == [(2, 3, 4), (0, 5, 16), (4, 14)]
    users = data.users
    assert users["bucketized_user_age"].tolist() == [1.0, 56.0, 25.0, 45.0, 35.0]
    assert users["user_gender"].tolist() == [False, True, True, False, True]
    # K-12 student (10) -> student 17, self-employed 16, scientist 15,
    # other/not specified (0) -> 11, writer (20) -> 21.
    assert users["user_occupation_label"].tolist() == [17, 16, 15, 11, 21]
    assert users["user_zip_code"].tolist()[3] == "02460"


def test_detect_layout(tmp_path):
    assert detect_layout(write_ml100k(tmp_path / "a")) == "ml-100k"
    assert detect_layout(write_ml1m(tmp_path / "b")) == "ml-1m"


def test_windows_line_endings_and_blank_lines(tmp_path):
    root = write_ml100k(tmp_path / "ml")
    _write(root / "u.data", DATA_100K[:2] + [""] + DATA_100K[2:] + [""], "\r\n")
    data = load_movielens_dir(root)
    assert data.interactions["timestamp"].tolist() == [881250949 + i for i in range(5)]
    assert data.report.rows_read == 5


def test_missing_directory(tmp_path):
    with pytest.raises(ValueError) as info:
        load_movielens_dir(tmp_path / "nope")
    message = str(info.value)
    assert message.startswith("data directory not found: ")
    assert "nope" in message and "pass --data-dir" in message


def test_unknown_layout_lists_found_and_expected_files(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n")
    with pytest.raises(ValueError) as info:
        load_movielens_dir(tmp_path)
    message = str(info.value)
    assert "unrecognised MovieLens layout" in message
    assert "['movies.csv', 'ratings.csv']" in message
    assert "u.data, u.item, u.user" in message
    assert "ratings.dat, movies.dat, users.dat" in message


def test_unknown_layout_points_at_nested_folder(tmp_path):
    write_ml100k(tmp_path / "ml-100k")
    with pytest.raises(ValueError, match=r"Did you mean .*ml-100k\?"):
        load_movielens_dir(tmp_path)


def test_incomplete_layout_names_missing_files(tmp_path):
    root = write_ml100k(tmp_path / "ml")
    (root / "u.user").unlink()
    with pytest.raises(ValueError, match=r"looks like ml-100k .* missing \['u.user'\]"):
        load_movielens_dir(root)


@pytest.mark.parametrize("line, field, received", [
    ("1\t1\tfive\t881250949", "user_rating", "'five'"),
    ("1\t1\t5\t2001-01-01", "timestamp", "'2001-01-01'"),
    ("u1\t1\t5\t881250949", "user_id", "'u1'"),
    ("1\t1.5\t5\t881250949", "movie_id", "'1.5'"),
])
def test_unparseable_field_names_file_line_field_and_text(
        tmp_path, line, field, received):
    data = DATA_100K[:2] + [line] + DATA_100K[2:]
    root = write_ml100k(tmp_path / "ml", data=data)
    with pytest.raises(ValueError) as info:
        load_movielens_dir(root)
    message = str(info.value)
    assert f"u.data, line 3: cannot parse field '{field}'" in message
    assert f"received {received}" in message
    assert "lenient=True / --set data.lenient=true" in message


def test_wrong_field_count_names_line_after_blank_lines(tmp_path):
    data = ["", DATA_100K[0], "", "1\t2\t3"]
    root = write_ml100k(tmp_path / "ml", data=data)
    with pytest.raises(ValueError) as info:
        load_movielens_dir(root)
    message = str(info.value)
    assert "u.data, line 4: expected 4 fields" in message
    assert "found 3" in message and "received '1\\t2\\t3'" in message


@pytest.mark.parametrize("file, lines, needle", [
    ("movies.dat", [MOVIES_1M[0], "2::Heat (1995)::Action|Gangster"],
     "movies.dat, line 2: cannot parse field 'movie_genres': "
     "received 'Action|Gangster'"),
    ("users.dat", USERS_1M[:3] + ["4::F::30::0::02460"],
     "users.dat, line 4: cannot parse field 'age': received 30"),
    ("users.dat", ["1::F::1::21::48067"],
     "users.dat, line 1: cannot parse field 'occupation': received 21"),
    ("users.dat", ["1::X::1::10::48067"],
     "users.dat, line 1: cannot parse field 'user_gender': received 'X'"),
])
def test_ml1m_side_file_errors(tmp_path, file, lines, needle):
    root = write_ml1m(tmp_path / "ml")
    _write(root / file, lines)
    with pytest.raises(ValueError) as info:
        load_movielens_dir(root)
    assert needle in str(info.value)


@pytest.mark.parametrize("file, lines, needle", [
    ("u.item", ITEMS_100K[:1] + [f"2|Heat|||x|{_flags(1)[:-1]}2"],
     "u.item, line 2: cannot parse field 'genre_Western': received '2'"),
    ("u.item", ITEMS_100K + [ITEMS_100K[0]],
     "u.item, line 4: cannot parse field 'movie_id': received '1'"),
    ("u.user", USERS_100K[:1] + ["2|24|F|astronaut|T8H1N"],
     "u.user, line 2: cannot parse field 'occupation': received 'astronaut'"),
    ("u.user", ["1|old|M|student|01002"],
     "u.user, line 1: cannot parse field 'age': received 'old'"),
])
def test_ml100k_side_file_errors(tmp_path, file, lines, needle):
    root = write_ml100k(tmp_path / "ml")
    _write(root / file, lines)
    with pytest.raises(ValueError) as info:
        load_movielens_dir(root)
    assert needle in str(info.value)


def test_bad_ratings_raise_through_cleaning(tmp_path):
    root = write_ml100k(tmp_path / "ml", data=DATA_100K + ["1\t3\t6\t881250999"])
    with pytest.raises(ValueError, match=r"u.data, line 6: field 'user_rating' is "
                                         r"out of range: received 6.0"):
        load_movielens_dir(root)
    root = write_ml100k(tmp_path / "ml", data=["1\t3\t\t881250999"])
    with pytest.raises(ValueError, match=r"u.data, line 1: field 'user_rating' is "
                                         r"missing \(NaN\)"):
        load_movielens_dir(root)


def test_unknown_item_raises_in_strict_mode(tmp_path):
    root = write_ml100k(tmp_path / "ml", data=DATA_100K + ["1\t42\t3\t881250999"])
    with pytest.raises(ValueError, match=r"u.data, line 6: field 'movie_id' is not "
                                         r"in the item table: received '42'"):
        load_movielens_dir(root)


def test_lenient_skips_and_counts_every_kind_of_bad_row(tmp_path):
    data = DATA_100K + [
        "1\t3",                    # wrong field count
        "1\t3\tabc\t881250999",    # unparseable rating
        "1\t3\tnan\t881250999",    # NaN rating
        "2\t3\t7\t881250999",      # out of range
        "1\t1\t2\t881250000",      # duplicate of line 1, older: dropped
        "1\t42\t3\t881250999",     # unknown item
        "9\t1\t3\t881250999",      # unknown user
        "",                        # blank: ignored, not counted
    ]
    data = load_movielens_dir(write_ml100k(tmp_path / "ml", data=data), lenient=True)
    report = data.report
    assert report.rows_read == 12
    assert report.malformed_rows == 2
    assert (report.nan_labels, report.out_of_range_labels) == (1, 1)
    assert report.duplicate_rows == 1
    assert (report.unknown_item_rows, report.unknown_user_rows) == (1, 1)
    assert report.rows_kept == 5 == len(data.interactions)
    dropped = sum(v for k, v in report.as_dict().items()
                  if k not in ("rows_read", "rows_kept"))
    assert dropped + report.rows_kept == report.rows_read
    first = data.interactions.iloc[0]
    assert (first["user_id"], first["movie_id"], first["user_rating"]) == ("1", "1", 5)


def test_lenient_skips_bad_side_rows(tmp_path):
    movies = MOVIES_1M[:2] + ["3::Sabrina (1995)::Comedy|Nope"]
    root = write_ml1m(tmp_path / "ml", movies=movies)
    data = load_movielens_dir(root, lenient=True)
    assert data.items["movie_id"].tolist() == ["1", "2"]
    assert data.report.malformed_rows == 1
    assert data.report.unknown_item_rows == 1  # user 3 rated movie 3.
    assert len(data.interactions) == 4


def test_duplicates_keep_latest_rating(tmp_path):
    ratings = RATINGS_1M + ["1::1::2::978300761", "2::2::5::978302100"]
    data = load_movielens_dir(write_ml1m(tmp_path / "ml", ratings=ratings))
    rows = data.interactions.set_index(["user_id", "movie_id"])["user_rating"]
    assert rows[("1", "1")] == 2.0  # Later than the original 5.
    assert rows[("2", "2")] == 3.0  # Earlier than the original 3: ignored.
    assert data.report.duplicate_rows == 2
    assert len(data.interactions) == 5


def test_empty_ratings_file_gives_empty_typed_interactions(tmp_path):
    root = write_ml100k(tmp_path / "ml")
    (root / "u.data").write_bytes(b"")
    data = load_movielens_dir(root)
    assert len(data.interactions) == 0 and data.report.rows_read == 0
    assert data.interactions["user_rating"].dtype == np.float32
    assert data.num_items == 3 and data.num_users == 4
