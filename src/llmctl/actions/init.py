"""Write the starter config, validating it before it lands on disk."""

from __future__ import annotations

from pathlib import Path

from llmctl.errors import ConfigError


def write_starter_config(path: Path, *, name: str | None, bucket: str | None, force: bool) -> Path:
    from pydantic import ValidationError

    from llmctl.config.loader import explain
    from llmctl.config.reference import starter_yaml

    if path.exists() and not force:
        raise ConfigError(f"{path} already exists", hint="use --force to overwrite it")
    try:
        text = starter_yaml(name=name, bucket=bucket)
    except ValidationError as exc:
        raise ConfigError(explain(exc, "flags")) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
