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
from llmctl.config.problems import Problem, Sources, explain, yaml_lines
from llmctl.errors import ConfigError

DEFAULT_CONFIG_FILE = "llmctl.yaml"
ENV_PREFIX = "LLMCTL_"
# Environment variables that are not config fields.
_ENV_NOT_FIELDS = {"LLMCTL_CONFIG", "LLMCTL_STATE_DIR", "LLMCTL_DEBUG", "LLMCTL_API_KEY"}
_AWS_ENV = (("AWS_REGION", "region"), ("AWS_PROFILE", "profile"))


def config_path(explicit: str | Path | None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(explicit or env.get("LLMCTL_CONFIG") or DEFAULT_CONFIG_FILE)


def config_origin(explicit: str | Path | None, env: Mapping[str, str] | None = None) -> str | None:
    """Who named the config file: `-c`, `LLMCTL_CONFIG`, or None for the implicit ./llmctl.yaml."""
    env = os.environ if env is None else env
    if explicit:
        return "-c/--config"
    return "LLMCTL_CONFIG" if env.get("LLMCTL_CONFIG") else None


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
    origin: str | None = None,
    require_file: bool = False,
) -> LlmctlConfig:
    """Resolve the configuration; raise one ConfigError listing every problem, each with its source and fix.

    `overrides`: values from flags (nested like the file), `flags`: the flag that set each dotted
    path ("aws.region" -> "--region"). `origin`: who named `path` (`config_origin`); a file named
    explicitly must exist, only the implicit ./llmctl.yaml may be absent."""
    env = os.environ if env is None else env
    if path is None:
        path, origin = config_path(None, env), origin or config_origin(None, env)
    if not path.exists() and (origin or require_file):
        named = f"{origin} {path}" if origin == "-c/--config" else f"{origin}={path}" if origin else str(path)
        hint = (f"check the path, or write it with `llmctl -c {path} init`" if origin == "-c/--config" else
                f"fix or unset LLMCTL_CONFIG, or write it with `llmctl -c {path} init`" if origin else
                "run `llmctl init` to write one")
        raise ConfigError(f"{named}: no such config file", hint=hint)
    sources = Sources()
    data: dict[str, Any] = {}
    problems: list[Problem] = []
    if path.exists():
        data, lines = read_file(path)
        sources.add_file(str(path), data, lines)
        problems += unknown_keys(data, LlmctlConfig, sources)
    environment, env_names, env_problems = env_layer(env)
    sources.add(environment, lambda p: env_names[p])
    flag_names = dict(flags or {})
    sources.add(dict(overrides or {}), lambda p: flag_names.get(".".join(p), "flags"))
    problems += env_problems
    for layer in (environment, dict(overrides or {})):
        problems += unknown_keys(layer, LlmctlConfig, sources)
        data = deep_merge(data, layer)
    try:
        cfg = LlmctlConfig.model_validate(data, context={"config_dir": path.parent})  # deploy.gate.prompts is relative to it
    except ValidationError as exc:
        reported = {tuple(p.field.split(".")) for p in problems}
        problems += explain(exc, sources, skip=reported)
    if problems:
        raise ConfigError.of(problems)
    return cfg


def read_file(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """The file's mapping and the line of each key in it."""
    import yaml

    try:
        text = path.read_text()
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})",
                          hint="correct the YAML syntax at that line (indentation, a missing ':' or bracket)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})", hint="check the path and its permissions") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}",
                          hint=f"start with sections such as `project:` and `aws:` ({', '.join(LlmctlConfig.model_fields)})")
    return data, yaml_lines(node)


def env_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str], list[Problem]]:
    """The environment's values, the variable that set each path, and the variables that are no field."""
    layer: dict[str, Any] = {}
    names: dict[tuple[str, ...], str] = {}
    problems: list[Problem] = []
    for name, key in _AWS_ENV:
        if env.get(name):
            layer.setdefault("aws", {})[key] = env[name]
            names[("aws", key)] = name
    sections = set(LlmctlConfig.model_fields)
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in _ENV_NOT_FIELDS:
            continue
        section, _, rest = name[len(ENV_PREFIX):].lower().partition("_")
        if section not in sections or not rest:
            problems.append(Problem(name, "", "not a config variable", f"use LLMCTL_<SECTION>_<FIELD> with a section of "
                                    f"{', '.join(sorted(sections))}{_did_you_mean(section, sections, ENV_PREFIX)}"))
            continue
        path = [section, *rest.split("__")]
        target = layer
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = _env_value(LlmctlConfig, path, value)
        names[tuple(path)] = name
    return layer, names, problems


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


def unknown_keys(data: Any, model: type[BaseModel], sources: Sources, prefix: tuple[str, ...] = ()) -> list[Problem]:
    """Every key no model field has, with the closest allowed name."""
    if not isinstance(data, Mapping):
        return []
    problems = []
    for key, value in data.items():
        path = (*prefix, str(key))
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            dotted_prefix = ".".join(prefix) + "." if prefix else ""
            close = difflib.get_close_matches(str(key), list(model.model_fields), n=1)
            fix = f"did you mean '{dotted_prefix}{close[0]}'?" if close else f"allowed: {', '.join(model.model_fields)}"
            problems.append(Problem(sources.of(path), ".".join(path), "unknown key", fix))
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            problems += unknown_keys(value, annotation, sources, path)
    return problems


def _did_you_mean(word: str, choices, prefix: str = "") -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {prefix}{close[0].upper()}_...?)" if close else ""
