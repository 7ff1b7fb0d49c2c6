"""The one `Output`: step words, dry-run wording, confirmation without a terminal, raw documents."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from llmctl.errors import EXIT_USAGE, ConfigError
from llmctl.k8s.apply import ApplyResult
from llmctl.outcome import OUTCOMES
from llmctl.plan import StepResult
from llmctl.ui.console import STATUS_STYLE, Output

CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


@pytest.fixture
def output(monkeypatch) -> tuple[Output, io.StringIO, io.StringIO]:
    monkeypatch.setenv("NO_COLOR", "1")
    out = Output()
    stdout, stderr = io.StringIO(), io.StringIO()
    out.out.file, out.err.file = stdout, stderr
    return out, stdout, stderr


def test_every_outcome_is_documented_and_styled():
    documented = set(re.findall(r"^\| `([a-z]+)` \|", CLI_DOC.read_text(), re.M))
    assert set(OUTCOMES) <= documented
    assert all(word in STATUS_STYLE for word in OUTCOMES)


def test_steps_and_objects_share_one_line_shape(output):
    out, _, stderr = output
    out.report(StepResult("IAM role demo-codebuild", "iam-role", "create", "created", "trust: codebuild"))
    out.report(ApplyResult("ConfigMap", "vllm", "vllm-demo-env", "deleted"))
    out.report(ApplyResult("Namespace", None, "vllm", "created"), dry_run=True)
    assert stderr.getvalue().splitlines() == [
        "    created  IAM role demo-codebuild (trust: codebuild)",
        "    deleted  ConfigMap vllm/vllm-demo-env",
        "  would create  Namespace vllm",
    ]


def test_confirm_without_a_terminal_is_a_usage_error(output, monkeypatch):
    out, _, _ = output
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a tty
    with pytest.raises(ConfigError, match="needs confirmation .no terminal to ask on.") as info:
        out.confirm("Delete?", refusal="teardown needs confirmation", hint="add --yes")
    assert info.value.exit_code == EXIT_USAGE and info.value.hint == "add --yes"


def test_documents_go_to_stdout_verbatim_in_both_modes(output):
    out, stdout, _ = output
    out.document("kind: [Secret]\n")
    out.json = True
    out.document('{"a": 1}')
    assert stdout.getvalue() == 'kind: [Secret]\n{"a": 1}\n'
