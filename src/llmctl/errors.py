"""Domain errors: actions raise them, only the CLI layer turns them into exit codes.

Exit codes: 0 done, 1 failed (`LlmctlError`), 2 usage (`ConfigError`: a bad config value, flag
or argument, or a missing --yes; also the framework's own parse errors), 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class LlmctlError(Exception):
    """A failure the user can act on: one line of message, an optional hint for the fix."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(LlmctlError):
    """The one usage error: bad configuration, flag or argument (or a confirmation that cannot be asked);
    exit 2, nothing changed. Raise this, never `LlmctlError(..., exit_code=2)`."""

    def __init__(self, message: str, *, hint: str | None = None, problems: tuple = ()):
        super().__init__(message, hint=hint, exit_code=EXIT_USAGE)
        self.problems = tuple(problems)  # `config.problems.Problem`s: every problem of one config, each with its fix

    @classmethod
    def of(cls, problems) -> "ConfigError":
        """One error for all of a config's problems: the first's words, every one in `problems`."""
        problems = list(problems)
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        return cls(first.text + more, hint=first.fix, problems=problems)
