"""Shared helpers for the monitoring tests: the Prometheus tools and a fixed test config."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llmctl.config import LlmctlConfig
from llmctl.monitoring.target import Scope

HERE = Path(__file__).parent


def rules_test_scope(**monitoring) -> Scope:
    """What tests/monitoring/rules_test.yaml was written for (the renderers' input, derived once)."""
    mon = {"slo_p95_latency_s": 2.0, "slo_p95_ttft_s": 0.5, "queue_alert_threshold": 10, "dcgm": True}
    mon.update(monitoring)
    return Scope.of(LlmctlConfig.model_validate(
        {"project": {"name": "demo"}, "deploy": {"namespace": "vllm"}, "monitoring": mon}
    ))


def require_tool(name: str) -> str:
    """Path of a Prometheus tool (Debian package `prometheus`); CI must have it, elsewhere skip."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not installed (apt-get install prometheus; `make test` does it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_tool(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def promtool() -> str:
    return require_tool("promtool")


SCHEMAS = Path(__file__).resolve().parents[2].parent / "shared" / "schemas"


def strict_schema(schema: dict) -> dict:
    """The CRD's structural schema, closed: unknown fields fail instead of being pruned."""
    if isinstance(schema, dict):
        out = {k: strict_schema(v) for k, v in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [strict_schema(v) for v in schema]
    return schema


@pytest.fixture(scope="session")
def crd_validator():
    """validate(obj) against the prometheus-operator CRD schema of obj's kind."""
    import jsonschema
    import yaml

    if not SCHEMAS.is_dir():
        pytest.skip(f"schemas folder {SCHEMAS} absent")
    files = {
        "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
        "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
    }

    def validate(obj: dict) -> None:
        crd = yaml.safe_load((SCHEMAS / files[obj["kind"]]).read_text())
        version = next(v for v in crd["spec"]["versions"] if obj["apiVersion"].endswith("/" + v["name"]))
        schema = strict_schema(version["schema"]["openAPIV3Schema"])
        # No check_schema: a CRD pattern uses Go's `^(?i)...`, which Python's re rejects.
        jsonschema.Draft7Validator(schema).validate(obj)

    return validate
