"""A generated e-commerce impression log: the worked example of your own data.

`python -m mtl_tf.data.shop_log OUT_DIR` writes three CSV files the way a shop
would export them: `interactions.csv` (one row per impression: user, item,
device, page position, hour, click, purchase, timestamp), `items.csv` (title,
price, tags, brand) and `users.csv` (age, segment). Nothing in it is MovieLens:
the `examples/shop_*.json` configs train on it through `data.source=files` and a
declared schema.

The structure is planted so the tasks are learnable and related: users and
items have latent factors; an item's category decides its tags and title words;
users' tastes follow their segment and age group; a click follows the
user-item affinity, the brand, the page position (lower is seen more) and the
device; a purchase happens only after a click, more often for cheap
items and strong affinity. Deterministic by `seed`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

CATEGORIES = (
    ("shoes", ("running", "trail", "leather", "sneaker", "boot")),
    ("kitchen", ("pan", "knife", "steel", "ceramic", "chef")),
    ("books", ("novel", "mystery", "history", "poems", "thriller")),
    ("garden", ("hose", "seeds", "shovel", "planter", "compost")),
    ("toys", ("puzzle", "blocks", "robot", "plush", "kite")),
    ("audio", ("headphones", "speaker", "wireless", "bass", "earbuds")),
)
DEVICES = ("ios", "android", "web")
SEGMENTS = ("new", "regular", "vip")


def make_shop_log(num_users: int = 400, num_items: int = 300,
                  impressions_per_user: int = 100, seed: int = 0
                  ) -> dict[str, pd.DataFrame]:
    """Generates the three tables (see the module docstring).

    Example:
        >>> tables = make_shop_log(num_users=20, num_items=30)
        >>> sorted(tables), int(tables["interactions"].purchase.max()) <= 1
        (['interactions', 'items', 'users'], True)
    """
    if num_users < 2 or num_items < 10 or impressions_per_user < 1:
        raise ValueError("make_shop_log needs num_users >= 2, num_items >= 10 and "
                         "impressions_per_user >= 1. Received: "
                         f"{num_users}, {num_items}, {impressions_per_user}.")
    rng = np.random.default_rng(seed)
    dim = len(CATEGORIES)
    category = rng.integers(dim, size=num_items)
    item_factor = 0.4 * rng.normal(size=(num_items, dim))
    item_factor[np.arange(num_items), category] += 1.0
    price = np.round(np.exp(rng.normal(3.0, 0.8, size=num_items)), 2)
    brand = rng.integers(25, size=num_items)
    brand_quality = 0.5 * rng.normal(size=25)
    items = pd.DataFrame({
        "item_id": [f"p{i:04d}" for i in range(num_items)],
        "title": [_title(rng, c) for c in category],
        "price": price,
        "tags": ["|".join(_tags(rng, c)) for c in category],
        "brand": [f"brand{b}" for b in brand],
    })
    segment = rng.integers(len(SEGMENTS), size=num_users)
    age = rng.integers(18, 70, size=num_users)
    # Tastes follow the user's segment and age group, so a model can learn them
    # from side features long before it has seen a user's own clicks.
    segment_taste = rng.normal(size=(len(SEGMENTS), dim))
    age_taste = rng.normal(size=(3, dim))
    user_factor = (0.9 * segment_taste[segment]
                   + 0.9 * age_taste[np.digitize(age, [35, 50])]
                   + 0.6 * rng.normal(size=(num_users, dim)))
    users = pd.DataFrame({
        "user_id": [f"u{u:05d}" for u in range(num_users)],
        "age": age.astype(float),
        "segment": np.asarray(SEGMENTS)[segment],
    })
    # Impressions: items shown to each user, partly by affinity (a recommender).
    rows = num_users * impressions_per_user
    user = np.repeat(np.arange(num_users), impressions_per_user)
    item = rng.integers(num_items, size=rows)
    affinity = np.einsum("nd,nd->n", user_factor[user], item_factor[item])
    affinity /= np.sqrt(dim)
    position = rng.integers(1, 11, size=rows)
    device = rng.integers(len(DEVICES), size=rows)
    hour = rng.integers(24, size=rows)
    click_logit = (2.0 * affinity + brand_quality[brand[item]] - 0.15 * position
                   + 0.3 * (device == 0) + 0.2 * (segment[user] == 2) - 0.6)
    click = rng.random(rows) < _sigmoid(click_logit)
    buy_logit = (2.0 * affinity - 0.9 * np.log(price[item] / 20.0)
                 + 0.6 * (segment[user] == 2) - 0.8)
    purchase = click & (rng.random(rows) < _sigmoid(buy_logit))
    interactions = pd.DataFrame({
        "user_id": users["user_id"].to_numpy()[user],
        "item_id": items["item_id"].to_numpy()[item],
        "device": np.asarray(DEVICES)[device],
        "position": position,
        "hour": hour,
        "click": click.astype(int),
        "purchase": purchase.astype(int),
        "ts": 1_700_000_000 + rng.integers(0, 5_000_000, size=rows),
    })
    return {"interactions": interactions, "items": items, "users": users}


def write_shop_log(out_dir: str | Path, **kwargs) -> dict[str, Path]:
    """Writes `make_shop_log(**kwargs)` as CSV files into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, table in make_shop_log(**kwargs).items():
        paths[name] = out_dir / f"{name}.csv"
        table.to_csv(paths[name], index=False)
    return paths


def _title(rng: np.random.Generator, category: int) -> str:
    words = rng.choice(CATEGORIES[category][1], size=2, replace=False)
    adjective = rng.choice(("classic", "pro", "compact", "deluxe", "everyday"))
    return f"{adjective.capitalize()} {words[0]} {words[1]}"


def _tags(rng: np.random.Generator, category: int) -> list[str]:
    extra = [t for t in ("sale", "new", "eco") if rng.random() < 0.2]
    return [CATEGORIES[category][0]] + extra


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mtl_tf.data.shop_log",
        description="Write a generated e-commerce impression log as CSV files.")
    parser.add_argument("out_dir", help="directory for interactions.csv, items.csv "
                        "and users.csv")
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--impressions-per-user", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        paths = write_shop_log(args.out_dir, num_users=args.users,
                               num_items=args.items,
                               impressions_per_user=args.impressions_per_user,
                               seed=args.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
