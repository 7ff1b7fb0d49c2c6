"""`llmctl config show | validate | schema`."""

from __future__ import annotations

import typer

from llmctl.cli.context import OutputOption, get_app

config_app = typer.Typer(help="Show and check the resolved configuration.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command("show", help="Print the resolved config (flags > env > file > defaults).")
def show(ctx: typer.Context, output: OutputOption = None) -> None:
    app = get_app(ctx, output)
    data = app.config.model_dump(mode="json")

    def render(data: dict) -> None:
        import yaml

        app.output.print(yaml.safe_dump(data, sort_keys=False).rstrip(), markup=False)

    app.output.result(data, render)


@config_app.command("validate", help="Check the config file; exit 2 naming each bad field.")
def validate(ctx: typer.Context, output: OutputOption = None) -> None:
    app = get_app(ctx, output)
    cfg = app.config
    source = str(app.config_file) if app.config_file.exists() else "defaults (no config file)"
    app.output.result(
        {"valid": True, "source": source, "deployment": cfg.project.name},
        lambda d: app.output.print(f"[green]ok[/]: {d['source']} is valid (deployment {d['deployment']!r})"),
    )


@config_app.command("schema", help="Print the config's JSON schema (for editors and CI).")
def schema(ctx: typer.Context, output: OutputOption = None) -> None:
    import json

    from llmctl.config import LlmctlConfig

    app = get_app(ctx, output)
    data = LlmctlConfig.model_json_schema()
    app.output.result(data, lambda d: app.output.document(json.dumps(d, indent=2)))  # JSON in both modes
