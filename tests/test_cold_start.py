"""Cold-start items: the split holds them out; item text lets the model rank them."""

import dataclasses

import mtl_tf  # noqa: F401
from mtl_tf import experiment
from mtl_tf.config import apply_overrides
from mtl_tf.data import movielens_schema as F
from mtl_tf.data.splits import cold_item_split


def test_cold_items_never_reach_training(tiny_prepared):
    interactions = tiny_prepared.data.interactions
    splits = cold_item_split(interactions, 0.2, 0.1, seed=7, cold_item_fraction=0.25,
                             item_column=F.ITEM_ID)
    items = interactions[F.ITEM_ID].astype(str).unique()
    assert len(splits.cold_items) == round(0.25 * len(items))
    seen = set(splits.train[F.ITEM_ID]) | set(splits.validation[F.ITEM_ID])
    assert not seen & splits.cold_items
    cold_rows = interactions[F.ITEM_ID].astype(str).isin(splits.cold_items).sum()
    in_test = splits.test[F.ITEM_ID].astype(str).isin(splits.cold_items).sum()
    assert cold_rows == in_test > 0
    assert len(splits.train) + len(splits.validation) + len(splits.test) == len(
        interactions)


def test_title_text_ranks_cold_items_above_an_id_only_model(tmp_path, tiny_config):
    """Synthetic titles carry each item's topic: bag of words must beat id-only."""
    results = {}
    id_only = dataclasses.replace(tiny_config, schema=tiny_config.schema.without(
        [F.ITEM_TITLE, F.ITEM_GENRES]))
    for name, base, overrides in (("id_only", id_only, []),
                                  ("bow", tiny_config, ["model.text_encoder=bow"])):
        config = apply_overrides(base, overrides + [
            "data.split=cold_items", "data.cold_item_fraction=0.2"])
        results[name] = experiment.run(config, tmp_path / name, export=False,
                                       verbose=0)["metrics"]
    assert {"cold_hit_rate_at_100", "warm_hit_rate_at_100", "cold_rating_rmse",
            "warm_like_auc"} <= set(results["bow"])
    # An id-only model has one OOV vector for every cold item: it cannot rank them.
    # (Hit rate@10: on 200 items, the top 100 hold most of the catalog.)
    assert results["bow"]["cold_hit_rate_at_10"] > (
        results["id_only"]["cold_hit_rate_at_10"] + 0.05)
