"""The per-invocation application object carried in `ctx.obj` (hatch's `Application`).

It resolves config, names, state and clients lazily, so `--help` and commands that need none
of them stay fast; it makes no cloud calls itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import typer

from llmctl.ui import Output

OutputOption = Annotated[
    str,
    typer.Option("--output", "-o", help="Output format: text or json.", show_default=False),
]


@dataclass
class App:
    config_file: Path
    output: Output
    overrides: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def config(self):
        from llmctl.config import load_config

        return load_config(self.config_file, overrides=self.overrides)

    @cached_property
    def names(self):
        from llmctl.config import Names

        return Names.from_config(self.config)

    @cached_property
    def state(self):
        from llmctl.state import StateStore, state_dir

        return StateStore(state_dir(self.config_file), self.config.project.name)

    @cached_property
    def aws(self):
        from llmctl.aws.session import AwsClients

        return AwsClients.from_config(self.config)

    def kube(self, kubeconfig: str | None = None, context: str | None = None):
        from llmctl.k8s.client import Kube

        return Kube.from_kubeconfig(kubeconfig, context)


def get_app(ctx: typer.Context, output: str | None = None) -> App:
    """The App of this run; a command-level `--output json` switches it to JSON."""
    app: App = ctx.find_root().obj
    if output is not None:
        if output not in ("text", "json"):
            raise typer.BadParameter(f"{output!r} is not one of 'text', 'json'", param_hint="--output")
        app.output.json = output == "json"
    return app
