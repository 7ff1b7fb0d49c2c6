"""Pure Jinja rendering: config in, text or parsed documents out. No I/O beyond reading templates.

StrictUndefined makes a missing variable an error instead of an empty string; `tojson` and
`yaml` filters quote values so a config string can never break the YAML structure.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from llmctl.resources import templates_dir


def _to_yaml(value: Any, indent: int = 0) -> str:
    """Block YAML for a nested value, indented to sit under a key at column `indent`."""
    import yaml

    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False).rstrip("\n")
    pad = " " * indent
    return "\n".join(pad + line if line else line for line in text.splitlines())


@cache
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["to_yaml"] = _to_yaml
    return env


def render_text(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def render_documents(template: str, **context: Any) -> list[dict]:
    """Render a (multi-document) YAML template and parse it; empty documents are dropped."""
    import yaml

    return [doc for doc in yaml.safe_load_all(render_text(template, **context)) if doc]


def dump_documents(documents: list[dict]) -> str:
    import yaml

    return "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in documents)
