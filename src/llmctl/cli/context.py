"""The per-invocation application object carried in `ctx.obj` (hatch's `Application`).

It is the composition root: config, names, state and clients are resolved here, lazily (so
`--help` and commands that need none of them stay fast), and every action object a command
runs is built here from them. It makes no cloud calls itself.
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

    def pricing_client(self):
        return self.aws.price_list_client()

    # --- the actions commands run ----------------------------------------------------------------
    def build_manager(self):
        from llmctl.actions.build import BuildManager

        return BuildManager(self.aws, self.names, self.config, self.state, self.output,
                            config_dir=self.config_file.resolve().parent)

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


def get_app(ctx: typer.Context, output: str | None = None) -> App:
    """The App of this run; a command-level `--output json` switches it to JSON."""
    app: App = ctx.find_root().obj
    if output is not None:
        if output not in ("text", "json"):
            raise typer.BadParameter(f"{output!r} is not one of 'text', 'json'", param_hint="--output")
        app.output.json = output == "json"
    return app
