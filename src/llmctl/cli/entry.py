"""Console-script entry point, kept import-light so `llmctl --help` starts fast.

Help text depends only on the installed code and the terminal, so it is cached per version,
source mtimes, width and colour mode, and replayed without importing Typer, rich or pydantic
(which alone cost several times Python's own start-up). Anything else goes to `main.run`.
"""

from __future__ import annotations

import os
import sys
import zlib

HELP_FLAGS = ("--help", "-h")


def _help_cache_file(argv: list[str]) -> str | None:
    """The cache path for a pure help invocation (`llmctl [words...] --help`), else None."""
    if not argv or argv[-1] not in HELP_FLAGS or any(arg.startswith("-") for arg in argv[:-1]):
        return None
    from llmctl import __version__

    cli_dir = os.path.dirname(__file__)
    stamp = [__version__, " ".join(argv[:-1])]
    stamp += [f"{entry.name}:{entry.stat().st_mtime_ns}" for entry in sorted(os.scandir(cli_dir), key=lambda e: e.name) if entry.name.endswith(".py")]
    stamp += [
        os.environ.get("COLUMNS", ""),
        os.environ.get("NO_COLOR", ""),
        os.environ.get("TERM", ""),
        str(sys.stdout.isatty()),
        str(os.get_terminal_size(sys.stdout.fileno()).columns if sys.stdout.isatty() else ""),
    ]
    key = f"{zlib.crc32(chr(0).join(stamp).encode()):08x}{len(argv):02d}"
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache_home, "llmctl", f"help-{key}.txt")


class _Tee:
    """Writes through to the real stdout and keeps a copy (rich asks it isatty/fileno)."""

    def __init__(self, stream):
        self._stream = stream
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text.decode() if isinstance(text, bytes) else text)
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main() -> None:
    argv = sys.argv[1:]
    cache = _help_cache_file(argv)
    if cache is not None and os.path.isfile(cache):
        with open(cache, encoding="utf-8") as handle:
            sys.stdout.write(handle.read())
        return
    from llmctl.cli.main import run

    if cache is None:
        run(argv)
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        run(argv)
    except SystemExit as exc:
        sys.stdout = tee._stream
        if not exc.code:
            _store(cache, "".join(tee.parts))
        raise


def _store(cache: str, text: str) -> None:
    """Best effort: a read-only home only costs speed."""
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        tmp = f"{cache}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, cache)
    except OSError:
        pass
