"""`llmctl build`, `llmctl build status [ID]`, `llmctl build logs [ID] [--follow]`."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import typer

from llmctl.cli.context import OutputOption, get_app

build_app = typer.Typer(
    help="Build the server image in AWS CodeBuild (or locally with --local) and push it to ECR.",
    invoke_without_command=True,
    no_args_is_help=False,
)

PollOption = Annotated[float, typer.Option("--poll-interval", min=0.0, help="Seconds between status polls.")]


def register(app: typer.Typer) -> None:
    app.add_typer(build_app, name="build")


@build_app.callback()
def build(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if ECR has an image for this context.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Print the build id and return.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Observe: check the inputs, read what exists and print what would be created or updated; upload and start nothing.")] = False,
    wait_timeout: Annotated[
        Optional[float], typer.Option("--wait-timeout", min=1.0, help="Stop waiting after this many seconds (the build keeps running).")
    ] = None,
    poll_interval: Annotated[Optional[float], typer.Option("--poll-interval", min=0.0, help="Seconds between status polls (default 5).")] = None,
    local: Annotated[bool, typer.Option("--local", help="Build with your own docker, podman or buildah and push to ECR (no CodeBuild).")] = False,
    engine: Annotated[
        Optional[Literal["docker", "podman", "buildah"]],
        typer.Option("--engine", help="With --local: the engine (default: the first of docker, podman, buildah that works)."),
    ] = None,
    output: OutputOption = None,
) -> None:
    """Ensure the build bucket, ECR repository, role and project; build; record the image digest.

    With --local: only the ECR repository; the image is built on this machine and pushed."""
    if ctx.invoked_subcommand is not None:
        return
    from llmctl.errors import ConfigError

    app = get_app(ctx, output)
    if local:
        for given, flag in ((no_wait, "--no-wait"), (wait_timeout is not None, "--wait-timeout"), (poll_interval is not None, "--poll-interval")):
            if given:
                raise ConfigError(f"{flag} watches a CodeBuild build; --local builds in the foreground", hint=f"drop {flag} or --local")
        from llmctl.actions.build_local import LocalBuildOptions

        result = app.local_builder().run(LocalBuildOptions(engine=engine, force=force, dry_run=dry_run))
    else:
        if engine is not None:
            raise ConfigError("--engine picks the engine of a local build", hint="add --local, or drop --engine")
        from llmctl.actions.build import BuildOptions

        options = BuildOptions(force=force, wait=not no_wait, dry_run=dry_run, poll_s=5.0 if poll_interval is None else poll_interval, wait_timeout_s=wait_timeout)
        result = app.build_manager().run(options)

    def render(data: dict) -> None:
        if data["status"] == "PLANNED":
            app.output.print("dry run: nothing changed")
        elif data["status"] == "IN_PROGRESS":
            app.output.print(data["build_id"])
        else:
            app.output.print(data["image"])

    app.output.result(result.to_dict(), render)


@build_app.command("status")
def status(
    ctx: typer.Context,
    build_id: Annotated[Optional[str], typer.Argument(metavar="[ID]", help="Build id (default: the latest build).")] = None,
    output: OutputOption = None,
) -> None:
    """Show a build's status and phases."""
    app = get_app(ctx, output)
    data = app.build_manager().status(build_id)

    def render(data: dict) -> None:
        app.output.print(f"{data['build_id']}: {data['status']} (phase {data['phase']})")
        app.output.table(None, ["phase", "status", "seconds"], [(p["phase"], p["status"], p["seconds"]) for p in data["phases"]], status_column="status")
        if data["image"]:
            app.output.print(f"image: {data['image']}")

    app.output.result(data, render)
    if data["status"] not in ("SUCCEEDED", "IN_PROGRESS"):
        raise typer.Exit(1)


@build_app.command("logs")
def logs(
    ctx: typer.Context,
    build_id: Annotated[Optional[str], typer.Argument(metavar="[ID]", help="Build id (default: the latest build).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming until the build ends.")] = False,
    poll_interval: PollOption = 5.0,
    output: OutputOption = None,
) -> None:
    """Print a build's CloudWatch log (stderr); with --follow, until the build ends. The result is the build's status."""
    app = get_app(ctx, output)
    status = app.build_manager().logs(build_id, follow, poll_interval)
    app.output.result({"status": status}, lambda d: None)
    if status not in ("SUCCEEDED", "IN_PROGRESS"):
        raise typer.Exit(1)
