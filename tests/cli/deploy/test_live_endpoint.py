"""Deploy's smoke request and status's metrics against the real server (vLLM CPU engine).

The Secret already exists with the live server's key: deploy keeps it (never regenerates it) and
the smoke request authenticates with it through the port-forward of the default `cluster` exposure,
which the double connects to the live server.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import urlparse

import pytest

from tests.cli.deploy.conftest import IMAGE, config_text
from tests.fixtures.kube import ENDPOINT_PODS

pytestmark = pytest.mark.engine


def test_deploy_smoke_and_status_against_the_real_server(llmctl, aws, kube, live_server) -> None:
    port = urlparse(live_server.base_url).port
    llmctl.env["KUBECONFIG"] = str(kube.kubeconfig_path)
    kube.on_load_balancer(create=lambda service: {"ip": "127.0.0.1"})
    metrics_port = urlparse(live_server.metrics_url).port
    kube.expose(ENDPOINT_PODS, port, ("127.0.0.1", port))  # the default `cluster` exposure's port-forward
    kube.expose(ENDPOINT_PODS, metrics_port, ("127.0.0.1", metrics_port))  # status's, to the metrics listener
    llmctl.write_config(config_text(port, metrics_port=metrics_port).replace("  bucket: llama-models\n",
                                                  f"  bucket: llama-models\n  served_name: {live_server.model_name}\n"))
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vllm"}})
    kube.create({"apiVersion": "v1", "kind": "Secret",
                 "metadata": {"name": "vllm-llama-api-key", "namespace": "vllm"},
                 "data": {"api-key": base64.b64encode(live_server.api_key.encode()).decode()}})
    done = llmctl("deploy", "--image", IMAGE, "--timeout", "60", "--output", "json", timeout=180)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["api_key_created"] is False
    assert data["smoke"]["status"] == 200 and data["smoke"]["text"]
    assert data["endpoint"] == f"http://vllm-llama.vllm.svc.cluster.local:{port}"  # in-cluster: `cluster` exposure
    status = json.loads(llmctl("status", "--output", "json", check=True).stdout)
    assert status["metrics"]["requests"].get("success", 0) >= 1
    assert status["metrics"]["model_loaded"] == 1.0
