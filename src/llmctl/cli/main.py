"""The `llmctl` entry point: global options, command registration, errors to exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer._click import core as click
from typer._coercion import RuntimeParam, build_runtime_param
from typer.core import TyperGroup, _TyperParameter

from llmctl import __version__
from llmctl.cli.context import App, OutputFormat
from llmctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, LlmctlError
from llmctl.ui import Output

# Each command name -> the module whose `register(app)` defines it, in the order `--help` lists them.
COMMANDS = {
    "init": "init", "doctor": "doctor", "cost": "cost", "deploy": "deploy", "history": "history", "rollback": "rollback", "status": "status", "logs": "status", "endpoint": "status",
    "bench": "bench", "dashboard": "monitoring", "teardown": "teardown", "config": "config_cmd", "model": "model", "adapter": "adapter",
    "build": "build", "cluster": "cluster", "monitoring": "monitoring", "local": "local",
}


class _LazyCommands(MutableMapping):
    """The root group's commands: every name, each built into its click command on first use.

    Why lazy: Typer makes a click command by inspecting a function's signature and options;
    importing every command module and building all 25 on every run costs about 90 ms of CPU
    (measured: llmctl's own share of `llmctl --help`, which builds them all, against that of
    `llmctl status --help`), as much as all the rest llmctl adds to `config show`. A run builds
    the command it invokes; `--help` builds all to list them."""

    def __init__(self):
        self.built: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self.built:
            if name not in COMMANDS:
                raise KeyError(name)
            registry = typer.Typer(rich_markup_mode=None)
            import_module(f"llmctl.cli.{COMMANDS[name]}").register(registry)
            self.built.update(typer.main.get_group(registry).commands)
        return self.built[name]

    def __contains__(self, name) -> bool:
        return name in COMMANDS or name in self.built

    def __setitem__(self, name: str, command: click.Command) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        del self.built[name]

    def __iter__(self):
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


@dataclass(frozen=True)
class _ValidatorOnFirstValue(RuntimeParam):
    """Typer's own check of one parameter's value, its pydantic validator built for the first value.

    Why: Typer builds a pydantic `TypeAdapter` for each parameter it processes and only then sees
    that the value is None (not given, no default; every unused `--help` is one) and returns None.
    The first adapter imports pydantic's schema machinery, about 50 ms of CPU: `llmctl status
    --help` cost 1.7x the framework import for it. `RuntimeParam.coerce` still answers None (and a
    multi-value option's ()) as Typer does; any other value goes through the validator Typer builds."""

    def _coerce_value(self, value, param, ctx):
        param._runtime_param = build_runtime_param(param.type_descriptor)
        return param._runtime_param._coerce_value(value, param=param, ctx=ctx)


def _validate_on_first_value(params: Iterable) -> None:
    """See `_ValidatorOnFirstValue`."""
    for param in params:
        if isinstance(param, _TyperParameter) and param._runtime_param is None:
            descriptor = param.type_descriptor
            param._runtime_param = _ValidatorOnFirstValue(descriptor.parameter_info, descriptor.annotation)


def _each_command(command: click.Command):
    """`command` and every command below it (a group's subcommands, built with it)."""
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _each_command(sub)


class _Root(TyperGroup):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.commands = _LazyCommands()

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        _validate_on_first_value(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        for each in _each_command(command) if command is not None else ():
            # a command's --help option is made here, once, with the root's help names (every command inherits them)
            _validate_on_first_value(each.get_params(ctx))
        return name, command, rest


app = typer.Typer(
    name="llmctl",
    cls=_Root,
    rich_markup_mode=None,  # click's plain help: rich's panels import markdown-it and pygments to print it
    help="Take a fine-tuned LLM from S3 to a vLLM endpoint on EKS GPU nodes, and back down.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"llmctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Config file (default: ./llmctl.yaml or LLMCTL_CONFIG).", show_default=False)] = None,
    # None, not text: a default is a value Typer validates, and that alone imports pydantic (`_ValidatorOnFirstValue`)
    output: Annotated[Optional[OutputFormat], typer.Option("--output", "-o", help="Output format (default: text).", show_default=False)] = None,
    region: Annotated[Optional[str], typer.Option("--region", help="AWS region (overrides aws.region).")] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", help="AWS profile (overrides aws.profile).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="Plain output (also NO_COLOR=1).")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    overrides: dict = {}
    if region:
        overrides.setdefault("aws", {})["region"] = region
    if profile:
        overrides.setdefault("aws", {})["profile"] = profile
    out = ctx.obj if isinstance(ctx.obj, Output) else Output()  # run() made it, to render any error
    # JSON when the global option says so, or when argv asks for it after the command (`cluster render -o json`):
    # a parse error in the command's own options is then still answered in JSON
    out.configure(json_output=output is OutputFormat.json or out.json, quiet=quiet,
                  color=False if no_color else None, debug=debug)
    ctx.obj = App(config_arg=config, output=out, overrides=overrides,
                  flags={"aws.region": "--region", "aws.profile": "--profile"})


def _asks_for_json(argv: list[str]) -> bool:
    """`-o json` anywhere in argv: how an error found before the options are parsed knows the format."""
    pairs = zip(argv, [*argv[1:], ""])
    return any(a in ("-o", "--output") and b == "json" for a, b in pairs) or any(
        a in ("-ojson", "--output=json") for a in argv)


def run(argv: list[str] | None = None) -> None:
    """Console-script entry: map every outcome to an exit code (0, 1, 2, 130).

    Every failure has one shape whoever finds it: the framework's parse errors (an unknown
    command or option, a value outside a choice, exit 2), llmctl's `ConfigError` (exit 2) and
    `LlmctlError` (exit 1) print one `error: ...; fix: ...` line per problem on stderr and, with
    `--output json`, one error object on stdout (`Output.fail`)."""
    from typer._click import exceptions as click_errors

    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv or bool(os.environ.get("LLMCTL_DEBUG"))
    out = Output(json_output=_asks_for_json(argv))  # configured by the root callback once it parses the options
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="llmctl", standalone_mode=False, obj=out)
        code = code if isinstance(code, int) else 0
        out.close()
    except (KeyboardInterrupt, typer.Abort):
        code = EXIT_INTERRUPTED
        out.fail("interrupted; re-run the same command to continue where it stopped", None, exit_code=code)
    except typer.Exit as exc:
        code = exc.exit_code
        out.close()
    except click_errors.NoArgsIsHelpError as exc:  # `llmctl` or a group alone: its help, as a usage error
        code = EXIT_USAGE
        if out.json:
            out.fail("no command given", "`llmctl --help` lists the commands", exit_code=code)
        else:
            exc.show()
    except click_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "llmctl"
        message = exc.format_message().replace("Value error, ", "").rstrip(".")
        code = EXIT_USAGE
        out.fail(message, f"`{where} --help` lists the commands and options", exit_code=code)
    except click_errors.ClickException as exc:
        code = exc.exit_code
        out.fail(exc.format_message(), None, exit_code=code)
    except LlmctlError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        code = exc.exit_code
        out.fail(exc.message, exc.hint, exit_code=code, problems=getattr(exc, "problems", ()))
    except Exception as exc:  # an AWS, Kubernetes or network failure no adapter worded, else an llmctl bug
        if debug:
            raise
        from llmctl.failures import explain

        failure = explain(exc)
        if failure is not None:
            code = failure.exit_code
            out.fail(failure.message, failure.hint, exit_code=code)
        else:
            code = EXIT_FAILED
            out.fail(f"internal error: {type(exc).__name__}: {exc}", "re-run with --debug for the traceback",
                     exit_code=code)
    sys.exit(code)
