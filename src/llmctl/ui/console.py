"""One output object for the whole run (hatch's `Application` pattern).

Results (and `--output json`) go to stdout; progress, spinners and logs go to stderr; spinners
only when stderr is a terminal; `NO_COLOR` respected. Actions report through an `Output` and
never print themselves.

The `--output json` contract (docs/cli.md): stdout holds exactly one JSON document. On success
it is the command's result; on failure it is an error object, `{"error", "fix", "exit_code"}`
plus `problems` (every problem of a bad config) and `result` (what the command had found when
it failed, such as `cluster up`'s failed pre-flight). So a result is held until the run ends
(`close` or `fail`), except a command that keeps running after it (`result(..., stream=True)`:
`dashboard`), whose later errors go to stderr only. The human `error: ...; fix: ...` line goes
to stderr in both modes.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console

STATUS_STYLE = {
    # outcomes (llmctl.outcome): step lines, plan and object tables
    "created": "green",
    "updated": "yellow",
    "deleted": "red",
    "unchanged": "dim",
    "done": "green",
    "failed": "red",
    # check verdicts (doctor, pre-flight)
    "ok": "green",
    "pass": "green",
    "warn": "yellow",
    "fail": "red",
    # plan actions (what a dry run would do)
    "create": "green",
    "update": "yellow",
    "delete": "red",
    "run": "green",
    "none": "dim",
}
_NOTHING = object()
# How a dry run words an outcome it would have.
_WOULD = {"created": "would create", "updated": "would update", "deleted": "would delete", "done": "would run"}


class Output:
    def __init__(self, *, json_output: bool = False, quiet: bool = False, color: bool | None = None, debug: bool = False):
        self.configure(json_output=json_output, quiet=quiet, color=color, debug=debug)
        self._pending: Any = _NOTHING  # the result, until the run ends (JSON mode)
        self._written = False  # a JSON document is on stdout

    def configure(self, *, json_output: bool, quiet: bool, color: bool | None, debug: bool) -> None:
        """Set the run's options once the global flags are parsed (the object exists from the start,
        so an error found while parsing is rendered by it too)."""
        no_color = bool(os.environ.get("NO_COLOR")) if color is None else not color
        self.json = json_output
        self.quiet = quiet
        self.debug = debug
        self.out = Console(file=sys.stdout, no_color=no_color, highlight=False, soft_wrap=json_output)
        self.err = Console(file=sys.stderr, no_color=no_color, highlight=False, stderr=True)

    @property
    def interactive(self) -> bool:
        return self.err.is_terminal and not self.quiet

    # --- results (stdout) --------------------------------------------------------------------
    def result(self, data: Any, render: Callable[[Any], None] | None = None, *, stream: bool = False) -> None:
        """A command's result: the human rendering now, or the JSON document when the run ends
        (`stream`: now, for a command that goes on running after its result)."""
        if self.json:
            self._pending = data
            if stream:
                self.close()
        elif render is not None:
            render(data)
        else:
            self.out.print(data)

    def close(self) -> None:
        """The run succeeded (or exited with its own code): write the held result."""
        if self.json and self._pending is not _NOTHING and not self._written:
            self._write_json(self._pending)
        self._pending = _NOTHING

    def fail(self, message: str, hint: str | None, *, exit_code: int, problems: Sequence[Any] = ()) -> None:
        """The run failed: one `error:` line per problem on stderr; in JSON mode the error object on stdout."""
        if problems:
            for problem in problems:
                self.error(problem.text, problem.fix)
        else:
            self.error(message, hint)
        if not self.json or self._written:
            return
        document: dict[str, Any] = {"error": message, "fix": hint, "exit_code": exit_code}
        if problems:
            document["problems"] = [problem.to_dict() for problem in problems]
        if self._pending is not _NOTHING:
            document["result"] = self._pending
        self._write_json(document)

    def json_line(self, data: Any) -> None:
        """One compact JSON object on its own line, now: a stream's item (`logs --follow -o json`)."""
        self.out.file.write(json.dumps(data, default=str) + "\n")
        self.out.file.flush()
        self._written = True

    def _write_json(self, data: Any) -> None:
        self.out.file.write(json.dumps(data, indent=2, default=str) + "\n")
        self.out.file.flush()
        self._written = True

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Human-only stdout text; silent under --output json so stdout stays parseable."""
        if not self.json:
            self.out.print(*objects, **kwargs)

    def table(self, title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, status_column: str | None = None) -> None:
        from rich.table import Table

        table = Table(title=title, title_justify="left", header_style="bold")
        for column in columns:
            table.add_column(column)
        status_index = list(columns).index(status_column) if status_column else None
        for row in rows:
            cells = [("" if cell is None else str(cell)) for cell in row]
            if status_index is not None:
                style = STATUS_STYLE.get(cells[status_index].lower())
                if style:
                    cells[status_index] = f"[{style}]{cells[status_index]}[/]"
            table.add_row(*cells)
        self.print(table)

    # --- progress and messages (stderr) ------------------------------------------------------
    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message, soft_wrap=True)

    def step(self, outcome: str, subject: str, *, dry_run: bool = False) -> None:
        """The one step line, for every command: `  created  S3 bucket foo` (`would create` in a dry run).

        `outcome` is a word of `llmctl.outcome`; `subject` is printed verbatim."""
        if self.quiet:
            return
        from rich.markup import escape

        word = _WOULD.get(outcome, outcome) if dry_run else outcome
        style = STATUS_STYLE.get(outcome, "")
        self.err.print(f"  [{style}]{word:>9}[/]  {escape(subject)}" if style else f"  {word:>9}  {escape(subject)}")

    def report(self, result: Any, *, dry_run: bool = False) -> None:
        """A step line for a finished plan step (`plan.StepResult`) or applied object (`k8s.apply.ApplyResult`):
        anything with an `outcome` and a `subject`."""
        self.step(result.outcome, result.subject, dry_run=dry_run)

    def confirm(self, question: str, *, refusal: str, hint: str) -> None:
        """Ask on stderr before something costly or destructive; return only on a yes.

        Without a terminal to ask on it refuses (exit 2: the command needs --yes); a no stops like
        Ctrl-C (exit 130), with nothing changed."""
        from llmctl.errors import EXIT_INTERRUPTED, ConfigError, LlmctlError

        if not sys.stdin.isatty():
            raise ConfigError(f"{refusal} (no terminal to ask on)", hint=hint)
        from rich.prompt import Confirm

        if not Confirm.ask(question, console=self.err, default=False):
            raise LlmctlError("not confirmed: nothing was changed", exit_code=EXIT_INTERRUPTED)

    def document(self, text: str) -> None:
        """A raw document on stdout exactly as given (the YAML a render command prints, a log line):
        no markup, no wrapping. Text mode only: in JSON mode a command passes its data to `result`."""
        self.out.file.write(text if text.endswith("\n") else text + "\n")
        self.out.file.flush()

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/] {message}")

    def error(self, message: str, hint: str | None = None) -> None:
        """One line: what went wrong, then how to fix it."""
        from rich.markup import escape

        text = f"[red]error:[/] {escape(message)}" + (f"; [dim]fix:[/] {escape(hint)}" if hint else "")
        self.err.print(text, soft_wrap=True, highlight=False)

    def log_line(self, line: str) -> None:
        """Subprocess or remote log lines, verbatim (no markup interpretation)."""
        if not self.quiet:
            self.err.print(line, markup=False, highlight=False, soft_wrap=True)

    @contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner while something slow runs; a plain line when not interactive."""
        if self.interactive:
            with self.err.status(message):
                yield
        else:
            self.info(message)
            yield

    @contextmanager
    def progress(self, description: str, total: float | None, unit: str = "bytes") -> Iterator[Callable[[float], None]]:
        """Yield `advance(n)`; draws a bar on a terminal and nothing otherwise."""
        if not self.interactive:
            yield lambda n: None
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
        if unit == "bytes":
            columns += [DownloadColumn(), TransferSpeedColumn()]
        columns.append(TimeRemainingColumn())
        with Progress(*columns, console=self.err, transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
