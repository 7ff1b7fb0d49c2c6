"""`llmctl monitoring up|down|render` and `llmctl dashboard`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from llmctl.cli.context import App, OutputOption, get_app

monitoring_app = typer.Typer(help="Prometheus, Alertmanager and Grafana for the endpoint.", no_args_is_help=True)


class Mode(str, Enum):
    auto = "auto"
    operator = "operator"
    self_contained = "self-contained"


class RenderMode(str, Enum):
    operator = "operator"
    self_contained = "self-contained"


ModeOption = Annotated[Mode, typer.Option("--mode", help="auto: operator when its CRDs exist, else self-contained.")]
KubeconfigOption = Annotated[str | None, typer.Option("--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")]
ContextOption = Annotated[str | None, typer.Option("--context", help="Kubeconfig context.")]
DryRunOption = Annotated[bool, typer.Option(
    "--dry-run", help="Server-side dry run: the cluster validates every object and reports what would change; "
                      "nothing is written or deleted.")]


def register(app: typer.Typer) -> None:
    app.add_typer(monitoring_app, name="monitoring")
    app.command("dashboard", help="Port-forward Grafana (or Prometheus) and print or open its URL.")(dashboard)


def _manager(app: App, kubeconfig: str | None, context: str | None):
    from llmctl.actions.monitoring import MonitoringManager

    return MonitoringManager(app.kube(kubeconfig, context), app.config, app.names)


@monitoring_app.command("up")
def up(
    ctx: typer.Context,
    mode: ModeOption = Mode.auto,
    dry_run: DryRunOption = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: OutputOption = None,
) -> None:
    """Deploy the monitoring stack (or, with the Prometheus Operator, a ServiceMonitor, rules and dashboards)."""
    app = get_app(ctx, output)
    manager = _manager(app, kubeconfig, context)
    used, results = manager.up(None if mode is Mode.auto else mode.value, dry_run=dry_run,
                               report=lambda r: app.output.report(r, dry_run=dry_run))

    def render(data: dict) -> None:
        app.output.print(f"monitoring ({data['mode']}) {'planned' if dry_run else 'up'} in namespace "
                         f"{app.config.monitoring.namespace}; open it with `llmctl dashboard`")

    app.output.result({"mode": used, "dry_run": dry_run, "objects": [r.to_dict() for r in results]}, render)


@monitoring_app.command("down")
def down(
    ctx: typer.Context,
    dry_run: DryRunOption = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: OutputOption = None,
) -> None:
    """Delete every monitoring object `up` created for this deployment (found by label)."""
    app = get_app(ctx, output)
    results = _manager(app, kubeconfig, context).down(dry_run=dry_run,
                                                      report=lambda r: app.output.report(r, dry_run=dry_run))

    def render(data: dict) -> None:
        app.output.print(f"{len(data['objects'])} monitoring objects {'would be deleted' if dry_run else 'deleted'}")

    app.output.result({"dry_run": dry_run, "objects": [r.to_dict() for r in results]}, render)


@monitoring_app.command("render")
def render_cmd(
    ctx: typer.Context,
    mode: Annotated[RenderMode, typer.Option("--mode", help="Which mode's objects.")] = RenderMode.self_contained,
    directory: Annotated[Path | None, typer.Option("--dir", help="Write one file per object here instead of stdout.")] = None,
    output: OutputOption = None,
) -> None:
    """Print the monitoring manifests (no cluster needed; the Grafana password Secret is left out)."""
    from llmctl.actions.deploy import write_documents
    from llmctl.actions.monitoring import render
    from llmctl.monitoring.target import Scope
    from llmctl.render import dump_documents

    app = get_app(ctx, output)
    docs = render(Scope.of(app.config, app.names), mode.value)
    if directory is not None:
        files = write_documents(docs, directory)
        for path in files:
            app.output.step("created", path)
        app.output.result({"mode": mode.value, "files": files}, lambda d: None)
        return
    app.output.result({"mode": mode.value, "documents": docs}, lambda d: app.output.document(dump_documents(docs)))


def dashboard(
    ctx: typer.Context,
    prometheus: Annotated[bool, typer.Option("--prometheus", help="Prometheus instead of Grafana.")] = False,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Local port (0: any free one).")] = 0,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Print the URL only.")] = False,
    show_password: Annotated[bool, typer.Option("--show-password", help="Print Grafana's admin password.")] = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: OutputOption = None,
) -> None:
    """Port-forward Grafana (or Prometheus) to 127.0.0.1 until Ctrl-C; nothing is exposed publicly."""
    import webbrowser

    app = get_app(ctx, output)
    manager = _manager(app, kubeconfig, context)

    def warn(err) -> None:  # a connection that failed; the forward goes on
        app.output.warn(err.message + (f"; fix: {err.hint}" if err.hint else ""))

    service, forward = manager.ui_forward(prometheus, port, on_error=warn)
    with forward:
        url = forward.url
        app.output.result({"url": url, "service": service, "pod": forward.pod}, lambda d: app.output.print(d["url"]),
                          stream=True)  # printed now: the forward runs until Ctrl-C
        if not prometheus:
            password = manager.grafana_password()
            if password and show_password:
                app.output.info(f"login: admin / {password}")
            elif password:
                app.output.info(f"login: admin; password: `llmctl dashboard --show-password` or "
                                f"kubectl -n {manager.stack.namespace} get secret {manager.stack.grafana_secret} "
                                "-o jsonpath='{.data.admin-password}' | base64 -d")
        if not no_browser and app.output.interactive:
            webbrowser.open(url)
        try:  # Ctrl-C from the moment the user is told to press it ends the session cleanly
            app.output.info("forwarding; Ctrl-C to stop")
            forward.wait()  # raises when the pod goes away
        except KeyboardInterrupt:  # Ctrl-C is how a dashboard session ends, not an interruption
            app.output.info("stopped")
