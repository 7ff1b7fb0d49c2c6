"""`llmctl model upload DIR`: put a Hugging Face model folder in S3 with its manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llmctl.cli.context import OutputOption, get_app

model_app = typer.Typer(help="Manage the model in S3.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")


@model_app.command("upload", help="Upload a Hugging Face model folder (manifest, multipart, unchanged files skipped).")
def upload(
    ctx: typer.Context,
    model_dir: Annotated[Path, typer.Argument(metavar="DIR", help="Folder with config.json, weights and tokenizer.")],
    bucket: Annotated[Optional[str], typer.Option(help="Bucket (default: model.bucket).")] = None,
    prefix: Annotated[Optional[str], typer.Option(help="Key prefix (default: model.prefix).")] = None,
    output: OutputOption = None,
) -> None:
    from llmctl.actions.model import upload_model_from_config

    app = get_app(ctx, output)
    with app.output.progress(f"uploading {model_dir.name}", total=None) as advance:
        result = upload_model_from_config(app.config, app.names, app.aws, model_dir, bucket=bucket, prefix=prefix, progress=advance)

    def render(data: dict) -> None:
        app.output.print(
            f"{len(data['uploaded'])} uploaded, {len(data['skipped'])} unchanged "
            f"({data['bytes_uploaded'] / 1e6:.1f} MB sent) -> {data['manifest_uri']}"
        )

    app.output.result(
        {
            "bucket": result.bucket,
            "prefix": result.prefix,
            "uploaded": result.uploaded,
            "skipped": result.skipped,
            "bytes_uploaded": result.bytes_uploaded,
            "manifest_uri": result.manifest_uri,
        },
        render,
    )
