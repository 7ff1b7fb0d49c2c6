"""`llmctl local up | status | down`: the whole lifecycle on this machine, no AWS account."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llmctl.cli.context import OutputOption, get_app

local_app = typer.Typer(help="Run the endpoint on this machine: embedded S3 + the vLLM CPU engine.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(local_app, name="local")


def _stack(app):
    from llmctl.actions.local import LocalStack

    return LocalStack(app.config, app.names, app.state, app.state.root / "local")


@local_app.command("up", help="Start embedded S3, upload + download the model, serve it on the CPU.")
def up(
    ctx: typer.Context,
    model: Annotated[Optional[Path], typer.Option("--model", help="A local Hugging Face model folder (default: a tiny random model).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Port for the endpoint (default: server.port, or a free one).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the engine.")] = 600,
    adapter: Annotated[Optional[list[str]], typer.Option("--adapter", metavar="DIR[:NAME]",
                       help="A PEFT LoRA adapter to serve (repeatable; NAME defaults to the folder's name).")] = None,
    show_api_key: Annotated[bool, typer.Option("--show-api-key/--hide-api-key", help="Print the endpoint's API key.")] = True,
    output: OutputOption = None,
) -> None:
    from llmctl.ui.rollout import RolloutDisplay, render_timeline

    from llmctl.actions.local import LOCAL_PHASES

    from llmctl.actions.local_adapters import parse

    app = get_app(ctx, output)
    stack = _stack(app)
    adapters = parse(adapter or [])
    with RolloutDisplay(app.output, title="local up", phases=LOCAL_PHASES) as display:
        endpoint = stack.up(model_dir=model, port=port, emit=display, timeout_s=timeout, adapters=adapters)

    def render(data: dict) -> None:
        if data["already_running"]:
            app.output.print(f"already running at {data['url']} (pid {data['server_pid']}); `llmctl local down` stops it")
        else:
            render_timeline(app.output, display.timeline)
        app.output.print(f"endpoint: {data['url']}")
        app.output.print(f"api key:  {data['api_key']}")
        if data["adapters"]:
            app.output.print(f"adapters: {', '.join(data['adapters'])} (send one as the request's model)")
        app.output.print("try:      llmctl bench --num-prompts 20")

    app.output.result(endpoint.to_dict(show_key=show_api_key), render)


@local_app.command("status", help="Show the local endpoint and its processes.")
def status(
    ctx: typer.Context,
    show_api_key: Annotated[bool, typer.Option("--show-api-key", help="Print the endpoint's API key.")] = False,
    output: OutputOption = None,
) -> None:
    app = get_app(ctx, output)
    data = _stack(app).status(show_key=show_api_key)

    def render(data: dict) -> None:
        state = "ready" if data["ready"] else ("starting" if data["running"] else "stopped")
        rows = [("state", state), ("endpoint", data["url"] or "-"), ("api key", data["api_key"] or "-"),
                ("model", data["model"] or "-"), ("model source", data["model_source"] or "-"),
                ("server pid", data["server_pid"] or "-"), ("s3 pid", data["s3_pid"] or "-"), ("log", data["server_log"])]
        app.output.table("llmctl local", ["", ""], rows)

    app.output.result(data, render)


@local_app.command("down", help="Stop the server (drain first) and the embedded S3.")
def down(ctx: typer.Context, output: OutputOption = None) -> None:
    app = get_app(ctx, output)
    stopped = _stack(app).down()
    app.output.result(
        {"stopped": stopped},
        lambda d: app.output.print("stopped" if any(d["stopped"].values()) else "nothing was running"),
    )
