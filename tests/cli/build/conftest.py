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


@pytest.fixture
def ecr_registry(tmp_path, monkeypatch, aws, llmctl):
    """moto's ECR joined to a real registry on loopback (tests/doubles/ecr_registry.py); the
    images the test builds for it are removed from this machine's container storage after."""
    import json
    import subprocess

    from tests.doubles.ecr_registry import EcrRegistry

    registry = EcrRegistry(tmp_path / "registry").start()
    registry.install(monkeypatch)
    llmctl.env.update(CONTAINERS_REGISTRIES_CONF=str(registry.registries_conf), BUILDAH_ISOLATION="chroot")
    try:
        yield registry
    finally:
        registry.stop()
        listed = subprocess.run(["buildah", "images", "--json"], capture_output=True, text=True)
        ours = [i["id"] for i in json.loads(listed.stdout or "[]") if any(n.startswith(registry.host + "/") for n in i.get("names") or [])]
        if ours:
            subprocess.run(["buildah", "rmi", "--force", *ours], capture_output=True)
