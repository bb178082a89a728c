"""Smoke tests of benchmarks/sequential.py, history_cost.py, serving_latency.py
and scale.py, run in-process (scale.py's sizes in subprocesses) on tiny data (a
generated ml-100k folder; small synthetic data)."""

import importlib
import math
import re
import sys

import numpy as np
import pandas as pd
import pytest
from test_data_movielens import write_ml100k

from mtl_tf import scoring
from mtl_tf.baselines import PopularityBaseline
from mtl_tf.config import apply_overrides, get_preset
from mtl_tf.data import movielens_schema as F
from mtl_tf.experiment import prepare_data


@pytest.fixture(scope="module")
def benchmarks(repo_root):
    """Imports a script of benchmarks/ by module name."""
    def load(name):
        sys.path.insert(0, str(repo_root / "benchmarks"))
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(str(repo_root / "benchmarks"))
    return load


def write_tiny_ml100k(root, num_users=40, num_items=60, per_user=15, seed=0):
    """An ml-100k folder: each user rates `per_user` distinct items at distinct
    times, drawn so that neighbouring item ids co-occur (a planted sequence)."""
    rng = np.random.default_rng(seed)
    flags = "|".join(["0"] * 18 + ["1"])
    items = [f"{i}|Movie {i} (1995)|01-Jan-1995||http://imdb/{i}|{flags}"
             for i in range(1, num_items + 1)]
    users = [f"{u}|{20 + u % 40}|{'MF'[u % 2]}|student|01002"
             for u in range(1, num_users + 1)]
    data = []
    for user in range(1, num_users + 1):
        start = int(rng.integers(0, num_items))
        for step in range(per_user):
            item = (start + step + int(rng.integers(0, 3))) % num_items + 1
            data.append((user, item, int(rng.integers(1, 6)),
                         881250949 + 1000 * user + step))
    frame = pd.DataFrame(data).drop_duplicates([0, 1], keep="first")
    lines = ["\t".join(map(str, row)) for row in frame.itertuples(index=False)]
    return write_ml100k(root, data=lines, items=items, users=users)


def parse_table(stdout: str, first_column: str) -> list[dict[str, str]]:
    """The rows of the `format_table` printout whose header starts with
    `first_column`, cut at the dashes under each header cell."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith(first_column) and
                 lines[i + 1].startswith("-"))
    spans = [m.span() for m in re.finditer(r"-+", lines[start + 1])]
    names = [lines[start][a:b].strip() for a, b in spans]
    rows = []
    for line in lines[start + 2:]:
        if not line.strip() or "  " not in line:
            break
        rows.append({n: line[a:b].strip() for n, (a, b) in zip(names, spans)})
    return rows


def number(cell: str) -> float:
    value = float(cell.replace(",", ""))
    assert math.isfinite(value), cell
    return value


def test_ranking_metrics_by_hand(benchmarks):
    sequential = benchmarks("sequential")
    scores = np.array([[0.9, 0.5, 0.5, 0.1, 0.7],
                       [0.1, 0.2, 0.3, 0.4, 0.5]])
    excluded = np.array([[True, False, False, False, False],
                         [False, False, False, False, True]])
    above, tied = sequential.rank_counts(scores, np.array([1, 0]), excluded)
    # Row 0: 0.7 above (0.9 excluded), items 1 and 2 tie; row 1: 3 above.
    assert above.tolist() == [1, 3] and tied.tolist() == [2, 1]
    got = sequential.top_k_metrics(above, tied, k=2)
    assert got["hr"] == pytest.approx((0.5 + 0.0) / 2)
    assert got["ndcg"] == pytest.approx((1 / np.log2(3) / 2) / 2)
    got = sequential.top_k_metrics(above, tied, k=10)
    assert got["hr"] == 1.0
    assert got["ndcg"] == pytest.approx(
        ((1 / np.log2(3) + 1 / np.log2(4)) / 2 + 1 / np.log2(5)) / 2)


def test_hit_rates_agree_with_the_library(benchmarks, tmp_path):
    sequential = benchmarks("sequential")
    config = apply_overrides(get_preset("default"), [
        "data.source=movielens", f"data.data_dir={write_tiny_ml100k(tmp_path)}",
        "data.split=last_item"])
    prepared = prepare_data(config)
    data, pool, test = prepared.data, prepared.seen, prepared.splits.test
    assert len(test) == data.num_users == test[F.USER_ID].nunique()
    popularity = PopularityBaseline(data.num_items).fit(
        scoring.index_of(pool[F.ITEM_ID], data.items[F.ITEM_ID]))
    ours = sequential.ranking_metrics(popularity.score, data, pool, test)
    library = scoring.hit_rate_metrics(popularity.score, data, pool, test, (10,))
    assert ours["hr"] == pytest.approx(library["hit_rate_at_10"])
    assert 0.0 < ours["ndcg"] <= ours["hr"]


def test_sequential_script(benchmarks, tmp_path, capsys, monkeypatch):
    sequential = benchmarks("sequential")
    runs = []

    def recording_run(*args, **kwargs):
        runs.append(original(*args, **kwargs))
        return runs[-1]

    original = sequential.run
    monkeypatch.setattr(sequential, "run", recording_run)
    directory = write_tiny_ml100k(tmp_path / "ml-100k")
    assert sequential.main([
        "--data-dir", str(directory), "--encoders", "mean", "--epochs", "1",
        "--set", "train.batch_size=256", "--set", "model.embedding_dim=16",
        "--set", "model.bottom_units=[16]", "--set", "model.head_units=[8]"]) == 0
    stdout = capsys.readouterr().out
    rows = parse_table(stdout, "model")
    assert [r["model"] for r in rows] == [
        "history mean", "most popular", rows[2]["model"]]
    assert rows[2]["model"].startswith("EASE (l2 ")
    for row in rows:
        hr, ndcg = number(row["hr@10"]), number(row["ndcg@10"])
        assert 0.0 <= ndcg <= hr <= 1.0, row
        assert number(row["hr@10 vs EASE"]) >= 0.0
    assert number(rows[2]["hr@10 vs EASE"]) == 1.0
    ours = rows[0]
    assert number(ours["epochs"]) == 1 and number(ours["train ex/s"]) > 0
    # The printed HR@10 is the one `experiment.run` reports (same protocol).
    assert number(ours["hr@10"]) == pytest.approx(
        runs[0]["metrics"]["hit_rate_at_10"], abs=1e-4)
    assert "best encoder: mean (hr@10" in stdout
    assert "EASE (hr@10" in stdout and stdout.count("EASE validation hr@10") == 1


def test_sequential_rejects_unknown_encoders(benchmarks):
    sequential = benchmarks("sequential")
    with pytest.raises(SystemExit, match="--encoders: received 'mean,lstm'"):
        sequential.main(["--data-dir", "nowhere", "--encoders", "mean,lstm"])


def test_history_cost_script(benchmarks, capsys):
    history_cost = benchmarks("history_cost")
    assert history_cost.main(["--users", "100,200", "--items", "50", "--epochs",
                              "1", "--requests", "20"]) == 0
    stdout = capsys.readouterr().out
    rows = parse_table(stdout, "users")
    assert [r["users"] for r in rows] == ["100", "200", "ratio 200 / 100"]
    for row in rows[:2]:
        assert number(row["epochs"]) == 1 and number(row["train rows"]) > 0
        assert number(row["train ex/s"]) > 0 and number(row["run s"]) > 0
        assert 0 < number(row["recommend p50 ms"]) <= number(
            row["recommend p99 ms"]) < 10_000
    ratio = rows[2]
    assert number(ratio["train rows"]) == pytest.approx(2.0, rel=0.1)
    for column in ("train ex/s", "recommend p50 ms", "recommend p99 ms"):
        assert number(ratio[column]) > 0
    verdicts = [line for line in stdout.splitlines()
                if line.endswith((": PASS", ": FAIL"))]
    assert [v.split(" ratio ")[0] for v in verdicts] == ["recommend p50",
                                                         "train ex/s"]


def test_serving_latency_script(benchmarks, capsys):
    serving_latency = benchmarks("serving_latency")
    assert serving_latency.main(["--items", "200,800", "--users", "60",
                                 "--batches", "1,4", "--requests", "10"]) == 0
    stdout = capsys.readouterr().out
    rows = parse_table(stdout, "items")
    assert [r["items"] for r in rows] == ["200", "800"]
    for row in rows:
        assert number(row["export MB"]) > 0 and number(row["peak RSS GB"]) > 0
        for batch in (1, 4):
            assert 0 < number(row[f"batch {batch} p50 ms"]) <= number(
                row[f"batch {batch} p99 ms"]) < 10_000
    # The larger catalog's export holds 4x the item rows.
    assert number(rows[1]["export MB"]) > number(rows[0]["export MB"])
    assert re.search(r"p50 ratio 800 / 200 items \(4x the items\), batch 1: "
                     r"[0-9.]+ <= 12: (PASS|FAIL)", stdout)
    with pytest.raises(SystemExit, match="--items: received '10,x'"):
        serving_latency.main(["--items", "10,x"])


def test_scale_script(benchmarks, capsys):
    """Each size trains in its own process and reports its own peak RSS."""
    scale = benchmarks("scale")
    assert scale.main(["--sizes", "6000,12000", "--items", "200",
                       "--max-users", "30"]) == 0
    stdout = capsys.readouterr().out
    rows = parse_table(stdout, "interactions")
    assert len(rows) == 3 and rows[2]["interactions"].startswith("ratio ")
    for row, users in zip(rows[:2], (100, 200)):
        assert number(row["users"]) == users and number(row["items"]) == 200
        # Synthetic users watch Poisson(60) distinct items each (the total
        # may pass 60 per user; its std is about 1.3% of it at 100 users).
        assert 0.9 * 60 * users < number(row["interactions"]) < 1.1 * 60 * users
        assert 0 < number(row["train rows"]) < number(row["interactions"])
        assert number(row["train ex/s"]) > 0 and number(row["run s"]) > 0
        assert 0.2 < number(row["peak RSS GB"]) < 12
    assert number(rows[2]["train rows"]) == pytest.approx(2.0, rel=0.1)
    verdicts = [line for line in stdout.splitlines()
                if line.endswith((": PASS", ": FAIL"))]
    assert [v.split(" ")[:2] for v in verdicts] == [["train", "ex/s"],
                                                    ["peak", "RSS"]]


def test_streaming_script(benchmarks, capsys):
    """Each size and mode trains in its own process on the same shards."""
    streaming = benchmarks("streaming")
    assert streaming.main(["--sizes", "2000,4000", "--items", "50", "--shards", "2",
                           "--chunk-rows", "500", "--max-users", "10"]) == 0
    stdout = capsys.readouterr().out
    rows = parse_table(stdout, "impressions")
    assert [(r["impressions"], r["mode"]) for r in rows] == [
        ("2,000", "streamed"), ("2,000", "in memory"),
        ("4,000", "streamed"), ("4,000", "in memory")]
    for row in rows:
        # 10% of the log is held out; in memory, the random split holds out
        # another ~10% of the training shards.
        size = number(row["impressions"])
        expected = 0.9 * size if row["mode"] == "streamed" else 0.81 * size
        assert number(row["train rows"]) == pytest.approx(expected, rel=0.03)
        assert number(row["train ex/s"]) > 0 and 0.2 < number(row["peak RSS GB"]) < 12
    assert "streamed peak RSS, 4,000 / 2,000 impressions" in stdout
    with pytest.raises(SystemExit, match="--sizes"):
        streaming.main(["--sizes", "2000"])


def test_scale_rejects_bad_sizes(benchmarks):
    scale = benchmarks("scale")
    with pytest.raises(SystemExit, match="--sizes: received '100000'"):
        scale.main(["--sizes", "100000"])
    with pytest.raises(SystemExit, match="--sizes: received '10,x'"):
        scale.main(["--sizes", "10,x"])
