"""Every MTL architecture and loss weighting trains, exports and serves in plain TF."""

import numpy as np  # noqa: I001  (mtl_tf must be imported before tensorflow)
import pytest

import mtl_tf  # noqa: F401
import tensorflow as tf

from mtl_tf import experiment
from mtl_tf.data import movielens_schema as F
from mtl_tf.config import apply_overrides
from mtl_tf.model.builder import build_model
from test_end_to_end import serve_in_plain_tensorflow
from test_training import summary_tags

VARIANTS = {
    "mmoe": ["model.mtl=mmoe"],
    "ple": ["model.mtl=ple", "model.num_levels=2"],
    "shared_bottom": ["model.mtl=shared_bottom"],
    "uncertainty": ["loss.weighting=uncertainty"],
    "dwa": ["loss.weighting=dwa"],
    "gradnorm": ["loss.weighting=gradnorm"],
    "pcgrad_clip": ["loss.pcgrad=true", "loss.clip_norm=1.0"],
    "frozen_text_encoder": ["model.text_encoder=tiny"],
    "finetuned_text_encoder": ["model.text_encoder=tiny",
                               "model.text_encoder_mode=finetune_top_n",
                               "model.text_encoder_train_layers=1"],
}


def _op_types(export_dir) -> set[str]:
    """Op types of every serving signature's graph, function bodies included."""
    loaded = tf.saved_model.load(str(export_dir))
    types = set()
    for function in loaded.signatures.values():
        graph = function.graph.as_graph_def()
        types |= {node.op for node in graph.node}
        for body in graph.library.function:
            types |= {node.op for node in body.node_def}
    return types


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_trains_exports_and_serves(variant, tmp_path, tiny_config,
                                           tiny_prepared):
    # DWA's weights depend on the losses from epoch 3 on; 2 epochs elsewhere.
    epochs = 3 if variant == "dwa" else 2
    config = apply_overrides(tiny_config, VARIANTS[variant] + [
        f"train.epochs={epochs}", "train.early_stopping_patience=0",
        f"export.export_dir={tmp_path / 'saved_models'}"])
    result = experiment.run(config, tmp_path / "run", verbose=0,
                            prepared=tiny_prepared)
    history = result["history"]
    for task in ("retrieval", "rating", "like"):
        assert np.all(np.isfinite(history[f"{task}_loss"])), task
        assert f"{task}_weight" in history
    weights = {t: history[f"{t}_weight"][-1] for t in ("retrieval", "rating", "like")}
    if variant == "uncertainty" or variant == "gradnorm":
        assert weights != {"retrieval": 1.0, "rating": 1.0, "like": 0.5}, weights
    if variant == "dwa":  # DWA weights sum to the number of tasks in epoch 3.
        assert sum(weights.values()) == pytest.approx(3.0, rel=1e-4)
    assert result["metrics"]["rating_rmse"] < 1.5
    gate_tags = summary_tags(tmp_path / "run" / "tensorboard" / "gates")
    if variant in ("mmoe", "ple"):  # Gate histograms per task and expert.
        assert {"gates/rating/expert_0", "gates/like/expert_1"} <= gate_tags
    else:
        assert not gate_tags

    if variant == "finetuned_text_encoder":
        model = result["model"]
        # Training moved the top transformer layer away from its initial weights.
        initial = build_model(config, tiny_prepared.data, tiny_prepared.splits.train)
        start = {v.path: v.numpy()
                 for v in initial.text_encoder_adapter.backbone.weights}
        moved = {v.path for v in model.text_encoder_adapter.backbone.weights
                 if np.abs(v.numpy() - start[v.path]).max() > 0}
        assert moved and all(p.startswith("transformer_layer_1/") for p in moved)
        # Item representations are baked: no attention (einsum) and no
        # tokenizer op in any served graph.
        ops = _op_types(result["export"])
        assert "MatMul" in ops and "Einsum" not in ops, sorted(ops)
        assert not [op for op in ops if "Wordpiece" in op or "Regex" in op]

    inputs, outputs, _ = serve_in_plain_tensorflow(result["export"], tiny_prepared,
                                                   tmp_path)
    features = {k: tf.constant(inputs[k]) for k in
                (F.USER_ID, F.USER_AGE, F.USER_GENDER, F.USER_OCCUPATION, F.HISTORY,
                 F.ITEM_ID)}
    expected = result["model"](features, training=False)
    assert sorted(expected) == ["like", "rating", "retrieval"]
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[f"serving_default/{name}"], value.numpy(),
                                   atol=1e-4, err_msg=name)


def test_mmoe_gate_weights_are_inspectable(tiny_config, tiny_prepared):
    config = apply_overrides(tiny_config, ["model.mtl=mmoe", "model.num_experts=3"])
    model = build_model(config, tiny_prepared.data, tiny_prepared.splits.train)
    batch = {k: tf.constant(v[:16]) for k, v in tiny_prepared.arrays["test"].items()}
    assert model.has_gates
    gates = model.gate_weights(batch)
    assert list(gates) == ["rating", "like"]
    for gate in gates.values():
        assert gate.shape == (16, 3)
        np.testing.assert_allclose(tf.reduce_sum(gate, -1).numpy(), 1.0, rtol=1e-5)
