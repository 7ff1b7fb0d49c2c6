"""Where the files llmctl ships live: `templates/`, `server/`, `Dockerfile`, `buildspec.yml`.

In a wheel they are package data under `llmctl/_data/`; in a source checkout they are at the
repository root. Every module asks here, so an installed `llmctl` works outside a checkout.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_root() -> Path:
    packaged = _PACKAGE_DIR / "_data"
    if (packaged / "templates").is_dir():
        return packaged
    checkout = _PACKAGE_DIR.parent.parent
    if (checkout / "templates").is_dir():
        return checkout
    raise FileNotFoundError(f"llmctl data files not found under {packaged} or {checkout}")


def templates_dir() -> Path:
    return data_root() / "templates"


def dockerfile() -> Path:
    return data_root() / "Dockerfile"


def buildspec() -> Path:
    return data_root() / "buildspec.yml"


def dockerignore() -> Path:
    return data_root() / ".dockerignore"
