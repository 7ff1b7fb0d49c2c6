"""`llmctl status` and `llmctl logs` against the Kubernetes double."""

from __future__ import annotations

import json

from tests.cli.deploy.conftest import IMAGE
from tests.cli.deploy.test_deploy import APP, PROGRESS, run_deploy
from tests.fixtures.kube import Scenario

MAIN_LINES = ['{"level": "INFO", "msg": "engine loaded"}', '{"level": "INFO", "msg": "warm-up done"}']


def test_status_json_after_deploy(project, kube, stub_endpoint) -> None:
    kube.script(APP, Scenario.success(download_lines=PROGRESS, main_lines=MAIN_LINES))
    assert run_deploy(project).returncode == 0
    done = project("status", "--output", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["deployed"] is True and data["deployment"] == "vllm/vllm-llama"
    assert (data["replicas"], data["ready_replicas"]) == (1, 1)
    assert data["image"] == IMAGE
    assert data["model"] == {"source": "s3://llama-models/llama-2-7b-merged-vllm", "served_name": "llama-2-7b",
                             "max_model_len": "512"}
    # the default exposure has no load balancer: status says so, and reads /metrics through a port-forward
    assert data["endpoint"] is None
    assert data["exposure"]["exposure"] == "cluster" and data["exposure"]["port"] == stub_endpoint.port
    [pod] = data["pods"]
    assert pod["phase"] == "Ready" and pod["ready"] is True and pod["restarts"] == 0 and pod["node"]
    assert data["metrics"]["requests"] == {"success": 3.0, "error": 1.0}
    assert data["metrics"]["engine_waiting"] == 2.0 and data["metrics"]["model_loaded"] == 1.0
    text = project("status")
    assert "1/1 ready" in text.stdout and "engine waiting" in text.stdout
    assert "exposed:  cluster: pods in the cluster" in text.stdout


def test_status_not_deployed(project) -> None:
    done = project("status", "--output", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"deployed": False, "deployment": "vllm/vllm-llama"}


def test_status_shows_warning_events(project, kube) -> None:
    kube.script(APP, Scenario.crash_loop(lines=["RuntimeError: boom"]))
    assert run_deploy(project).returncode == 1
    data = json.loads(project("status", "--output", "json").stdout)
    assert data["ready_replicas"] == 0
    assert any(e["reason"] == "BackOff" and "Back-off restarting failed container vllm" in e["message"]
               for e in data["events"])
    assert data["pods"][0]["restarts"] >= 1


def test_logs_of_both_containers(project, kube) -> None:
    kube.script(APP, Scenario.success(download_lines=PROGRESS, main_lines=MAIN_LINES))
    assert run_deploy(project).returncode == 0
    main = project("logs")
    assert main.returncode == 0, main.stderr
    assert main.stdout.splitlines() == MAIN_LINES
    init = project("logs", "--container", "model-download")
    assert init.stdout.splitlines() == PROGRESS
    followed = project("logs", "--follow", "--container", "model-download", timeout=30)  # ends with the container
    assert followed.returncode == 0 and followed.stdout.splitlines() == PROGRESS


def test_logs_previous_instance(project, kube) -> None:
    kube.script(APP, Scenario.crash_loop(lines=["RuntimeError: first crash"], restarts=1))
    assert run_deploy(project).returncode == 1
    previous = project("logs", "--previous")
    assert previous.returncode == 0, previous.stderr
    assert "RuntimeError: first crash" in previous.stdout


def test_logs_without_pods(project) -> None:
    done = project("logs")
    assert done.returncode == 1
    assert "no pods of vllm/vllm-llama" in done.stderr
