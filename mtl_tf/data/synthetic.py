"""A generated, MovieLens-shaped data set with planted structure (the default source).

Each item has a main topic; its latent factor points mostly along that topic and its
title and genres are drawn from the topic's words and genres, so item text carries
item information (a text encoder helps cold-start items). Users have latent topic
preferences that partly follow their age bucket and occupation, so user features
carry information too. What users watch follows preference plus item popularity;
ratings follow the same preference to a controllable degree
(`rating_watch_correlation`) plus user/item biases and noise; `like` is rating >= 4.
Watches are sampled a block of users at a time, so memory grows with the
interactions, not with users x items (40,000 x 40,000 peaks at ~0.6 GB).
"""

from __future__ import annotations

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



def make_synthetic(config: SyntheticConfig = SyntheticConfig(),
                   like_threshold: float = 4.0) -> RecDataset:
    """Generates a RecDataset; the same `config` (incl. seed) gives the same data.

    Interactions carry the `like` label (rating >= `like_threshold`).

    Example:
        >>> data = make_synthetic(SyntheticConfig(num_users=50, num_items=40))
        >>> sorted(data.interactions.columns)[:2]
        ['movie_id', 'timestamp']
    """
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

    watched_user, watched_item = _sample_watches(rng, user_factor, item_factor,
                                                 popularity, config)

    # Ratings: the watch affinity mixed with an independent taste factor.
    c = config.rating_watch_correlation
    other_user = rng.normal(size=(config.num_users, dim))
    other_item = rng.normal(size=(config.num_items, dim))
    other = np.einsum("nd,nd->n", other_user[watched_user],
                      other_item[watched_item]) / np.sqrt(dim)
    watch_affinity = np.einsum("nd,nd->n", user_factor[watched_user],
                               item_factor[watched_item]) / np.sqrt(dim)
    taste = c * _standardize(watch_affinity) + np.sqrt(1 - c * c) * _standardize(other)
    user_bias = 0.4 * rng.normal(size=config.num_users)
    item_bias = 0.3 * rng.normal(size=config.num_items) + 0.1 * _standardize(popularity)
    latent = (3.5 + 0.9 * taste + user_bias[watched_user] + item_bias[watched_item]
              + config.rating_noise * rng.normal(size=len(watched_user)))
    ratings = np.clip(np.rint(latent), 1, 5).astype(np.float32)

    timestamps = 874_000_000 + rng.integers(0, 30_000_000, size=len(watched_user))
    interactions = pd.DataFrame({
        F.USER_ID: users[F.USER_ID].to_numpy()[watched_user],
        F.ITEM_ID: items[F.ITEM_ID].to_numpy()[watched_item],
        F.RATING: ratings,
        F.TIMESTAMP: timestamps.astype(np.int64),
    })
    interactions = F.add_like_label(interactions, like_threshold)
    report = CleaningReport(rows_read=len(interactions), rows_kept=len(interactions))
    return RecDataset(F.MOVIELENS_SCHEMA, interactions, items, users,
                      name="synthetic", report=report)


def _sample_watches(rng: np.random.Generator, user_factor: np.ndarray,
                    item_factor: np.ndarray, popularity: np.ndarray,
                    config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per user, draws items without replacement, P ~ softmax(2 affinity +
    popularity) (Gumbel top-k), a block of users at a time: memory grows with
    the interactions and the block, never with users x items."""
    num_users, num_items = len(user_factor), len(item_factor)
    counts = rng.poisson(config.interactions_per_user, size=num_users)
    counts = np.clip(counts, 5, max(5, num_items // 2))
    block = max(1, _BLOCK_ELEMENTS // num_items)
    scale = 2.0 / np.sqrt(user_factor.shape[1])
    items = []
    for start in range(0, num_users, block):
        perturbed = user_factor[start:start + block] @ item_factor.T
        perturbed *= scale
        perturbed += popularity
        perturbed += rng.gumbel(size=perturbed.shape)
        for row, count in zip(perturbed, counts[start:start + block]):
            top = np.argpartition(-row, count - 1)[:count]
            items.append(top[np.argsort(-row[top], kind="stable")])
    return np.repeat(np.arange(num_users), counts), np.concatenate(items)


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
