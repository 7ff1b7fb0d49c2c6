"""Documents generated from the config model: the commented starter file and the README table.

Generating both from the model keeps them true: a test fails when the README drifts.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from llmctl.config.model import LlmctlConfig


def _fields(model: type[BaseModel], instance: BaseModel, prefix: str = ""):
    """Yield (dotted path, value, description, is_section) depth-first, in declaration order."""
    for name, field in model.model_fields.items():
        value = getattr(instance, name)
        if isinstance(value, BaseModel):
            yield f"{prefix}{name}", None, field.description, True
            yield from _fields(type(value), value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value, field.description, False
            item = _list_item(field.annotation)
            if item is not None:  # a list of sections: its items' keys, as `path[].key`
                for key, sub in item.model_fields.items():
                    default = "required" if sub.is_required() else _yaml_scalar(sub.get_default(call_default_factory=True))
                    yield f"{prefix}{name}[].{key}", _Shown(default), sub.description, False


class _Shown(str):
    """A default already written for the reference (`required`, or the YAML of an item key's default)."""


def _list_item(annotation) -> type[BaseModel] | None:
    """The section class of a `list[Section]` field, else None."""
    import typing

    args = typing.get_args(annotation) if typing.get_origin(annotation) is list else ()
    return args[0] if args and isinstance(args[0], type) and issubclass(args[0], BaseModel) else None


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, _Shown):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(value)


def starter_yaml(name: str | None = None, bucket: str | None = None) -> str:
    """A commented `llmctl.yaml` listing every field at its default."""
    cfg = LlmctlConfig()
    if name:
        cfg.project.name = name
    if bucket:
        cfg.model.bucket = bucket
    lines = [
        "# llmctl configuration. Every field is shown at its default; delete what you don't change.",
        "# Precedence: command-line flags > LLMCTL_<SECTION>_<FIELD> environment > this file > defaults.",
        "# Reference: README.md#configuration-reference",
    ]
    for path, value, description, is_section in _fields(LlmctlConfig, cfg):
        depth = path.count(".")
        indent = "  " * depth
        key = path.rsplit(".", 1)[-1]
        if is_section:
            if depth == 0:
                lines.append("")
            lines.append(f"{indent}{key}:")
            continue
        if isinstance(value, _Shown):
            continue  # the starter file shows a list's default ([]), not its items' keys
        comment = f"  # {description}" if description else ""
        lines.append(f"{indent}{key}: {_yaml_scalar(value)}{comment}")
    return "\n".join(lines) + "\n"


def reference_markdown() -> str:
    """The README's configuration reference table."""
    cfg = LlmctlConfig()
    rows = ["| key | default | description |", "| --- | --- | --- |"]
    for path, value, description, is_section in _fields(LlmctlConfig, cfg):
        if is_section:
            continue
        rows.append(f"| `{path}` | `{_yaml_scalar(value)}` | {description or ''} |")
    return "\n".join(rows) + "\n"
