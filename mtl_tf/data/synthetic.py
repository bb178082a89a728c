"""A generated, MovieLens-shaped data set with planted structure (the default source).

Each item has a main topic; its latent factor points mostly along that topic and its
title and genres are drawn from the topic's words and genres, so item text carries
item information (a text encoder helps cold-start items). Users have latent topic
preferences that partly follow their age bucket and occupation, so user features
carry information too. What users watch follows preference plus item popularity;
ratings follow the same preference to a controllable degree
(`rating_watch_correlation`) plus user/item biases and noise; `like` is rating >= 4.

Items, users and their latent factors come first, from the generator seeded with
`seed` (memory O((items + users) x latent_dim)). The interactions then come a
block of `USERS_PER_BLOCK` users at a time, each block from its own generator
seeded with (`seed`, block index). Ratings standardize with fixed moments (the
taste factor is standard by construction, the watch affinity takes the mean and
std of the first block's watches), so a block is made without any other block's
rows: `iter_synthetic_interactions` holds one block, and `make_synthetic` is the
blocks concatenated (memory O(interactions)). Sampling a block's watches holds at
most 16 MB of users x items logits at once, never users x items.
`python -m mtl_tf.data.synthetic OUT_DIR` writes the log as shards, block by
block (`mtl_tf.data.synthetic_shards`).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np
import pandas as pd

from mtl_tf.config import SyntheticConfig
from mtl_tf.data import movielens_schema as F
from mtl_tf.data.dataset import CleaningReport, RecDataset

# Topic words (real English, so pretrained text encoders have something to work with)
# and the TFDS genre ids (`features.GENRES`) each topic maps to.
TOPICS = (
    (("space", "galaxy", "alien", "robot", "planet", "starship", "orbit"), (15, 0)),
    (("love", "romance", "wedding", "heart", "kiss", "bride", "valentine"), (14, 7)),
    (("war", "soldier", "battle", "army", "general", "trenches", "sniper"), (18, 7)),
    (("murder", "detective", "crime", "killer", "heist", "gangster", "alibi"), (5, 16)),
    (("family", "kids", "puppy", "christmas", "school", "holiday", "toys"), (3, 2)),
    (("comedy", "laughs", "prank", "buddies", "party", "roommates", "wacky"), (4,)),
    (("horror", "ghost", "zombie", "haunted", "vampire", "curse", "nightmare"),
     (10, 16)),
    (("cowboy", "outlaw", "sheriff", "frontier", "saloon", "ranch", "desert"), (19, 1)),
)
FILLER_WORDS = ("the", "return", "night", "last", "secret", "city", "of", "story",
                "big", "little", "day", "man", "woman", "river", "road", "house")
# Users x items logits held at once while sampling watches (16 MB of float64).
_BLOCK_ELEMENTS = 1 << 21
# Users whose interactions one generator draws (`iter_synthetic_interactions`).
# Part of the data's definition: another block size draws other data.
USERS_PER_BLOCK = 1000
# Distinct first words of the per-block seeds ([seed, tag, block]) of the
# watches and of the held-out draw of `python -m mtl_tf.data.synthetic`: numpy
# pads a short seed with zeros, so [seed, 0] would replay `default_rng(seed)`.
WATCH_STREAM, SPLIT_STREAM = 1, 2


@dataclasses.dataclass(frozen=True)
class SyntheticPopulation:
    """Items, users and everything the interactions are drawn from."""

    items: pd.DataFrame
    users: pd.DataFrame
    item_factor: np.ndarray
    popularity: np.ndarray
    user_factor: np.ndarray
    other_item: np.ndarray
    other_user: np.ndarray
    item_bias: np.ndarray
    user_bias: np.ndarray


def make_synthetic(config: SyntheticConfig = SyntheticConfig(),
                   like_threshold: float = 4.0) -> RecDataset:
    """Generates a RecDataset; the same `config` (incl. seed) gives the same data.

    Interactions carry the `like` label (rating >= `like_threshold`); they are
    the blocks of `iter_synthetic_interactions`, concatenated.

    Example:
        >>> data = make_synthetic(SyntheticConfig(num_users=50, num_items=40))
        >>> sorted(data.interactions.columns)[:2]
        ['like', 'movie_id']
    """
    population = synthetic_population(config)
    interactions = pd.concat(
        list(interaction_blocks(population, config, like_threshold)),
        ignore_index=True)
    report = CleaningReport(rows_read=len(interactions), rows_kept=len(interactions))
    return RecDataset(F.MOVIELENS_SCHEMA, interactions, population.items,
                      population.users, name="synthetic", report=report)


def iter_synthetic_interactions(config: SyntheticConfig = SyntheticConfig(),
                                like_threshold: float = 4.0
                                ) -> Iterator[pd.DataFrame]:
    """The interactions of `make_synthetic(config, like_threshold)`, one block
    of `USERS_PER_BLOCK` users at a time (users in order, `num_blocks(config)`
    frames), with the same columns and dtypes. Memory: the population and one
    block.

    Example:
        >>> for block in iter_synthetic_interactions(SyntheticConfig(num_users=2500)):
        ...     print(block["user_id"].nunique())
        1000
        1000
        500
    """
    yield from interaction_blocks(synthetic_population(config), config, like_threshold)


def num_blocks(config: SyntheticConfig) -> int:
    """How many frames `iter_synthetic_interactions(config)` yields."""
    return -(-config.num_users // USERS_PER_BLOCK)


def synthetic_population(config: SyntheticConfig) -> SyntheticPopulation:
    """Items, users and their factors and biases, from `default_rng(seed)`;
    its `items` and `users` are the tables of `make_synthetic(config)`."""
    if config.num_users < 2 or config.num_items < 10:
        raise ValueError("synthetic.num_users must be >= 2 and synthetic.num_items "
                         f">= 10. Received: {config.num_users}, {config.num_items}.")
    if not 0.0 <= config.rating_watch_correlation <= 1.0:
        raise ValueError("synthetic.rating_watch_correlation must be in [0, 1]. "
                         f"Received: {config.rating_watch_correlation}.")
    rng = np.random.default_rng(config.seed)
    num_topics = len(TOPICS)
    dim = max(config.latent_dim, num_topics)

    # Items: a main topic, a factor near that topic's axis, topic-driven text.
    item_topic = rng.integers(num_topics, size=config.num_items)
    item_factor = 0.35 * rng.normal(size=(config.num_items, dim))
    item_factor[np.arange(config.num_items), item_topic] += 1.0
    popularity = -config.popularity_skew * np.log1p(rng.permutation(config.num_items))
    items = pd.DataFrame({
        F.ITEM_ID: [str(i + 1) for i in range(config.num_items)],
        F.ITEM_TITLE: [_title(rng, t, i) for i, t in enumerate(item_topic)],
        F.ITEM_GENRES: [_genres(rng, t) for t in item_topic],
    })

    # Users: features first, preferences partly explained by them.
    age = rng.integers(len(F.AGE_BUCKETS), size=config.num_users)
    occupation = rng.integers(F.NUM_OCCUPATIONS, size=config.num_users)
    gender = rng.random(config.num_users) < 0.7
    age_pref = rng.normal(size=(len(F.AGE_BUCKETS), dim))
    occupation_pref = rng.normal(size=(F.NUM_OCCUPATIONS, dim))
    user_factor = (0.6 * age_pref[age] + 0.6 * occupation_pref[occupation]
                   + 0.8 * rng.normal(size=(config.num_users, dim)))
    users = pd.DataFrame({
        F.USER_ID: [str(u + 1) for u in range(config.num_users)],
        F.USER_AGE: np.asarray(F.AGE_BUCKETS, np.float32)[age],
        F.USER_GENDER: gender,
        F.USER_OCCUPATION: occupation.astype(np.int64),
        F.USER_ZIP: [f"{z:05d}" for z in rng.integers(100000, size=config.num_users)],
    })

    # The rating's taste factor independent of watching, and the biases.
    other_user = rng.normal(size=(config.num_users, dim))
    other_item = rng.normal(size=(config.num_items, dim))
    user_bias = 0.4 * rng.normal(size=config.num_users)
    item_bias = 0.3 * rng.normal(size=config.num_items) + 0.1 * _standardize(popularity)
    return SyntheticPopulation(items, users, item_factor, popularity,
                               user_factor, other_item, other_user, item_bias,
                               user_bias)


def interaction_blocks(population: SyntheticPopulation, config: SyntheticConfig,
                       like_threshold: float) -> Iterator[pd.DataFrame]:
    """Each block's interactions, in order. The watch affinity is standardized
    with its mean and std over the first block's watches (a pilot fixed by the
    config: every row while there is one block), so no block needs the others."""
    first = _watches(population, config, 0)
    affinity = _affinity(population, *first[1:])
    moments = (affinity.mean(), affinity.std() + 1e-8)
    for index in range(num_blocks(config)):
        rng, user, item = first if index == 0 else _watches(population, config,
                                                            index)
        yield _interactions(population, config, rng, user, item, moments,
                            like_threshold)


def _watches(population: SyntheticPopulation, config: SyntheticConfig, index: int
             ) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """Block `index`'s generator (seeded with (seed, block)) and the (user,
    item) row numbers of its watches, per user in order: items drawn without
    replacement, P ~ softmax(2 affinity + popularity) (Gumbel top-k), a few
    users at a time so the logits stay under `_BLOCK_ELEMENTS`."""
    rng = np.random.default_rng([config.seed, WATCH_STREAM, index])
    start = index * USERS_PER_BLOCK
    user_factor = population.user_factor[start:start + USERS_PER_BLOCK]
    item_factor = population.item_factor
    num_users, num_items = len(user_factor), len(item_factor)
    counts = rng.poisson(config.interactions_per_user, size=num_users)
    counts = np.clip(counts, 5, max(5, num_items // 2))
    step = max(1, _BLOCK_ELEMENTS // num_items)
    scale = 2.0 / np.sqrt(user_factor.shape[1])
    items = []
    # Consecutive Gumbel draws continue one stream: `step` never changes the data.
    for first in range(0, num_users, step):
        perturbed = user_factor[first:first + step] @ item_factor.T
        perturbed *= scale
        perturbed += population.popularity
        perturbed += rng.gumbel(size=perturbed.shape)
        for row, count in zip(perturbed, counts[first:first + step]):
            top = np.argpartition(-row, count - 1)[:count]
            items.append(top[np.argsort(-row[top], kind="stable")])
    return rng, start + np.repeat(np.arange(num_users), counts), np.concatenate(items)


def _affinity(population: SyntheticPopulation, user: np.ndarray, item: np.ndarray
              ) -> np.ndarray:
    """The watch logit's preference term per row (before the factor of 2)."""
    return np.einsum("nd,nd->n", population.user_factor[user],
                     population.item_factor[item]) / np.sqrt(
                         population.user_factor.shape[1])


def _interactions(population: SyntheticPopulation, config: SyntheticConfig,
                  rng: np.random.Generator, user: np.ndarray, item: np.ndarray,
                  moments: tuple[float, float], like_threshold: float
                  ) -> pd.DataFrame:
    """A block's rows: ratings mix the standardized watch affinity with an
    independent taste factor; then biases, noise and timestamps."""
    c = config.rating_watch_correlation
    dim = population.other_user.shape[1]
    # A dot of `dim` independent standard normals over sqrt(dim): mean 0, std 1.
    other = np.einsum("nd,nd->n", population.other_user[user],
                      population.other_item[item]) / np.sqrt(dim)
    watch = (_affinity(population, user, item) - moments[0]) / moments[1]
    taste = c * watch + np.sqrt(1 - c * c) * other
    latent = (3.5 + 0.9 * taste + population.user_bias[user]
              + population.item_bias[item]
              + config.rating_noise * rng.normal(size=len(user)))
    ratings = np.clip(np.rint(latent), 1, 5).astype(np.float32)
    timestamps = 874_000_000 + rng.integers(0, 30_000_000, size=len(user))
    interactions = pd.DataFrame({
        F.USER_ID: population.users[F.USER_ID].to_numpy()[user],
        F.ITEM_ID: population.items[F.ITEM_ID].to_numpy()[item],
        F.RATING: ratings,
        F.TIMESTAMP: timestamps.astype(np.int64),
    })
    return F.add_like_label(interactions, like_threshold)


def _title(rng: np.random.Generator, topic: int, index: int) -> str:
    words = TOPICS[topic][0]
    picked = rng.choice(words, size=rng.integers(1, 3), replace=False)
    filler = rng.choice(FILLER_WORDS, size=rng.integers(0, 3), replace=False)
    parts = list(filler[:1]) + list(picked) + list(filler[1:])
    year = 1930 + (index * 7919) % 70
    return " ".join(p.capitalize() for p in parts) + f" ({year})"


def _genres(rng: np.random.Generator, topic: int) -> tuple[int, ...]:
    genres = TOPICS[topic][1]
    keep = [genres[0]] + [g for g in genres[1:] if rng.random() < 0.5]
    return tuple(int(g) for g in keep)


def _standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-8)


if __name__ == "__main__":
    # `python -m mtl_tf.data.synthetic OUT_DIR`: the log written as shards.
    from mtl_tf.data.synthetic_shards import main

    raise SystemExit(main())
