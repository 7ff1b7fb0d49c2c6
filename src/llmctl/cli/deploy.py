"""`llmctl deploy [--dry-run] [--output-dir DIR] [--image IMAGE] [--timeout S] [--show-api-key]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmctl.cli.context import OutputOption, get_app


def register(app: typer.Typer) -> None:
    app.command("deploy", help="Apply the endpoint to the cluster and follow it to Ready.")(deploy)


def deploy(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Render only: print (or write) the manifests; no cluster is contacted.")] = False,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="With --dry-run: write one YAML file per object here.")
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="Image to run (default: the digest of the last `llmctl build`).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1.0, help="Seconds to wait for Ready (default: deploy.startup_timeout_s).")
    ] = None,
    show_api_key: Annotated[bool, typer.Option("--show-api-key", help="Print the endpoint's API key.")] = False,
    output: OutputOption = None,
) -> None:
    """Render, server-side apply, prune, then show the rollout, the timeline, the endpoint and a test request."""
    from llmctl.actions import deploy as actions
    from llmctl.errors import ConfigError, LlmctlError

    app = get_app(ctx, output)
    if image is not None:
        app.override("deploy.image", image, "--image")  # checked as deploy.image is, and blamed on the flag
    cfg, names, out = app.config, app.names, app.output
    if output_dir is not None and not dry_run:
        raise ConfigError("--output-dir works only with --dry-run (a real deploy applies to the cluster)",
                          hint="add --dry-run, or drop --output-dir")
    resolved = actions.resolve_image(image, cfg, app.state.get("image"))
    exposed = actions.exposures.exposure(cfg)
    out.info(f"exposure {exposed.kind}: reachable from {exposed.reachable_from}")

    if dry_run:
        try:
            arn = actions.role_arn(app.aws, names)
        except LlmctlError as exc:
            arn = actions.role_arn(None, names)
            out.warn(f"no AWS account ({exc.message}): the ServiceAccount's role ARN uses the placeholder ACCOUNT_ID")
        # the key lives only in the cluster (generated once, kept): a dry run never invents one
        documents = actions.render(cfg, names, image=resolved, role_arn=arn, api_key=actions.REDACTED_API_KEY)
        out.info("the Secret's API key is redacted (a real deploy generates it once and keeps it)")
        files = actions.write_documents(documents, output_dir) if output_dir else []
        data = {"dry_run": True, "image": resolved, "role_arn": arn, "files": files, "exposure": exposed.to_dict(),
                "documents": documents}

        def render_dry(data: dict) -> None:
            if files:
                for path in files:
                    out.print(path)
            else:
                from llmctl.render import dump_documents

                out.document(dump_documents(data["documents"]))

        out.result(data, render_dry)
        return

    from llmctl.ui.rollout import RolloutDisplay, render_timeline

    arn = actions.role_arn(app.aws, names)
    kube = app.kube()
    out.info(f"deploying {resolved} to {names.namespace}/{names.app}")
    display = RolloutDisplay(out)

    def on_applied() -> None:
        if cfg.deploy.replicas:
            out.info("rollout:")
            display.start()

    try:
        outcome = actions.deploy(cfg, names, kube, image=resolved, role_arn=arn,
                                 timeout_s=timeout or cfg.deploy.startup_timeout_s,
                                 report=out.report, emit=display, on_applied=on_applied)
    finally:
        display.stop()
    data = outcome.to_dict(show_api_key=show_api_key)
    data["secret"] = f"{names.namespace}/{names.api_key_secret}"

    def render(data: dict) -> None:
        if outcome.timeline is not None:
            render_timeline(out, outcome.timeline)
        elif data["ready_replicas"]:
            out.print(f"{data['ready_replicas']} pod(s) already ready: nothing to roll out")
        if not data["changed"]:
            out.print("no changes: every object is up to date")
        if data["endpoint"] and exposed.load_balancer:
            out.print(f"endpoint: {data['endpoint']}")
        elif data["endpoint"]:
            out.print(f"endpoint: {data['endpoint']} (in the cluster; `llmctl endpoint` forwards it to 127.0.0.1)")
        if data["smoke"]:
            smoke = data["smoke"]
            out.print(f"smoke request: HTTP {smoke['status']} in {smoke['latency_s']:.2f}s: {smoke['text']!r}",
                      markup=False)
        if show_api_key:
            out.print(f"api key: {data['api_key']}", markup=False)
        else:
            out.print(f"api key: in Secret {data['secret']} (`llmctl deploy --show-api-key` prints it)")

    out.result(data, render)
