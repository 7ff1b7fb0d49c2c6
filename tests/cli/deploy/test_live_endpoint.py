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


def test_a_bench_slo_the_new_revision_cannot_meet_rolls_it_back(llmctl, aws, kube, live_server) -> None:
    """`llmctl deploy` of a second revision whose pod is the real server: the gate's bench runs against it
    through the port-forward, no server meets a 1 microsecond p95 TTFT, so the deploy exits 1, revision 1
    serves again and history records revision 2 failed with the gate's SLO result."""
    port = urlparse(live_server.base_url).port
    llmctl.env["KUBECONFIG"] = str(kube.kubeconfig_path)
    kube.expose(ENDPOINT_PODS, port, ("127.0.0.1", port))
    kube.add_node("gpu-node-2")  # a free GPU: the second revision surges beside the first
    gate = ("  gate:\n    bench_requests: 4\n    bench_concurrency: 2\n    bench_input_len: 16\n"
            "    bench_output_len: 4\n    slo:\n      p95_ttft_s: 0.000001\n")
    llmctl.write_config(config_text(port, nodes_max=2, extra=gate).replace(
        "  bucket: llama-models\n", f"  bucket: llama-models\n  served_name: {live_server.model_name}\n"))
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vllm"}})
    kube.create({"apiVersion": "v1", "kind": "Secret",
                 "metadata": {"name": "vllm-llama-api-key", "namespace": "vllm"},
                 "data": {"api-key": base64.b64encode(live_server.api_key.encode()).decode()}})
    first = llmctl("deploy", "--image", IMAGE, "--timeout", "60", timeout=180)
    assert first.returncode == 0, first.stderr  # the first revision has no traffic to protect: no gate
    image_b = IMAGE.replace("ab" * 32, "cd" * 32)
    failed = llmctl("deploy", "--image", image_b, "--timeout", "60", timeout=180)
    assert failed.returncode == 1, failed.stderr
    assert "failed its promotion gate (slo p95 TTFT)" in failed.stderr, failed.stderr
    assert "rolling back: revision 2 failed; revision 1 serves again" in failed.stderr
    assert "Traceback" not in failed.stderr
    selected = kube.get("v1", "Service", "vllm-llama", "vllm")["spec"]["selector"]["llmctl.io/config-hash"]
    deployments = kube.list("apps/v1", "Deployment", "vllm")
    assert [d["metadata"]["name"] for d in deployments] == [f"vllm-llama-{selected[:10]}"]  # the new one is gone
    assert deployments[0]["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    recorded = json.loads(llmctl("history", "--output", "json", check=True).stdout)
    assert recorded["serving"] == 1
    assert [(r["number"], r["outcome"]) for r in recorded["revisions"]] == [(1, "serving"), (2, "failed")]
    checks = {c["name"]: c for c in recorded["revisions"][1]["gate"]["checks"]}
    assert checks["bench"]["status"] == "pass" and checks["slo p95 TTFT"]["status"] == "fail", checks
    assert checks["slo p95 TTFT"]["detail"], checks
    assert recorded["revisions"][1]["gate"]["bench"]["completed"] == 4
