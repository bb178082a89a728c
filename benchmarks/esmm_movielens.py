"""ESMM on MovieLens 100K: modelling p(watch, like) over the whole impression space.

Ma et al., "Entire Space Multi-Task Model", SIGIR 2018: a conversion model trained
only on clicked rows suffers from sample selection bias when it is used to rank
everything a user could be shown. MovieLens has no logged impressions, so every
split gets 4 sampled never-rated items per rating (`data.impression_negatives=4`,
`watch` = 0, `like` = 0); a "like" is a rating >= 4.

Variants, all on the same split and impressions:
- `base`: the default model (single_task; `like` trained on rated rows only),
  its like head used to rank the impressions (the biased ranker ESMM replaces);
- `direct`: `watch` and `like` as two independent binary tasks on the
  impressions (like learned directly as p(watch, like));
- `esmm`: the `esmm` preset: `like` depends on `watch`, so p(watch, like) =
  p(watch) p(like | watch) with one MLP per task over shared embeddings;
- `esmm shared_bottom`: the same chain over the default shared bottom.

Reported on the test impressions: like AUC (p(watch, like), the paper's CTCVR
AUC), watch AUC (CTR AUC) and, on rated test rows, the conditional like AUC (CVR
AUC), plus rating RMSE and hit rate@10 of the jointly trained tasks, and an
item-popularity ranker as a floor.

Usage:
    python benchmarks/esmm_movielens.py --data-dir ../shared/data/ml-100k [--out docs]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from reporting import write_csv

import mtl_tf  # noqa: F401
from mtl_tf import evaluation, scoring
from mtl_tf.config import apply_overrides, get_preset
from mtl_tf.data import movielens_schema as F
from mtl_tf.evaluation import format_table
from mtl_tf.experiment import prepare_data, run

COLUMNS = ["variant", "like auc (ctcvr)", "watch auc (ctr)", "like|watch auc (cvr)",
           "rating rmse", "hr@10", "train s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="ml-100k folder")
    parser.add_argument("--out", default="docs")
    args = parser.parse_args(argv)

    source = ["data.source=movielens", f"data.data_dir={args.data_dir}"]
    esmm = apply_overrides(get_preset("esmm"), source)
    direct_tasks = tuple(dataclasses.replace(t, depends_on="")
                         for t in esmm.tasks)
    configs = {
        "base": apply_overrides(get_preset("default"), source),
        "direct": dataclasses.replace(esmm, tasks=direct_tasks,
                                      model=dataclasses.replace(
                                          esmm.model, mtl="shared_bottom")),
        "esmm": esmm,
        "esmm shared_bottom": apply_overrides(esmm, ["model.mtl=shared_bottom"]),
    }
    # One split for all; the base model trains without the sampled impressions
    # (same rated rows, same batches as the default model) and is scored on them.
    prepared = prepare_data(esmm)
    base_prepared = prepare_data(configs["base"])
    test, train = prepared.arrays["test"], prepared.arrays["train"]
    rated = test[F.WATCH] > 0
    counts = pd.Series(train[F.ITEM_ID][train[F.WATCH] > 0]).value_counts()
    popularity = pd.Series(test[F.ITEM_ID]).map(counts).fillna(0).to_numpy()
    rows = [{"variant": "item popularity",
             "like auc (ctcvr)": evaluation.roc_auc(test[F.LIKE], popularity),
             "watch auc (ctr)": evaluation.roc_auc(test[F.WATCH], popularity),
             "like|watch auc (cvr)": evaluation.roc_auc(test[F.LIKE][rated],
                                                        popularity[rated])}]
    for name, config in configs.items():
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_dir:
            result = run(config, run_dir, export=False, verbose=0,
                         prepared=base_prepared if name == "base" else prepared)
        seconds = time.perf_counter() - started
        outputs = scoring.predict(result["model"], test)
        conditional = outputs.get("like_given_watch", outputs["like"])
        row = {"variant": name,
               "like auc (ctcvr)": evaluation.roc_auc(test[F.LIKE], outputs["like"]),
               "like|watch auc (cvr)": evaluation.roc_auc(test[F.LIKE][rated],
                                                          conditional[rated]),
               "rating rmse": result["metrics"]["rating_rmse"],
               "hr@10": result["metrics"]["hit_rate_at_10"], "train s": seconds}
        if "watch" in outputs:
            row["watch auc (ctr)"] = evaluation.roc_auc(test[F.WATCH],
                                                        outputs["watch"])
        rows.append(row)
        print(f"  {name}: {seconds:.0f} s", flush=True)
    print(f"{int(rated.sum()):,} rated and {int((~rated).sum()):,} sampled test "
          "impressions")
    print(format_table(rows, COLUMNS))
    out = Path(args.out)
    write_csv(rows, COLUMNS, out / "esmm_movielens.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
