"""Reaching an endpoint at zero by a name the interceptor routes (issue 21): with `deploy.exposure: cluster`
the ExternalName Service `vllm-<name>-wake` points pods at the KEDA HTTP add-on's interceptor proxy, and its
names are among the HTTPScaledObject's hosts; `deploy.tls.host_name` and `deploy.hostnames` are hosts too.
The hosts are never empty (an HTTPScaledObject without hosts is the interceptor's catch-all)."""

from __future__ import annotations

import httpx
import kubernetes_validate

from llmctl.actions.deploy import render, revision_selector, route
from llmctl.config import LlmctlConfig, Names
from tests.bench.fakeserver import FakeServer, Script
from tests.deploy.test_scale_to_zero import IMAGE, ROLE, ZERO
from tests.doubles.interceptor import InterceptorDouble
from tests.fixtures.crd import validate_crd

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/abc-123"


def _docs(**deploy) -> list[dict]:
    cfg = LlmctlConfig.model_validate({**ZERO, "deploy": {**ZERO["deploy"], **deploy}})
    return render(cfg, Names.from_config(cfg), image=IMAGE, role_arn=ROLE, api_key="k")


def _services(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}


def _hosts(docs: list[dict]) -> list[str]:
    return next(d for d in docs if d["kind"] == "HTTPScaledObject")["spec"]["hosts"]


def test_cluster_exposure_at_zero_renders_the_wake_service_and_routes_its_names():
    docs = _docs()
    wake = _services(docs)["vllm-llama-wake"]
    kubernetes_validate.validate(wake, "1.33", strict=True)
    assert wake["spec"] == {"type": "ExternalName",
                            "externalName": "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local",
                            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    hosts = _hosts(docs)
    assert {"vllm-llama-wake.vllm.svc.cluster.local", "vllm-llama-wake.vllm", "vllm-llama-wake",
            "vllm-llama.vllm.svc.cluster.local"} <= set(hosts) and len(hosts) == len(set(hosts)) == 8
    validate_crd(next(d for d in docs if d["kind"] == "HTTPScaledObject"))


def test_routing_a_revision_moves_only_the_endpoint_service():
    docs = _docs()
    before = _services(docs)
    moved = _services(route(docs, "vllm-llama-0123456789", revision_selector(Names.from_config(
        LlmctlConfig.model_validate(ZERO)), "0123456789abcdef")))
    assert moved["vllm-llama"]["spec"]["selector"]["llmctl.io/config-hash"] == "0123456789abcdef"
    assert moved["vllm-llama-wake"] == before["vllm-llama-wake"]  # no selector: an ExternalName
    assert moved["vllm-llama-waking"] == before["vllm-llama-waking"]  # still the responder's pods


def test_load_balanced_endpoints_route_the_certificate_name_and_the_configured_hostnames():
    docs = _docs(exposure="internal", tls={"certificate_arn": CERT, "host_name": "llm.example.com"},
                 hostnames=["llm.example.com", "chat.example.org"])
    assert "vllm-llama-wake" not in _services(docs)  # clients of the NLB do not call a Service name
    hosts = _hosts(docs)
    assert hosts[-2:] == ["llm.example.com", "chat.example.org"] and len(hosts) == len(set(hosts)) == 6


def test_a_request_by_the_wake_name_is_held_woken_and_answered_and_other_hosts_are_not_routed():
    hosts = _hosts(_docs())
    woke: list[bool] = []
    with FakeServer(Script(tokens=4, model="llama")) as pod:  # what the woken pod serves (it streams)
        with InterceptorDouble(("127.0.0.1", pod.port), condition_wait_s=10, hosts=hosts,
                               ready=lambda: bool(woke), on_first_hold=lambda: woke.append(True)) as interceptor:
            body = {"model": "llama", "prompt": "hi", "max_tokens": 4}
            # what a pod's client sends for http://vllm-llama-wake.vllm:8080 (the CNAME leads to the proxy)
            answered = httpx.post(f"{interceptor.url}/v1/completions", json=body, timeout=20,
                                  headers={"Host": "vllm-llama-wake.vllm:8080"})
            stranger = httpx.post(f"{interceptor.url}/v1/completions", json=body, timeout=20,
                                  headers={"Host": "vllm-other.vllm:8080"})
    assert answered.status_code == 200, answered.text
    assert answered.text.count("tok ") == 4 and answered.text.endswith("data: [DONE]\n\n")  # streamed through
    assert answered.headers["x-keda-http-cold-start"] == "true"
    assert woke == [True] and stranger.status_code == 404
