"""Load `llmctl.yaml`, layer `LLMCTL_*` environment and flags over it, and explain bad input.

Precedence: flags > environment > file > defaults. Environment variables are
`LLMCTL_<SECTION>_<FIELD>` (`LLMCTL_AWS_REGION`, `LLMCTL_MODEL_MAX_MODEL_LEN`), with `__` for
deeper nesting (`LLMCTL_DEPLOY_REQUESTS__CPU`); `AWS_REGION`/`AWS_PROFILE` count as environment
too, below their `LLMCTL_` twins. Lists take comma-separated values.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from llmctl.config.model import LlmctlConfig
from llmctl.errors import ConfigError

DEFAULT_CONFIG_FILE = "llmctl.yaml"
ENV_PREFIX = "LLMCTL_"
# Environment variables that are not config fields.
_ENV_NOT_FIELDS = {"LLMCTL_CONFIG", "LLMCTL_STATE_DIR", "LLMCTL_DEBUG"}


def config_path(explicit: str | Path | None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(explicit or env.get("LLMCTL_CONFIG") or DEFAULT_CONFIG_FILE)


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    require_file: bool = False,
) -> LlmctlConfig:
    """Resolve the configuration; raise ConfigError naming field, value and fix."""
    env = os.environ if env is None else env
    path = path or config_path(None, env)
    data: dict[str, Any] = read_file(path) if path.exists() else {}
    if require_file and not path.exists():
        raise ConfigError(f"{path}: no such config file", hint="run `llmctl init` to write one")
    source = str(path) if path.exists() else "defaults"
    _check_unknown_keys(data, LlmctlConfig, source)
    for layer, layer_name in ((env_layer(env), "environment"), (dict(overrides or {}), "flags")):
        _check_unknown_keys(layer, LlmctlConfig, layer_name)
        data = deep_merge(data, layer)
    try:
        return LlmctlConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain(exc, source)) from None


def read_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return data


def env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, key in (("AWS_REGION", "region"), ("AWS_PROFILE", "profile")):
        if env.get(name):
            layer.setdefault("aws", {})[key] = env[name]
    sections = set(LlmctlConfig.model_fields)
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in _ENV_NOT_FIELDS:
            continue
        section, _, rest = name[len(ENV_PREFIX):].lower().partition("_")
        if section not in sections or not rest:
            raise ConfigError(
                f"{name}: not a config variable",
                hint=f"use LLMCTL_<SECTION>_<FIELD> with a section of {', '.join(sorted(sections))}",
            )
        path = [section, *rest.split("__")]
        target = layer
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = _env_value(LlmctlConfig, path, value)
    return layer


def _env_value(model: type[BaseModel], path: list[str], value: str) -> Any:
    """Lists arrive comma-separated; everything else pydantic coerces from the string."""
    field = None
    for part in path:
        field = model.model_fields.get(part) if model else None
        annotation = getattr(field, "annotation", None)
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if field is not None and "list" in str(field.annotation):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _check_unknown_keys(data: Any, model: type[BaseModel], source: str, prefix: str = "") -> None:
    if not isinstance(data, Mapping):
        return
    for key, value in data.items():
        path = f"{prefix}{key}"
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            close = difflib.get_close_matches(str(key), list(model.model_fields), n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else f"allowed: {', '.join(model.model_fields)}"
            raise ConfigError(f"{source}: {path}: unknown key", hint=hint)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            _check_unknown_keys(value, annotation, source, f"{path}.")


def explain(exc: ValidationError, source: str) -> str:
    """One line per problem: `source: field.path: value: what is allowed`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" {value!r}:"
        lines.append(f"{source}: {loc}:{shown} {msg}")
    return "\n".join(lines)
