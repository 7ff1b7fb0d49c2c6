"""`llmctl doctor`: check everything a cloud run needs, each failure with its fix."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from llmctl.errors import LlmctlError

Status = Literal["pass", "warn", "fail"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def run_checks(config_loader, aws_factory, kubeconfig: str | None = None) -> list[Check]:
    """Config first: the later checks need it, and each check runs even if another failed."""
    checks: list[Check] = []
    try:
        cfg = config_loader()
    except LlmctlError as exc:
        checks.append(Check("config", "fail", exc.message, exc.hint or "fix the field named above"))
        return checks
    checks.append(Check("config", "pass", f"deployment {cfg.project.name!r}"))
    checks.append(_region_check(cfg))
    checks.append(_identity_check(aws_factory(cfg)))
    checks.extend(_tool_check(name) for name in ("eksctl", "kubectl"))
    checks.append(_kubeconfig_check(kubeconfig))
    if not cfg.model.bucket:
        checks.append(Check("model bucket", "warn", "model.bucket is not set", "set model.bucket in llmctl.yaml (or `llmctl init --bucket`)"))
    else:
        checks.append(Check("model bucket", "pass", f"s3://{cfg.model.bucket}/{cfg.model.prefix}/"))
    return checks


def _region_check(cfg) -> Check:
    env_region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if env_region and env_region != cfg.aws.region:
        return Check(
            "region", "warn", f"{cfg.aws.region} (AWS_REGION says {env_region})", "set aws.region or unset AWS_REGION so they agree"
        )
    return Check("region", "pass", cfg.aws.region)


def _identity_check(aws) -> Check:
    try:
        identity = aws.identity()
    except LlmctlError as exc:
        return Check("aws identity", "fail", exc.message, exc.hint or "")
    return Check("aws identity", "pass", f"{identity['Arn']} (account {identity['Account']})")


def _tool_check(name: str) -> Check:
    from llmctl.tools import INSTALL_HINTS, probe

    tool = probe(name)
    if tool.path is None:
        return Check(name, "fail", "not found on PATH", INSTALL_HINTS[name])
    if not tool.supported:
        return Check(name, "fail", f"{tool.version or 'unknown version'} at {tool.path}", f"upgrade to {tool.minimum} or newer; {INSTALL_HINTS[name]}")
    return Check(name, "pass", f"{tool.version} at {tool.path}")


def _kubeconfig_check(kubeconfig: str | None) -> Check:
    import yaml

    path = Path(kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube" / "config")
    if not path.exists():
        return Check("kubeconfig", "warn", f"{path} does not exist", "`llmctl cluster up` writes it (or `aws eks update-kubeconfig`)")
    try:
        context = (yaml.safe_load(path.read_text()) or {}).get("current-context")
    except yaml.YAMLError:
        return Check("kubeconfig", "fail", f"{path} is not valid YAML", "regenerate it with `aws eks update-kubeconfig`")
    if not context:
        return Check("kubeconfig", "warn", f"{path} has no current context", "`kubectl config use-context <name>`")
    return Check("kubeconfig", "pass", f"context {context}")
