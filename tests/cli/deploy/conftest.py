"""Deploy tests: a project wired to the Kubernetes double and moto, and a stub endpoint.

The double's cloud controller publishes `127.0.0.1` as the load balancer's address and the
config's `server.port` is the stub's port, so the smoke request really goes through the
Service's advertised address to a listening HTTP server (no hidden override); with the default
`cluster` exposure it goes through a port-forward to the pod, which the double connects to the stub.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

# The server's pods (the Deployment's selector), not the scale-to-zero waking responder's beside them.
SERVER_PODS = "app.kubernetes.io/name=vllm"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llmctl/llama@sha256:" + "ab" * 32
METRICS = """# HELP vllm_requests_total Requests
# TYPE vllm_requests_total counter
vllm_requests_total{status="success",endpoint="/v1/completions"} 3.0
vllm_requests_total{status="error",endpoint="/generate"} 1.0
vllm_model_loaded 1.0
vllm_active_requests 0.0
vllm:num_requests_waiting{model_name="llama-2-7b"} 2.0
"""


@dataclass
class StubEndpoint:
    port: int
    metrics_port: int  # a second listener with /metrics, as the server's METRICS_PORT
    requests: list[dict] = field(default_factory=list)


@pytest.fixture
def stub_endpoint():
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/metrics":
                self._send(200, METRICS.encode(), "text/plain")
            elif self.path in ("/ready", "/health"):  # what the promotion gate's readiness check asks
                self._send(200, b'{"status": "ready"}')
            else:
                self._send(404, b"{}")

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            if self.path == "/v1/chat/completions":  # the gate's golden prompts
                reply = {"choices": [{"message": {"role": "assistant", "content": "Alice and I like tea"},
                                      "finish_reason": "stop"}], "usage": {"completion_tokens": 6}}
                return self._send(200, json.dumps(reply).encode())
            if self.path != "/v1/completions":
                return self._send(404, b"{}")
            reply = {"choices": [{"text": " Alice and I like tea", "finish_reason": "length"}],
                     "usage": {"completion_tokens": 8}}
            self._send(200, json.dumps(reply).encode())

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(2)]
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    try:
        yield StubEndpoint(servers[0].server_address[1], servers[1].server_address[1], seen)
    finally:
        for server, thread in zip(servers, threads):
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


@pytest.fixture
def project(llmctl, aws, kube, stub_endpoint):
    """`llmctl` ready to deploy: config, kubeconfig, moto credentials; the endpoint's pods listen (through a
    port-forward, the default `cluster` exposure) on the stub, and an NLB's address is 127.0.0.1."""
    llmctl.env["KUBECONFIG"] = str(kube.kubeconfig_path)
    kube.on_load_balancer(create=lambda service: {"ip": "127.0.0.1"})
    kube.expose("vllm-llama", stub_endpoint.port, ("127.0.0.1", stub_endpoint.port))
    kube.expose("vllm-llama", stub_endpoint.metrics_port, ("127.0.0.1", stub_endpoint.metrics_port))
    llmctl.write_config(config_text(stub_endpoint.port, metrics_port=stub_endpoint.metrics_port))
    return llmctl


def config_text(port: int, replicas: int = 1, nodes_max: int = 1, extra: str = "", metrics_port: int | None = None) -> str:
    metrics = f"  metrics_port: {metrics_port}\n" if metrics_port else ""
    return (f"project:\n  name: llama\nmodel:\n  bucket: llama-models\nserver:\n  port: {port}\n{metrics}"
            f"cluster:\n  nodes_max: {nodes_max}\n  nodes_desired: {min(nodes_max, max(1, replicas))}\n"
            f"deploy:\n  replicas: {replicas}\n{extra}")
