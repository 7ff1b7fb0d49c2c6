"""`llmctl rollback [--to N] [--skip-gate] [--timeout S] [--allow-downtime]`: serve a recorded revision again."""

from __future__ import annotations

from typing import Annotated

import typer

from llmctl.cli.context import OutputOption, get_app


def register(app: typer.Typer) -> None:
    app.command("rollback", help="Serve an earlier revision again (default: the one before the serving one).")(rollback)


def rollback(
    ctx: typer.Context,
    to: Annotated[int | None, typer.Option("--to", min=1, help="The revision to serve (`llmctl history` lists them).")] = None,
    skip_gate: Annotated[bool, typer.Option("--skip-gate", help="Serve it without the promotion gate.")] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1.0, help="Seconds to wait for Ready (default: deploy.startup_timeout_s).")
    ] = None,
    allow_downtime: Annotated[bool, typer.Option(
        "--allow-downtime", help="Accept a recreate (no GPU for a second pod) without asking.")] = False,
    output: OutputOption = None,
) -> None:
    """Through the same planner, rollout watcher (and gate) as `deploy`, with the revision's recorded
    Deployment and environment; the result is a new revision that names the one it went back to."""
    from llmctl.actions import revisions
    from llmctl.cli.deploy import follow_rollout, model_digest

    app = get_app(ctx, output)
    if allow_downtime:
        app.override("deploy.allow_downtime", True, "--allow-downtime")
    target = revisions.rollback_target(revisions.history(app.kube(), app.names), to)
    if target.manifest_digest:  # the pods load what S3 holds now: it must be what the revision loaded
        bucket, _, prefix = target.model.removeprefix("s3://").partition("/")
        revisions.check_weights(target, model_digest(app, bucket, prefix))
    app.output.info(f"rolling back to revision {target.number} ({target.image}, {target.model})"
                    + (" without the gate" if skip_gate else ""))
    follow_rollout(app, target.image, timeout, documents=target.documents, rollback_of=target.number,
                   skip_gate=skip_gate)
