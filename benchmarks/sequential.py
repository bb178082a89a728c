"""MovieLens 100K, next-item protocol: every history encoder vs popularity and EASE.

Protocol: leave-last-out, as in SASRec (Kang & McAuley, "Self-Attentive
Sequential Recommendation", ICDM 2018), `data.split=last_item`. Per user with
at least 3 ratings (all 943 users of ml-100k) the latest rating is the test
item and the one before it the validation item (ties in time keep file
order); everything earlier is training. A row's history holds only its user's
events strictly earlier than the row (training rows: earlier training rows;
validation rows: training rows; test rows: training and validation rows), at
most the schema's `max_length` (50) most recent ones. Every encoder (none,
mean, gru, conv1d, transformer) trains the default model on the same prepared
data, with early stopping on the validation loss; only `model.history_encoder`
changes. Each test user is embedded with the features of their test row.

Metrics: the test item is ranked against the whole catalog (1,682 items, not
SASRec's 100 sampled negatives) minus the user's training and validation
items. With `above` the candidates scoring strictly higher and `tied` the
candidates tying with it (itself included), its 0-based rank is uniform over
above .. above + tied - 1: ties count as a uniformly random order, the
`ties="average"` of `mtl_tf.evaluation.hit_rates`, so HR@10 = clip((10 -
above) / tied, 0, 1) and NDCG@10 is the mean of 1 / log2(rank + 2) over those
ranks (0 for ranks >= 10). One test item per user, so both average over users.

Baselines: most popular counts training + validation rows; EASE (Steck, WWW
2019) picks its l2 by validation HR@10 (training items excluded), then refits
on training + validation, as in `benchmarks/movielens_100k.py`.

Usage:
    python benchmarks/sequential.py --data-dir ../shared/data/ml-100k
    python benchmarks/sequential.py --data-dir ../shared/data/ml-100k \\
        --encoders mean,transformer --epochs 3 --set model.history_causal=true
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import Callable

import numpy as np
import pandas as pd

import mtl_tf  # noqa: F401
from mtl_tf import scoring
from mtl_tf.baselines import EASEBaseline, PopularityBaseline
from mtl_tf.config import HISTORY_ENCODERS, apply_overrides, get_preset
from mtl_tf.data import RecDataset
from mtl_tf.evaluation import SeenItems, format_table
from mtl_tf.experiment import PreparedData, prepare_data, run

K = 10
COLUMNS = ["model", "hr@10", "ndcg@10", "hr@10 vs EASE", "epochs", "train ex/s",
           "seconds"]


def rank_counts(scores: np.ndarray, items: np.ndarray, excluded: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the candidates scoring above its test item, and those tying
    with it (the test item included); `excluded` items are no candidates.

    Example:
        >>> scores = np.array([[0.9, 0.5, 0.5, 0.1]])
        >>> excluded = np.array([[True, False, False, False]])
        >>> rank_counts(scores, np.array([1]), excluded)  # item 0 is excluded
        (array([0]), array([2]))
    """
    own = scores[np.arange(len(items)), items][:, None]
    candidate = ~np.asarray(excluded, bool)
    candidate[np.arange(len(items)), items] = True
    above = np.count_nonzero((scores > own) & candidate, axis=1)
    tied = np.count_nonzero((scores == own) & candidate, axis=1)
    return above, tied


def top_k_metrics(above: np.ndarray, tied: np.ndarray, k: int = K
                  ) -> dict[str, float]:
    """HR@k and NDCG@k of one test item per row, its rank uniform over
    above .. above + tied - 1.

    Example (row 2 ties ranks 9 and 10: half a hit, gain 1 / log2(11) / 2):
        >>> got = top_k_metrics(np.array([0, 9, 20]), np.array([1, 2, 1]))
        >>> round(got["hr"], 4), round(got["ndcg"], 4)
        (0.5, 0.3815)
    """
    gains = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
    low, high = np.clip(above, 0, k), np.clip(above + tied, 0, k)
    return {"hr": float(np.mean((high - low) / tied)),
            "ndcg": float(np.mean((gains[high] - gains[low]) / tied))}


def ranking_metrics(score_fn: Callable[[np.ndarray], np.ndarray], data: RecDataset,
                    seen: pd.DataFrame, test: pd.DataFrame, *,
                    users: np.ndarray | None = None,
                    batch_size: int = 512) -> dict[str, float]:
    """HR@10 and NDCG@10 of any scorer over the whole catalog, the `seen`
    (user, item) pairs excluded; `score_fn` maps indices into `users` (default:
    the ids of `data.users`) to scores over `data.item_ids`, as the
    `score_fn` of `mtl_tf.scoring.hit_rate_metrics`."""
    user_key, item_key = data.schema.user_id.name, data.schema.item_id.name
    users = pd.Series(data.users[user_key] if users is None else users)
    items = pd.Series(data.item_ids)
    test_users = scoring.index_of(test[user_key], users)
    test_items = scoring.index_of(test[item_key], items)
    keep = (test_users >= 0) & (test_items >= 0)
    test_users, test_items = test_users[keep], test_items[keep]
    seen_users = scoring.index_of(seen[user_key], users)
    seen_items = scoring.index_of(seen[item_key], items)
    known = (seen_users >= 0) & (seen_items >= 0)
    excluded = SeenItems(seen_users[known], seen_items[known],
                         num_users=len(users), num_items=len(items))
    above, tied = [], []
    for start in range(0, len(test_users), batch_size):
        rows = test_users[start:start + batch_size]
        counts = rank_counts(np.asarray(score_fn(rows), np.float64),
                             test_items[start:start + batch_size],
                             excluded.mask(rows))
        above.append(counts[0])
        tied.append(counts[1])
    return top_k_metrics(np.concatenate(above), np.concatenate(tied))


def model_scorer(model, prepared: PreparedData
                 ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The test users and a scorer of them: each embedded with the features
    (history included) of their test row, against every catalog item."""
    data = prepared.data
    users, arrays = scoring.query_arrays(data, prepared.splits.test,
                                         prepared.arrays["test"])
    user_vectors = scoring.embed_queries(model, arrays)
    item_vectors = scoring.embed_items(model, data.item_ids)
    return users, lambda rows: user_vectors[rows] @ item_vectors.T


def encoder_row(encoder: str, config, prepared: PreparedData) -> dict:
    """Trains the model with one history encoder; its table row."""
    started = time.perf_counter()
    config = apply_overrides(config, [f"model.history_encoder={encoder}"])
    with tempfile.TemporaryDirectory() as run_dir:
        result = run(config, run_dir, export=False, verbose=0, prepared=prepared)
    users, score_fn = model_scorer(result["model"], prepared)
    metrics = ranking_metrics(score_fn, prepared.data, prepared.seen,
                              prepared.splits.test, users=users)
    row = {"model": f"history {encoder}", "encoder": encoder,
           "hr@10": metrics["hr"], "ndcg@10": metrics["ndcg"],
           "epochs": result["training"]["epochs"],
           "train ex/s": result["training"]["examples_per_second"],
           "seconds": time.perf_counter() - started}
    print(f"  {encoder}: hr@10 {row['hr@10']:.4f}, ndcg@10 {row['ndcg@10']:.4f}, "
          f"{row['epochs']} epochs, {row['seconds']:.0f} s", flush=True)
    return row


def baseline_rows(prepared: PreparedData) -> list[dict]:
    """Most popular and EASE (l2 picked on validation, refit on train +
    validation)."""
    data, splits, pool = prepared.data, prepared.splits, prepared.seen
    user_ids, item_ids = data.users[data.schema.user_id.name], pd.Series(
        data.item_ids)

    def pairs(frame):
        return (scoring.index_of(frame[data.schema.user_id.name], user_ids),
                scoring.index_of(frame[data.schema.item_id.name], item_ids))

    popularity = PopularityBaseline(data.num_items).fit(pairs(pool)[1])
    rows = [{"model": "most popular", **_named(ranking_metrics(
        popularity.score, data, pool, splits.test))}]
    train = prepared.positives(splits.train)
    l2, rates = EASEBaseline.select_l2(data.num_users, data.num_items, pairs(train),
                                       pairs(prepared.positives(splits.validation)))
    print("EASE validation hr@10 by l2: "
          + ", ".join(f"{k:g}: {v:.4f}" for k, v in rates.items()))
    ease = EASEBaseline(data.num_users, data.num_items, l2).fit(*pairs(pool))
    rows.append({"model": f"EASE (l2 {l2:g}, on validation)",
                 **_named(ranking_metrics(ease.score, data, pool, splits.test))})
    return rows


def _named(metrics: dict) -> dict:
    return {"hr@10": metrics["hr"], "ndcg@10": metrics["ndcg"]}


def parse_encoders(text: str) -> list[str]:
    encoders = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in encoders if e not in HISTORY_ENCODERS]
    if unknown or not encoders:
        raise SystemExit(f"--encoders: received {text!r}; choose a comma-separated "
                         f"subset of {list(HISTORY_ENCODERS)}.")
    return encoders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="extracted ml-100k folder")
    parser.add_argument("--set", action="append", default=[],
                        help="override the default config, e.g. model.history_layers=2")
    parser.add_argument("--encoders", default=",".join(HISTORY_ENCODERS),
                        help="comma-separated history encoders (default: all)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="most epochs (default: the preset's; early stopping "
                             "on validation picks one)")
    args = parser.parse_args(argv)
    encoders = parse_encoders(args.encoders)

    started = time.perf_counter()
    config = apply_overrides(get_preset("default"), [
        "data.source=movielens", f"data.data_dir={args.data_dir}",
        "data.split=last_item",
        # The SASRec protocol's settings (Kang & McAuley, ICDM 2018): histories
        # of the 50 most recent items; the model kept is the one early stopping
        # picked on the validation items, not a refit that also trains on them.
        "schema.history_item_ids.max_length=50", "train.refit=false",
        "train.learning_rate_schedule=constant",
        # docs/benchmarks.md's table predates the history mask.
        "model.mask_history_negatives=false",
        *([f"train.epochs={args.epochs}"] if args.epochs else []), *args.set])
    prepared = prepare_data(config)
    sizes = prepared.splits.sizes()
    print(f"{prepared.data.name}: {prepared.data.num_users} users, "
          f"{prepared.data.num_items} items; split {sizes} (last item per user is "
          "test, the one before validation)", flush=True)

    rows = [encoder_row(encoder, config, prepared) for encoder in encoders]
    rows += baseline_rows(prepared)
    ease = rows[-1]["hr@10"]
    for row in rows:
        row["hr@10 vs EASE"] = row["hr@10"] / ease if ease > 0 else float("nan")
    print(format_table(rows, COLUMNS))
    print(f"HR@10 / NDCG@10 over all {prepared.data.num_items:,} items, the user's "
          "train + validation items excluded, ties as a random order; train ex/s "
          "over epochs after the first.")
    best = max(rows[:len(encoders)], key=lambda row: row["hr@10"])
    verdict = ">=" if best["hr@10"] >= ease else "<"
    print(f"best encoder: {best['encoder']} (hr@10 {best['hr@10']:.4f}) {verdict} "
          f"EASE (hr@10 {ease:.4f}): {'yes' if verdict == '>=' else 'no'}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
