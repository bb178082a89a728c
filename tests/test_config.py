"""Config presets, `--set` overrides and JSON config files."""

import dataclasses
import json

import pytest

import mtl_tf  # noqa: F401
from mtl_tf import config as C
from mtl_tf.config import (
    Config,
    apply_overrides,
    from_dict,
    get_preset,
    load_config_file,
)


def test_presets_exist_and_are_configs():
    assert {"default", "tiny"} <= set(C.PRESETS)
    for name in ("default", "tiny"):
        assert isinstance(get_preset(name), Config)
    assert get_preset("default") == Config()
    tiny = get_preset("tiny")
    # The tiny preset is smaller than the default one.
    assert tiny.synthetic.num_users < Config().synthetic.num_users
    assert tiny.synthetic.num_items < Config().synthetic.num_items
    assert tiny.export.model_name == "mtl_tiny"


def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError, match="nope") as info:
        get_preset("nope")
    assert "tiny" in str(info.value)


def test_overrides_of_each_type():
    base = get_preset("tiny")
    config = apply_overrides(base, [
        "train.epochs=3",                  # int
        "train.learning_rate=0.25",        # float
        "model.temperature=1",             # int given for a float field
        "model.bottom_units=[16, 8]",      # tuple
        "data.split=temporal",             # bare string
        'export.model_name="quoted"',      # JSON string
        "model.logq_correction=true",      # bool
        "data.lenient=false",
        "data.data_dir=some/dir",
    ])
    assert config.train.epochs == 3 and isinstance(config.train.epochs, int)
    assert config.train.learning_rate == 0.25
    assert config.model.temperature == 1.0
    assert isinstance(config.model.temperature, float)
    assert config.model.bottom_units == (16, 8)
    assert isinstance(config.model.bottom_units, tuple)
    assert config.data.split == "temporal"
    assert config.export.model_name == "quoted"
    assert config.model.logq_correction is True
    assert config.data.lenient is False
    assert config.data.data_dir == "some/dir"
    # None via JSON null.
    assert apply_overrides(config, ["data.data_dir=null"]).data.data_dir is None
    # Untouched values and sections stay as they were; the base is not mutated.
    assert config.synthetic == base.synthetic
    assert config.train.batch_size == base.train.batch_size
    assert base.train.epochs != 3


def test_task_weight_override():
    base = get_preset("tiny")
    config = apply_overrides(base, ["tasks.like.weight=2", "tasks.rating.weight=0"])
    assert config.task("like").weight == 2.0
    assert isinstance(config.task("like").weight, float)
    assert config.task("rating").weight == 0.0
    assert config.task("retrieval") == base.task("retrieval")
    assert [t.name for t in config.tasks] == [t.name for t in base.tasks]


def test_no_overrides_is_identity():
    base = get_preset("tiny")
    assert apply_overrides(base, []) == base


@pytest.mark.parametrize("override, named", [
    ("nosuch.key=1", "nosuch"),                     # unknown section
    ("train.nosuch=1", "nosuch"),                   # unknown key
    ("tasks.nosuch.weight=1", "nosuch"),            # unknown task
    ("tasks.like.nosuch=1", "nosuch"),              # unknown task field
    ("train.epochs=many", "train.epochs"),          # bad type (str for int)
    ("train.epochs=2.5", "train.epochs"),           # bad type (float for int)
    ("train.epochs=true", "train.epochs"),          # bool is not an int here
    ("data.lenient=1", "data.lenient"),             # int is not a bool
    ("train.learning_rate=fast", "train.learning_rate"),
    ("tasks.like.weight=heavy", "tasks.like.weight"),
    ("tasks.like.weight=-1", "tasks.like.weight"),  # out of range
    ("data.source=csv", "data.source"),             # bad choice
    ("data.split=shuffled", "data.split"),
    ("train.optimizer=sgd", "train.optimizer"),
    ("tasks.like.type=ranking", "tasks.like.type"),
    ("data.test_fraction=1.5", "data.test_fraction"),
    ("schema.shoe_size.kind=numeric", "shoe_size"),
    ("schema.movie_title.kind=sentence", "schema feature 'movie_title'"),
    ("schema.movie_title.side=store", "side must be one of"),
])
def test_bad_override_names_the_key(override, named):
    with pytest.raises(ValueError) as info:
        apply_overrides(get_preset("tiny"), [override])
    assert named in str(info.value)


def test_bad_choice_lists_allowed_values():
    with pytest.raises(ValueError) as info:
        apply_overrides(get_preset("tiny"), ["data.source=csv"])
    message = str(info.value)
    assert "'csv'" in message
    for allowed in C.DATA_SOURCES:
        assert allowed in message


@pytest.mark.parametrize("override", [
    "train.epochs",          # no "="
    "epochs=3",              # no section
    "train.epochs.x=3",      # too deep
    "tasks.like=3",          # tasks need tasks.<name>.<field>
    "tasks.like.weight.x=3",
])
def test_malformed_override(override):
    with pytest.raises(ValueError) as info:
        apply_overrides(get_preset("tiny"), [override])
    assert override.split("=")[0] in str(info.value)


@pytest.mark.parametrize("name", ["default", "tiny"])
def test_to_json_round_trip(name, tmp_path):
    config = get_preset(name)
    config = apply_overrides(config, ["data.data_dir=x/y", "tasks.like.weight=0.25",
                                      "model.bottom_units=[7]"])
    assert from_dict(json.loads(config.to_json())) == config
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert load_config_file(path) == config
    # A file over another base still gives the file's values (it is complete).
    assert load_config_file(path, base=get_preset("default")) == config


def test_partial_dict_applies_over_base():
    base = get_preset("tiny")
    config = from_dict({"train": {"epochs": 2}}, base)
    assert config == dataclasses.replace(
        base, train=dataclasses.replace(base.train, epochs=2))


def test_from_dict_tasks_replace_task_list():
    config = from_dict({"tasks": [{"name": "rating", "type": "regression",
                                   "label": "user_rating", "weight": 3}]})
    assert [t.name for t in config.tasks] == ["rating"]
    assert config.task("rating").weight == 3
    assert config.task("like") is None


@pytest.mark.parametrize("values, named", [
    ({"nosuch": {}}, "nosuch"),
    ({"train": {"nosuch": 1}}, "nosuch"),
    ({"tasks": [{"name": "x"}]}, "x"),                       # no type
    ({"tasks": [{"name": "x", "type": "binary", "label": "like", "bad": 1}]}, "bad"),
    ({"tasks": [{"name": "a", "type": "retrieval"},
                {"name": "a", "type": "retrieval"}]}, "duplicate"),
])
def test_from_dict_errors(values, named):
    with pytest.raises(ValueError) as info:
        from_dict(values)
    assert named in str(info.value)


def test_missing_config_file(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(ValueError) as info:
        load_config_file(path)
    assert str(path) in str(info.value)


def test_invalid_json_config_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"train": {"epochs": 3,,}')
    with pytest.raises(ValueError) as info:
        load_config_file(path)
    assert str(path) in str(info.value)
    assert "JSON" in str(info.value)


def test_config_file_with_unknown_key(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"train": {"epochz": 3}}))
    with pytest.raises(ValueError, match="epochz"):
        load_config_file(path)


def test_config_is_frozen():
    config = get_preset("tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 5  # type: ignore[misc]


def test_text_encoder_fine_tuning_fields():
    config = apply_overrides(get_preset("tiny"), [
        # Mode first: section overrides are validated together, in any order.
        "model.text_encoder_mode=finetune_top_n", "model.text_encoder=minilm",
        "model.text_encoder_train_layers=2",
        "model.text_encoder_learning_rate_multiplier=1"])
    model = config.model
    assert (model.text_encoder_mode, model.text_encoder_train_layers) == (
        "finetune_top_n", 2)
    assert model.text_encoder_learning_rate_multiplier == 1.0
    assert isinstance(model.text_encoder_learning_rate_multiplier, float)
    assert Config().model.text_encoder_mode == "frozen"
    assert from_dict(json.loads(config.to_json())) == config


@pytest.mark.parametrize("overrides, named", [
    (["model.text_encoder_mode=finetune"], "model.text_encoder='bow'"),
    (["model.text_encoder=none", "model.text_encoder_mode=finetune_top_n"],
     "model.text_encoder='none'"),
    (["model.text_encoder_mode=train"], "model.text_encoder_mode"),
    (["model.text_encoder_train_layers=0"], "model.text_encoder_train_layers"),
    (["model.text_encoder_train_layers=1.5"], "model.text_encoder_train_layers"),
    (["model.text_encoder_learning_rate_multiplier=0"],
     "model.text_encoder_learning_rate_multiplier"),
    (["model.text_encoder_sequence_length=1"], "model.text_encoder_sequence_length"),
    (["export.item_encoder=true", "model.text_encoder=minilm"], "frozen"),
])
def test_bad_text_encoder_settings_name_the_field(overrides, named):
    with pytest.raises(ValueError) as info:
        apply_overrides(get_preset("tiny"), overrides)
    assert named in str(info.value)
