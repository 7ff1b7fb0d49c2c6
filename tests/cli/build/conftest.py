"""Fixtures for `llmctl build` tests: a small build context and the CodeBuild simulator."""

from __future__ import annotations

import pytest

from tests.doubles.codebuild import CodeBuildSimulator

CONFIG = """\
project:
  name: demo
build:
  context: ctx
"""


@pytest.fixture
def codebuild_sim(monkeypatch) -> CodeBuildSimulator:
    return CodeBuildSimulator().install(monkeypatch)


@pytest.fixture
def build_project(llmctl, aws, codebuild_sim):
    """A project folder with llmctl.yaml and a custom context: Dockerfile, a server file, junk to ignore."""
    llmctl.write_config(CONFIG)
    ctx = llmctl.cwd / "ctx"
    (ctx / "server").mkdir(parents=True)
    (ctx / "Dockerfile").write_text('FROM python:3.11-slim\nCOPY server/ /app/server/\nCMD ["python", "-m", "server"]\n')
    (ctx / ".dockerignore").write_text("*\n!server/\nserver/**/__pycache__/\n")
    (ctx / "server" / "__main__.py").write_text("print('serving')\n")
    (ctx / "server" / "__pycache__").mkdir()
    (ctx / "server" / "__pycache__" / "x.pyc").write_bytes(b"\0junk")
    (ctx / "notes.txt").write_text("not part of the image\n")
    return llmctl
