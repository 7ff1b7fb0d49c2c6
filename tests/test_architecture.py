"""Dependencies point one way: cli -> actions -> adapters/render -> config; server/ stands alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "llmctl"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


# context.py is the composition root: it builds (lazily) the clients that actions are handed.
@pytest.mark.parametrize("path", [p for p in _modules(SRC / "cli") if p.name != "context.py"], ids=lambda p: p.name)
def test_cli_makes_no_cloud_or_cluster_calls(path):
    bad = {name for name in _imports(path) if name.split(".")[0] in ("boto3", "botocore", "kubernetes")}
    bad |= {name for name in _imports(path) if name.startswith(("llmctl.aws", "llmctl.k8s"))}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: call an action instead"


@pytest.mark.parametrize("path", _modules(ROOT / "server"), ids=lambda p: p.name)
def test_server_never_imports_llmctl(path):
    assert not {n for n in _imports(path) if n.split(".")[0] == "llmctl"}, path


@pytest.mark.parametrize("folder", ["actions", "aws", "k8s", "config", "bench", "monitoring"])
def test_lower_layers_never_import_the_cli(folder):
    for path in _modules(SRC / folder):
        assert not {n for n in _imports(path) if n.startswith("llmctl.cli")}, path


@pytest.mark.parametrize("folder", ["aws", "k8s", "config"])
def test_adapters_and_config_never_import_actions(folder):
    for path in _modules(SRC / folder):
        assert not {n for n in _imports(path) if n.startswith(("llmctl.actions", "llmctl.ui"))}, path


def test_only_ui_prints():
    offenders = []
    for path in _modules(SRC):
        if path.is_relative_to(SRC / "ui"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    # `--version` prints before any Output exists; it is the one exception.
    assert all(o.startswith("src/llmctl/cli/main.py:") for o in offenders) and len(offenders) <= 1, offenders


AWS_PACKAGES = ("boto3", "botocore", "s3transfer")


def _raw_aws_calls(path: Path) -> list[str]:
    """Where a module reaches AWS itself: imports boto3/botocore, asks the session for a client
    (`.client(` / `.resource(`), or calls a method on a client taken from it (`aws.s3.put_object(...)`)."""
    found = [f"imports {name}" for name in sorted(_imports(path)) if name.split(".")[0] in AWS_PACKAGES]
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        func = node.func
        if func.attr in ("client", "resource"):
            found.append(f"line {node.lineno}: .{func.attr}(...)")
        elif isinstance(func.value, ast.Attribute):  # <...>.aws.<service>.<method>(...)
            holder = func.value.value
            if (isinstance(holder, ast.Name) and holder.id == "aws") or (isinstance(holder, ast.Attribute) and holder.attr == "aws"):
                found.append(f"line {node.lineno}: aws.{func.value.attr}.{func.attr}(...)")
    return found


@pytest.mark.parametrize("path", _modules(SRC / "actions") + _modules(SRC / "cli"), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_actions_and_cli_reach_aws_only_through_the_adapters(path):
    raw = _raw_aws_calls(path)
    assert not raw, f"{path.relative_to(ROOT)}: {raw}: call a function of llmctl.aws instead"


def test_the_raw_aws_call_check_sees_each_form(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(self, aws):\n"
        "    from botocore.exceptions import ClientError\n"
        "    self.aws.client('eks').describe_cluster(name='x')\n"
        "    aws.s3.put_object(Bucket='b')\n"
        "    self.aws.secretsmanager.describe_secret(SecretId='s')\n"
        "    helper(self.aws.s3, 'b')\n"
        "    self.aws.identity()\n"
    )
    assert sorted(_raw_aws_calls(sample)) == [
        "imports botocore.exceptions", "line 3: .client(...)",
        "line 4: aws.s3.put_object(...)", "line 5: aws.secretsmanager.describe_secret(...)",
    ]


MAX_MODULE_LINES = 400


@pytest.mark.parametrize("path", _modules(SRC),
                         ids=lambda p: p.relative_to(SRC).as_posix())
def test_modules_stay_short(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, (f"{path.relative_to(ROOT)} has {lines} lines (limit {MAX_MODULE_LINES}): "
                                       "split it by concern")
