"""A pretrained text encoder fine-tuned in the candidate tower (tiny random BERT).

Covers which backbone weights each `model.text_encoder_mode` trains, the backbone's
own optimizer at the learning rate times the multiplier, checkpoint resume of the
backbone and its optimizer slots, chunked catalog encoding at inference, in-graph
tokenization, and the cold-start item encoder export served by TensorFlow plus
tensorflow-text only.
"""

import os  # noqa: I001  (mtl_tf must be imported before tensorflow)
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf

from mtl_tf.data import movielens_schema as F
from mtl_tf import training
from mtl_tf.config import (Config, ModelConfig, SyntheticConfig, TrainConfig,
                           apply_overrides)
from mtl_tf.data.pipeline import example_arrays, make_dataset
from mtl_tf.data.splits import random_split
from mtl_tf.data.synthetic import make_synthetic
from mtl_tf.export import export_item_encoder
from mtl_tf.model.builder import build_model
from mtl_tf.model.text_encoder import tokenize_texts
from mtl_tf.model.towers import UNKNOWN_ITEM_ID

LEARNING_RATE = 1e-2
SMALL = Config(
    synthetic=SyntheticConfig(num_users=60, num_items=120, interactions_per_user=12),
    model=ModelConfig(embedding_dim=8, bottom_units=(8,), head_units=(4,),
                      dropout=0.0, extra_negatives=16, text_encoder="tiny",
                      text_encoder_mode="finetune"),
    train=TrainConfig(batch_size=64, epochs=1, learning_rate=LEARNING_RATE,
                      learning_rate_schedule="constant", refit=False),
)


@pytest.fixture(scope="module")
def small_data():
    """Synthetic data; the last 10 catalog items never reach training (cold)."""
    data = make_synthetic(SMALL.synthetic)
    parts = random_split(data.interactions, 0.2, 0.1, seed=0)
    cold = set(data.items[F.ITEM_ID].astype(str).iloc[-10:])
    train = parts.train[~parts.train[F.ITEM_ID].astype(str).isin(cold)]
    return data, train, sorted(cold)


def _config(*overrides: str) -> Config:
    return apply_overrides(SMALL, list(overrides))


def _model(small_data, *overrides: str, optimizer=None):
    data, train, _ = small_data
    config = _config(*overrides)
    model = build_model(config, data, train)
    model.compile(optimizer=optimizer or training.make_optimizer(config.train))
    return model


def _dataset(small_data, batch_size: int = 64) -> tf.data.Dataset:
    data, train, _ = small_data
    return make_dataset(example_arrays(data, train, SMALL.tasks), batch_size)


def _backbone_snapshot(model) -> dict[str, np.ndarray]:
    return {v.path: v.numpy()
            for v in model.text_encoder_adapter.backbone.weights}


@pytest.mark.parametrize("mode", ["finetune", "finetune_top_n"])
def test_fine_tuning_trains_exactly_the_chosen_backbone_weights(small_data, mode):
    model = _model(small_data, f"model.text_encoder_mode={mode}",
                   "model.text_encoder_train_layers=1")
    before = _backbone_snapshot(model)
    dataset = _dataset(small_data)
    model.fit(dataset, epochs=1, verbose=0)
    after = _backbone_snapshot(model)
    changed = {name for name in before
               if np.abs(after[name] - before[name]).max() > 0}
    if mode == "finetune":
        assert changed == {n for n in before if not n.startswith("pooled_dense/")}
    else:  # The tiny backbone has two layers: only the top one trains.
        assert len(changed) == 16
        assert all(n.startswith("transformer_layer_1/") for n in changed), changed
    steps = int(model.optimizer.iterations.numpy())
    assert steps == len(dataset)
    assert int(model.backbone_optimizer.iterations.numpy()) == steps
    # The backbone's variables are updated by its own optimizer only.
    main_slots = {id(v) for v in model.optimizer.variables}
    backbone_ids = {id(v) for v in model.text_encoder_adapter.trainable_weights}
    assert len(model.backbone_optimizer.variables) == 1 + 2 * len(backbone_ids)
    assert len(model.optimizer.variables) == 1 + 2 * (
        len(model.trainable_variables) - len(backbone_ids))
    assert not main_slots & backbone_ids
    if mode == "finetune":
        # Evaluation (FactorizedTopK re-embeds the catalog with the live tower).
        metrics = model.evaluate(dataset.take(2), return_dict=True, verbose=0)
        assert 0 <= metrics["factorized_top_k/top_100_categorical_accuracy"] <= 1


def test_frozen_mode_keeps_no_backbone_in_the_model(small_data):
    model = _model(small_data, "model.text_encoder_mode=frozen")
    assert model.text_encoder_adapter is None and model.backbone_optimizer is None
    cache = model.catalog.prepared[F.ITEM_TITLE].numpy()
    assert cache.shape == (121, 8) and not cache[0].any()
    assert model.candidate_tower.title_encoder is None
    model.fit(_dataset(small_data).take(2), verbose=0)
    # The cache is a constant: frozen training cannot change a title vector.
    np.testing.assert_array_equal(model.catalog.prepared[F.ITEM_TITLE].numpy(),
                                  cache)
    names = [v.name for v in model.trainable_variables]
    assert not any("transformer" in n or "token_embedding" in n for n in names)


def test_train_layers_beyond_the_backbone_raise(small_data):
    data, train, _ = small_data
    config = _config("model.text_encoder_mode=finetune_top_n",
                     "model.text_encoder_train_layers=3")
    with pytest.raises(ValueError, match="model.text_encoder_train_layers=3"):
        build_model(config, data, train)


def test_backbone_learning_rate_multiplier(small_data):
    multiplier = 0.1
    model = _model(small_data, "model.extra_negatives=0",
                   f"model.text_encoder_learning_rate_multiplier={multiplier}")
    rate = model.backbone_optimizer.learning_rate.numpy()
    assert rate == pytest.approx(LEARNING_RATE * multiplier)
    tower = model.candidate_tower.projection
    batch = next(iter(_dataset(small_data)))
    model(batch)  # builds the lazily created weights
    backbone_before = _backbone_snapshot(model)
    tower_before = tower.kernel.numpy()
    model.fit(tf.data.Dataset.from_tensors(batch), verbose=0)
    # Adam's first step moves each weight by its learning rate (times the sign of
    # its gradient), so the largest move is the learning rate of its optimizer.
    backbone_step = max(np.abs(value - backbone_before[name]).max()
                        for name, value in _backbone_snapshot(model).items())
    tower_step = np.abs(tower.kernel.numpy() - tower_before).max()
    assert tower_step == pytest.approx(LEARNING_RATE, rel=2e-2)
    assert backbone_step == pytest.approx(LEARNING_RATE * multiplier, rel=2e-2)


def test_checkpoint_resume_restores_backbone_and_its_optimizer(tmp_path, small_data):
    overrides = ("model.text_encoder_mode=finetune_top_n",
                 "model.text_encoder_train_layers=1",
                 "model.extra_negatives=0")  # no sampling: steps are reproducible
    config = _config(*overrides)
    dataset = _dataset(small_data)
    batch = next(iter(dataset))

    trained = _model(small_data, *overrides)
    saver = training.ResumableCheckpoint(tmp_path / "ckpt", trained,
                                         trained.optimizer)
    trained.fit(dataset, epochs=1, verbose=0, callbacks=[saver])
    saved_backbone = _backbone_snapshot(trained)
    names = [name for name, _ in tf.train.list_variables(str(tmp_path / "ckpt"))]
    backbone_slots = [n for n in names
                      if n.startswith("model/backbone_optimizer/_variables/")]
    # Adam's two slots per trained backbone variable (16 in the top layer).
    assert len(backbone_slots) == 2 * 16

    resumed = build_model(config, small_data[0], small_data[1])
    optimizer = training.make_optimizer(config.train)
    resumed.compile(optimizer=optimizer)
    fresh = _backbone_snapshot(resumed)
    assert any(np.abs(fresh[n] - saved_backbone[n]).max() > 1e-4 for n in fresh)
    assert training.ResumableCheckpoint(tmp_path / "ckpt", resumed,
                                        optimizer).restore() == 1
    for name, value in _backbone_snapshot(resumed).items():
        np.testing.assert_array_equal(value, saved_backbone[name], err_msg=name)
    assert int(resumed.backbone_optimizer.iterations.numpy()) == len(dataset)

    # One more step on each: equal only if the Adam slots were restored too
    # (fresh slots would make the step lr * sign(gradient) instead).
    for model in (trained, resumed):
        model.fit(tf.data.Dataset.from_tensors(batch), verbose=0)
    after_trained = _backbone_snapshot(trained)
    for name, value in _backbone_snapshot(resumed).items():
        np.testing.assert_allclose(value, after_trained[name], atol=1e-6,
                                   err_msg=name)
    features = {k: v[:16] for k, v in batch.items()}
    for name, value in trained(features).items():
        np.testing.assert_allclose(resumed(features)[name].numpy(), value.numpy(),
                                   atol=1e-5, err_msg=name)


def test_fine_tuning_can_start_from_a_frozen_run(tmp_path, small_data):
    data, train, _ = small_data
    dataset = _dataset(small_data)
    features = {k: v[:16] for k, v in next(iter(dataset)).items()}
    frozen_config = _config("model.text_encoder_mode=frozen")
    frozen = build_model(frozen_config, data, train)
    training.fit(frozen, frozen_config, dataset, None, tmp_path / "frozen",
                 num_train_examples=len(train), verbose=0)

    # Stage two: the top layer fine-tunes from the frozen run's weights. At a
    # negligible learning rate its outputs stay the frozen model's, which they
    # only are if fit loaded those weights (the backbone is the same pretrained
    # one, so its embeddings equal the frozen cache).
    tuned_config = _config("model.text_encoder_mode=finetune_top_n",
                           "model.text_encoder_train_layers=1",
                           "train.learning_rate=1e-9",
                           f"train.init_from={tmp_path / 'frozen'}")
    tuned = build_model(tuned_config, data, train)
    summary = training.fit(tuned, tuned_config, dataset, None, tmp_path / "tuned",
                           num_train_examples=len(train), verbose=0)
    assert summary["epochs"] == 1 and not summary["resumed"]
    # Only weights carry over: the optimizer ran this run's steps at its rate.
    assert int(tuned.optimizer.iterations.numpy()) == len(dataset)
    assert float(tuned.optimizer.learning_rate.numpy()) == pytest.approx(1e-9)
    expected = frozen(features, training=False)
    for name, value in tuned(features, training=False).items():
        np.testing.assert_allclose(value.numpy(), expected[name].numpy(), atol=1e-4,
                                   err_msg=name)
    untrained = build_model(tuned_config, data, train)(features, training=False)
    assert np.abs(untrained["rating"].numpy() - expected["rating"].numpy()).max() > 1e-2


def test_chunked_catalog_encoding_matches_one_pass(small_data):
    model = _model(small_data)
    title_encoder = model.candidate_tower.title_encoder
    catalog = model.catalog
    tokens = dict(catalog.prepared[F.ITEM_TITLE])
    lengths = tokens["padding_mask"].numpy().sum(1)
    assert len(set(lengths)) > 2  # titles of several lengths get sorted
    one_pass = title_encoder.adapter(tokens, training=False).numpy()
    title_encoder.chunk_size = 7
    for function in (title_encoder, tf.function(title_encoder)):
        np.testing.assert_allclose(function(tokens, training=False).numpy(),
                                   one_pass, atol=1e-5)
    # Training encodes length buckets (a Python loop, for gradients); with
    # dropout 0 it is the same, also with fewer titles than buckets.
    for count in (121, 3, 1):
        part = {k: v[-count:] for k, v in tokens.items()}
        np.testing.assert_allclose(title_encoder(part, training=True).numpy(),
                                   one_pass[-count:], atol=1e-5, err_msg=count)
    assert title_encoder.train_buckets == 4
    # The unknown item has no title: its text vector is zeros, as when frozen.
    tower = model.candidate_tower
    side = catalog(tf.constant([UNKNOWN_ITEM_ID, catalog.item_ids[0]]))
    empty = dict(side, rows=tf.constant([0, 0], tf.int64),
                 **{F.ITEM_GENRES: tf.zeros_like(side[F.ITEM_GENRES])})
    rows = tower.id_lookup(tf.constant([UNKNOWN_ITEM_ID] * 2))
    unknown = tower.encode(rows, empty).numpy()
    np.testing.assert_allclose(unknown[0], unknown[1], atol=1e-6)


def test_in_graph_tokenization_matches_numpy(small_data):
    title_encoder = _model(small_data).candidate_tower.title_encoder
    titles = ["Star Wars (1977)", "", "a b c d e f g h i j k l m n o p q r",
              "Sleepless in Seattle"]
    expected = tokenize_texts(title_encoder.tokenizer, titles,
                              title_encoder.sequence_length)
    tokens = tf.function(title_encoder.tokenize)(tf.constant(titles))
    np.testing.assert_array_equal(tokens["token_ids"].numpy(),
                                  expected["token_ids"])
    np.testing.assert_array_equal(tokens["padding_mask"].numpy(),
                                  expected["padding_mask"])
    assert tokens["padding_mask"].numpy()[2].all()  # truncated to the length


ITEM_ENCODER_SCRIPT = textwrap.dedent('''
    import sys

    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)

    inputs = dict(np.load(sys.argv[2]))
    encoder = tf.saved_model.load(sys.argv[1])
    out = encoder.signatures["encode_items"](
        movie_title=tf.constant(inputs["titles"]),
        movie_genres=tf.constant(inputs["genres"]))
    no_genres = encoder.signatures["encode_items"](
        movie_title=tf.constant(inputs["titles"]),
        movie_genres=tf.zeros([len(inputs["titles"]), 0], tf.string))
    np.savez(sys.argv[3], embedding=out["embedding"].numpy(),
             representation=out["representation"].numpy(),
             no_genres=no_genres["embedding"].numpy())
    forbidden = ("tf_keras", "keras_hub", "keras_nlp", "mtl_tf",
                 "tensorflow_recommenders")
    loaded = [m for m in forbidden if m in sys.modules]
    assert not loaded, f"imported {loaded}"
''')


def test_item_encoder_export_matches_the_candidate_tower(tmp_path, small_data):
    data, _, cold = small_data
    model = _model(small_data, "model.text_encoder_mode=finetune_top_n")
    model.fit(_dataset(small_data).take(3), verbose=0)
    path = export_item_encoder(model, tmp_path, "items")
    assert path == tmp_path / "items" / "1"

    items = data.items.set_index(data.items[F.ITEM_ID].astype(str))
    warm = [i for i in items.index if i not in cold][:3]
    ids = cold[:3] + warm
    titles = items.loc[ids, F.ITEM_TITLE].astype(str).tolist()
    genres = [[str(g) for g in item] for item in items.loc[ids, F.ITEM_GENRES]]
    width = max(map(len, genres))
    padded = np.array([g + [""] * (width - len(g)) for g in genres])
    np.savez(tmp_path / "inputs.npz", titles=np.array(titles), genres=padded)
    (tmp_path / "encode.py").write_text(ITEM_ENCODER_SCRIPT)
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_USE_LEGACY_KERAS", "PYTHONPATH")}
    process = subprocess.run(
        [sys.executable, str(tmp_path / "encode.py"), str(path),
         str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
        env=env, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-4000:]
    served = dict(np.load(tmp_path / "out.npz"))

    # Cold catalog items: exactly what the in-memory model embeds for their id.
    in_memory = model.item_embeddings(tf.constant(cold[:3])).numpy()
    np.testing.assert_allclose(served["embedding"][:3], in_memory, atol=1e-5)
    np.testing.assert_allclose(
        served["representation"][:3],
        model.candidate_tower(tf.constant(cold[:3])).numpy(), atol=1e-5)
    # Warm items too, as if new: the tower on their catalog title and genres with
    # the unknown-item id row.
    tower = model.candidate_tower
    side = model.catalog(tf.constant(warm))
    as_new = tower.encode(tower.id_lookup(tf.constant([UNKNOWN_ITEM_ID] * 3)), side)
    np.testing.assert_allclose(served["embedding"][3:],
                               tf.math.l2_normalize(as_new, -1).numpy(), atol=1e-5)
    assert not np.allclose(served["embedding"][3:],
                           model.item_embeddings(tf.constant(warm)).numpy(),
                           atol=1e-3)  # (their own id rows differ)
    assert np.abs(served["no_genres"] - served["embedding"]).max() > 1e-3

    frozen = _model(small_data, "model.text_encoder_mode=frozen")
    with pytest.raises(ValueError, match="text_encoder_mode"):
        export_item_encoder(frozen, tmp_path, "frozen")


def test_catalog_text_tokens_need_one_row_per_item():
    from mtl_tf.model.catalog import ItemCatalog

    tokens = {"token_ids": np.zeros((2, 4), np.int32),
              "padding_mask": np.zeros((2, 4), bool)}
    with pytest.raises(ValueError, match=r"feature 'title' needs one row per item"):
        ItemCatalog(["1", "2"], {"title": tokens})

