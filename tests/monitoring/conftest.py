"""Shared helpers for the monitoring tests: the Prometheus tools and a fixed test config."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llmctl.config import LlmctlConfig

HERE = Path(__file__).parent


def rules_test_config(**monitoring) -> LlmctlConfig:
    """The config tests/monitoring/rules_test.yaml was written for."""
    mon = {"slo_p95_latency_s": 2.0, "slo_p95_ttft_s": 0.5, "queue_alert_threshold": 10, "dcgm": True}
    mon.update(monitoring)
    return LlmctlConfig.model_validate(
        {"project": {"name": "demo"}, "deploy": {"namespace": "vllm"}, "monitoring": mon}
    )


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
