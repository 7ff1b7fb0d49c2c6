"""The per-invocation application object carried in `ctx.obj` (hatch's `Application`).

It is the composition root: config, names, state and clients are resolved here, lazily (so
`--help` and commands that need none of them stay fast), and every action object a command
runs is built here from them. It makes no cloud calls itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from llmctl.ui import Output


class OutputFormat(str, Enum):
    """`--output`: a choice, so the framework validates it (once, for the global and per-command option)."""

    text = "text"
    json = "json"


OutputOption = Annotated[
    Optional[OutputFormat],
    typer.Option("--output", "-o", help="Output format (default: the global --output).", show_default=False),
]


@dataclass
class App:
    output: Output
    config_arg: Path | None = None  # --config, if given
    overrides: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)  # dotted config path -> the flag that set it

    def override(self, dotted: str, value: Any, flag: str) -> None:
        """A command's own flag that sets a config value (`deploy --image`): validated with the rest,
        and named as the source of any problem with it. Call before the config is first read."""
        *sections, key = dotted.split(".")
        target = self.overrides
        for section in sections:
            target = target.setdefault(section, {})
        target[key] = value
        self.flags[dotted] = flag

    @cached_property
    def config_file(self) -> Path:
        """--config, else LLMCTL_CONFIG, else ./llmctl.yaml (resolved on first use: `--help` needs none)."""
        from llmctl.config.loader import config_path

        return config_path(self.config_arg)

    @cached_property
    def config(self):
        from llmctl.config import load_config
        from llmctl.config.loader import config_origin

        return load_config(self.config_file, overrides=self.overrides, flags=self.flags,
                           origin=config_origin(self.config_arg))

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

    def pricing_client(self):
        return self.aws.price_list_client()

    # --- the actions commands run ----------------------------------------------------------------
    def build_manager(self):
        from llmctl.actions.build import BuildManager

        return BuildManager(self.aws, self.names, self.config, self.state, self.output,
                            config_dir=self.config_file.resolve().parent)

    def local_builder(self):
        """`build --local`: the build manager's inputs and recording, the user's own image engine."""
        from llmctl.actions.build_local import LocalBuilder

        return LocalBuilder(self.build_manager())

    def cluster_manager(self):
        from llmctl.actions.cluster import ClusterManager

        return ClusterManager(self.config, self.names, self.aws, self.output, workdir=self.state.root)

    def inventory(self, *, model_bucket: str | None = None, kubernetes: bool = True):
        """Discovery of what this deployment owns; through the cluster's kube context when `kubernetes`."""
        from llmctl.actions.inventory import Discovery

        names = self.names

        def kube_factory():
            from llmctl.eksctl import kubeconfig_context

            return self.kube(context=kubeconfig_context(names.cluster, names.region))

        return Discovery(names=names, aws=self.aws, kube_factory=kube_factory if kubernetes else None,
                         model_bucket=model_bucket, config_model_bucket=self.config.model.bucket)

    def teardown(self, *, model_bucket: str | None = None):
        from llmctl.actions.teardown import Teardown

        return Teardown(inventory=self.inventory(model_bucket=model_bucket), log=self.output.log_line,
                        output=self.output)


def get_app(ctx: typer.Context, output: OutputFormat | None = None) -> App:
    """The App of this run; a command-level `--output` overrides the global one."""
    app: App = ctx.find_root().obj
    if output is not None:
        app.output.json = output is OutputFormat.json
    return app
