"""The `llmctl` entry point: global options, command registration, errors to exit codes."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from llmctl import __version__
from llmctl.cli.context import App
from llmctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, LlmctlError
from llmctl.ui import Output

app = typer.Typer(
    name="llmctl",
    help="Take a fine-tuned LLM from S3 to a vLLM endpoint on EKS GPU nodes, and back down.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Command modules, in the order `--help` lists them. Each defines `register(app)`.
COMMAND_MODULES = (
    "init",
    "config_cmd",
    "doctor",
    "cost",
    "model",
    "build",
    "cluster",
    "deploy",
    "status",
    "bench",
    "monitoring",
    "teardown",
    "local",
)


def _version(value: bool) -> None:
    if value:
        print(f"llmctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Config file (default: ./llmctl.yaml or LLMCTL_CONFIG).", show_default=False)] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Output format: text or json.")] = "text",
    region: Annotated[Optional[str], typer.Option("--region", help="AWS region (overrides aws.region).")] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", help="AWS profile (overrides aws.profile).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="Plain output (also NO_COLOR=1).")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    from llmctl.config import config_path

    if output not in ("text", "json"):
        raise typer.BadParameter(f"{output!r} is not one of 'text', 'json'", param_hint="--output")
    overrides: dict = {}
    if region:
        overrides.setdefault("aws", {})["region"] = region
    if profile:
        overrides.setdefault("aws", {})["profile"] = profile
    ctx.obj = App(
        config_file=config_path(config),
        output=Output(json_output=output == "json", quiet=quiet, color=False if no_color else None, debug=debug),
        overrides=overrides,
    )


for _name in COMMAND_MODULES:
    if importlib.util.find_spec(f"llmctl.cli.{_name}") is not None:
        importlib.import_module(f"llmctl.cli.{_name}").register(app)


def run(argv: list[str] | None = None) -> None:
    """Console-script entry: map every outcome to an exit code (0, 1, 2, 130)."""
    from typer._click import exceptions as click_errors

    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv or bool(os.environ.get("LLMCTL_DEBUG"))
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="llmctl", standalone_mode=False)
        code = code if isinstance(code, int) else 0
    except (KeyboardInterrupt, typer.Abort):
        Output().error("interrupted; re-run the same command to continue where it stopped")
        code = EXIT_INTERRUPTED
    except typer.Exit as exc:
        code = exc.exit_code
    except click_errors.ClickException as exc:
        exc.show()
        code = EXIT_USAGE if isinstance(exc, click_errors.UsageError) else exc.exit_code
    except LlmctlError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        Output().error(exc.message, exc.hint)
        code = exc.exit_code
    except Exception as exc:  # an llmctl bug: say so plainly, traceback only on request
        if debug:
            raise
        Output().error(f"internal error: {type(exc).__name__}: {exc}", "re-run with --debug for the traceback")
        code = EXIT_FAILED
    sys.exit(code)
