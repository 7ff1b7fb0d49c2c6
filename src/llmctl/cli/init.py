"""`llmctl init`: write a commented starter llmctl.yaml."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llmctl.cli.context import OutputOption, get_app


def register(app: typer.Typer) -> None:
    app.command("init", help="Write a commented starter llmctl.yaml.")(init)


def init(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Option(help="Deployment name (project.name).")] = None,
    bucket: Annotated[Optional[str], typer.Option(help="S3 bucket holding the model (model.bucket).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    output: OutputOption = None,
) -> None:
    from llmctl.actions.init import write_starter_config

    app = get_app(ctx, output)
    path = write_starter_config(app.config_file, name=name, bucket=bucket, force=force)
    app.output.result({"path": str(path)}, lambda data: app.output.print(f"wrote {data['path']}; next: `llmctl doctor`"))
