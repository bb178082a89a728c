"""MovieLens 100K: mtl_tf's default multi-task model vs the TFRS tutorial and baselines.

Split (DESIGN.md section 5): u.data rows in file order,
``idx = np.random.default_rng(42).permutation(100_000)``, train = idx[:80_000],
test = idx[80_000:]. mtl_tf holds out the last 10% of its training rows for early
stopping; the peers train on all 80,000. Hit rate@k: share of test rows whose item
is in the user's top k over all 1,682 items, with the user's training items
excluded (the main protocol) or not (TFRS `FactorizedTopK`'s). EASE (Steck, WWW
2019) picks its l2 by hit rate@10 on mtl_tf's validation rows, then refits on
all 80,000.

Usage:
    python benchmarks/movielens_100k.py --data-dir ../shared/data/ml-100k
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import mtl_tf  # noqa: F401
from mtl_tf import scoring
from mtl_tf.baselines import BiasBaseline, EASEBaseline, PopularityBaseline
from mtl_tf.config import apply_overrides, get_preset
from mtl_tf.data import movielens_schema as F
from mtl_tf.evaluation import format_table, rmse, roc_auc
from mtl_tf.experiment import prepare_data, run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tfrs_tutorial_peer import train_tutorial  # noqa: E402

COLUMNS = ["model", "hr@10", "hr@100", "hr@10 seen incl.", "hr@100 seen incl.",
           "rmse", "like auc", "train ex/s", "speed vs tutorial"]


def hit_rate_row(metrics: dict) -> dict:
    return {"hr@10": metrics["hit_rate_at_10"], "hr@100": metrics["hit_rate_at_100"],
            "hr@10 seen incl.": metrics["hit_rate_at_10_seen_included"],
            "hr@100 seen incl.": metrics["hit_rate_at_100_seen_included"]}


def ease_row(data, splits, pool, test) -> dict:
    """EASE with l2 picked on the validation split, refitted on train +
    validation (the model's training rows), scored on test."""
    def pairs(frame):
        return (scoring.index_of(frame[F.USER_ID], data.users[F.USER_ID]),
                scoring.index_of(frame[F.ITEM_ID], data.items[F.ITEM_ID]))

    l2, rates = EASEBaseline.select_l2(data.num_users, data.num_items,
                                       pairs(splits.train), pairs(splits.validation))
    print("EASE validation hr@10 by l2: "
          + ", ".join(f"{k:g}: {v:.4f}" for k, v in rates.items()))
    ease = EASEBaseline(data.num_users, data.num_items, l2).fit(*pairs(pool))
    return {"model": f"EASE (l2 {l2:g}, on validation)",
            **hit_rate_row(scoring.hit_rate_metrics(ease.score, data, pool, test))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="extracted ml-100k folder")
    parser.add_argument("--set", action="append", default=[],
                        help="override the default config, e.g. train.epochs=5")
    parser.add_argument("--skip-tutorial", action="store_true")
    args = parser.parse_args(argv)

    config = apply_overrides(get_preset("default"), [
        "data.source=movielens", f"data.data_dir={args.data_dir}", "data.split=random",
        "data.seed=42", "data.test_fraction=0.2", *args.set])
    prepared = prepare_data(config)
    data, splits = prepared.data, prepared.splits
    pool = prepared.seen  # train + validation = the 80,000 training rows
    test = splits.test
    test_arrays = prepared.arrays["test"]
    print(f"{data.name}: {len(pool)} training rows, {len(test)} test rows")

    rows = []
    with tempfile.TemporaryDirectory() as run_dir:
        result = run(config, run_dir, export=False, verbose=0, prepared=prepared)
    metrics = result["metrics"]
    ours_speed = result["training"]["examples_per_second"]
    rows.append({"model": "mtl_tf default (joint)", **hit_rate_row(metrics),
                 "rmse": metrics["rating_rmse"], "like auc": metrics["like_auc"],
                 "train ex/s": ours_speed})

    user_index = scoring.index_of(pool[F.USER_ID], data.users[F.USER_ID])
    item_index = scoring.index_of(pool[F.ITEM_ID], data.items[F.ITEM_ID])
    popularity = PopularityBaseline(data.num_items).fit(item_index)
    rows.append({"model": "most popular", **hit_rate_row(scoring.hit_rate_metrics(
        popularity.score, data, pool, test))})
    rows.append(ease_row(data, splits, pool, test))
    bias = BiasBaseline(data.num_users, data.num_items, l2=10.0, sweeps=10).fit(
        user_index, item_index, pool[F.RATING].to_numpy())
    bias_pred = bias.predict(scoring.index_of(test[F.USER_ID], data.users[F.USER_ID]),
                             scoring.index_of(test[F.ITEM_ID], data.items[F.ITEM_ID]))
    rows.append({"model": "user+item bias (L2 10)",
                 "rmse": rmse(test_arrays[F.RATING], bias_pred),
                 "like auc": roc_auc(test_arrays[F.LIKE], bias_pred)})

    if not args.skip_tutorial:
        pool_arrays = {k: np.concatenate([prepared.arrays["train"][k],
                                          prepared.arrays["validation"][k]])
                       for k in prepared.arrays["train"]}
        item_ids = data.items[F.ITEM_ID].astype(str).to_numpy()
        model, speed = train_tutorial(pool_arrays,
                                      data.users[F.USER_ID].astype(str).to_numpy(),
                                      item_ids)
        users = model.user_model(data.users[F.USER_ID].astype(str).to_numpy()).numpy()
        items = model.item_model(item_ids).numpy()
        hits = scoring.hit_rate_metrics(lambda u: users[u] @ items.T, data, pool, test)
        _, _, rating = model({k: test_arrays[k] for k in (F.USER_ID, F.ITEM_ID)})
        rating = rating.numpy()[:, 0]
        rows.append({"model": "TFRS tutorial (joint 1:1)", **hit_rate_row(hits),
                     "rmse": rmse(test_arrays[F.RATING], rating),
                     "like auc": roc_auc(test_arrays[F.LIKE], rating),
                     "train ex/s": speed})
        for row in rows:
            if "train ex/s" in row:
                row["speed vs tutorial"] = row["train ex/s"] / speed
    print(format_table(rows, COLUMNS))
    print("like auc of the tutorial and the bias model: their rating prediction used "
          "as the like score. Speed: training examples/s over epochs after the first.")
    return 0


if __name__ == "__main__":
    sys.exit(main())


