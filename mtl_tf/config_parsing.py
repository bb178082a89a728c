"""Building a `Config` from JSON objects, JSON files and ``--set`` overrides.

Every unknown section, key or task field is an error that names it and lists the
allowed ones; values are coerced to the field's type (an int for a float field, a
list for a tuple field) or rejected with the expected type.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from mtl_tf.config import Config
from mtl_tf.schema import Schema
from mtl_tf.task_config import TaskConfig


def from_dict(values: dict[str, Any], base: Config | None = None) -> Config:
    """Builds a Config from a (possibly partial) nested dict over `base`.

    Unknown sections or keys raise ValueError naming them and the allowed keys.
    """
    base = base or Config()
    if not isinstance(values, dict):
        raise ValueError("A config must be a JSON object of sections. Received: "
                         f"{type(values).__name__}.")
    unknown = set(values) - {f.name for f in dataclasses.fields(Config)}
    if unknown:
        raise ValueError(f"Unknown config sections {sorted(unknown)}; allowed: "
                         f"{[f.name for f in dataclasses.fields(Config)]}.")
    changes: dict[str, Any] = {}
    for section, section_values in values.items():
        if section == "schema":
            if isinstance(section_values, Schema):
                changes["schema"] = section_values
                continue
            changes["schema"] = Schema.from_dict(section_values)
            continue
        if section == "tasks":
            if not isinstance(section_values, list):
                raise ValueError("Config section 'tasks' must be a list of task "
                                 f"objects. Received: {section_values!r}.")
            changes["tasks"] = tuple(_task_from_dict(t) for t in section_values)
            continue
        if not isinstance(section_values, dict):
            raise ValueError(f"Config section {section!r} must be an object of keys. "
                             f"Received: {section_values!r}.")
        current = getattr(base, section)
        changes[section] = _replace_fields(current, section_values, section)
    return dataclasses.replace(base, **changes)


def load_config_file(path: str | Path, base: Config | None = None) -> Config:
    """Reads a JSON config file (as written to `config.json` by every run)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Config file not found: {path}.")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"Config file {path} is not valid JSON: {error}.") from None
    return from_dict(values, base)


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Applies ``section.key=value`` strings; values are parsed as JSON when possible.

    ``tasks.<name>.<field>=value`` changes one task, ``schema.<feature>.<field>=
    value`` one schema feature (``schema.timestamp=ts`` and ``schema.features=
    [...]`` set the schema's own fields). Examples: ``train.epochs=5``,
    ``model.bottom_units=[256,128]``, ``tasks.like.weight=0``,
    ``schema.price.transform=log1p``.
    Section overrides are validated together, so their order does not matter
    (``model.text_encoder_mode=finetune`` may come before ``model.text_encoder``);
    a later override of the same key wins.
    """
    sections: dict[str, dict[str, Any]] = {}
    for override in overrides:
        if "=" not in override:
            raise ValueError(f"Override {override!r} must look like section.key=value.")
        path, raw = override.split("=", 1)
        parts = path.strip().split(".")
        value = _parse_value(raw)
        if _takes_text(config, parts) and not isinstance(value, (str, type(None))):
            value = raw  # `--set export.export_dir=123` means the text "123".
        if parts[0] == "schema":
            config = _override_schema(config, parts, value, override)
            continue
        if parts[0] == "tasks":
            if len(parts) != 3:
                raise ValueError(f"Override {override!r}: use "
                                 "tasks.<name>.<field>=value.")
            config = _override_task(config, parts[1], parts[2], value)
            continue
        if len(parts) != 2:
            raise ValueError(f"Override {override!r}: use section.key=value.")
        sections.setdefault(parts[0], {})[parts[1]] = value
    return from_dict(sections, config) if sections else config


def _takes_text(config: Config, parts: list[str]) -> bool:
    """Whether the overridden field is a plain string (so `123` stays "123")."""
    if len(parts) == 2 and parts[0] in {f.name for f in dataclasses.fields(Config)}:
        section = getattr(config, parts[0])
        if dataclasses.is_dataclass(section):
            hint = typing.get_type_hints(type(section)).get(parts[1])
            if typing.get_origin(hint) is tuple:
                return False
            allowed = typing.get_args(hint) or (hint,)
            return str in allowed and not {int, float, bool} & set(allowed)
    return False


def _override_schema(config: Config, parts: list[str], value: Any,
                     override: str) -> Config:
    schema = config.schema.to_dict()
    if len(parts) == 2 and parts[1] in schema:
        schema[parts[1]] = value
    elif len(parts) == 3:
        names = [f["name"] for f in schema["features"]]
        if parts[1] not in names:
            raise ValueError(f"Override {override!r}: the schema has no feature "
                             f"{parts[1]!r}; features: {names}.")
        for feature in schema["features"]:
            if feature["name"] == parts[1]:
                feature[parts[2]] = value
    else:
        raise ValueError(f"Override {override!r}: use schema.<feature>.<field>=value, "
                         "schema.timestamp=<column> or schema.features=[...].")
    return dataclasses.replace(config, schema=Schema.from_dict(schema))


def _override_task(config: Config, name: str, field: str, value: Any) -> Config:
    if config.task(name) is None:
        raise ValueError(f"Unknown task {name!r} in override; tasks: "
                         f"{[t.name for t in config.tasks]}.")
    tasks = tuple(_replace_fields(t, {field: value}, f"tasks.{name}")
                  if t.name == name else t for t in config.tasks)
    return dataclasses.replace(config, tasks=tasks)


def _task_from_dict(values: dict[str, Any]) -> TaskConfig:
    allowed = {f.name for f in dataclasses.fields(TaskConfig)}
    if not isinstance(values, dict):
        raise ValueError(f"A task must be an object with keys {sorted(allowed)}. "
                         f"Received: {values!r}.")
    unknown = set(values) - allowed
    if unknown or "name" not in values or "type" not in values:
        raise ValueError(f"Bad task entry {values}: needs name and type; allowed keys "
                         f"{sorted(allowed)}.")
    return TaskConfig(**values)


def _replace_fields(obj: Any, values: dict[str, Any], section: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    hints = typing.get_type_hints(type(obj))
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"Unknown keys {sorted(unknown)} in config section "
                         f"{section!r}; allowed: {sorted(fields)}.")
    coerced = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    return dataclasses.replace(obj, **coerced)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    allowed = typing.get_args(hint) if origin is not None else (hint,)
    allowed = tuple(typing.get_origin(a) or a for a in allowed)
    if value is None and type(None) in allowed:
        return None
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    wrong_bool = isinstance(value, bool) and bool not in allowed
    if not isinstance(value, allowed) or wrong_bool:
        names = [getattr(a, "__name__", str(a)) for a in allowed]
        raise ValueError(f"{where} expects {' or '.join(names)}. Received: {value!r}.")
    return value


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # A bare string such as `mmoe` or a path.
