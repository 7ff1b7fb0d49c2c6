"""The waking answer (issue 21): a request still held by the KEDA HTTP add-on's interceptor when the hold
passes goes to the HTTPScaledObject's coldStartTimeoutFailoverRef, the waking responder llmctl renders
(nginx with its config in a ConfigMap), and gets 503, Retry-After and an OpenAI-shaped error.

The rendered objects pass Kubernetes' schemas and the add-on's CRD strictly and the restricted Pod Security
Standard; the rendered nginx.conf runs in the real nginx (Debian package `nginx`, `make test` installs it),
alone and behind the interceptor double with the failover, as the add-on (v0.11+) forwards to it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import kubernetes_validate
import pytest

from llmctl.actions import autoscaling as scaling
from llmctl.actions.deploy import render
from llmctl.actions.revisions import revision_documents
from llmctl.config import LlmctlConfig, Names
from llmctl.procs import free_port
from tests.deploy.test_scale_to_zero import IMAGE, ROLE, ZERO
from tests.deploy.test_security import restricted_violations
from tests.doubles.interceptor import InterceptorDouble
from tests.fixtures.crd import validate_crd
from tests.fixtures.server import wait_for

COLD_START_S = 170


def _docs(data: dict = ZERO) -> list[dict]:
    cfg = LlmctlConfig.model_validate(data)
    return render(cfg, Names.from_config(cfg), image=IMAGE, role_arn=ROLE, api_key="k", cold_start_s=COLD_START_S)


def _waking(docs: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in docs if d["metadata"]["name"] == "vllm-llama-waking"}


def require_nginx() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path:
        return path
    message = "nginx not installed (apt-get install nginx; `make test` does it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def waking_nginx():
    """The real nginx on a loopback port with the rendered config (only the listen address differs) and the
    pod's flags, as a user that may write nothing but nginx's prefix (the pod's emptyDir)."""
    docs = _waking(_docs())
    rendered = docs["ConfigMap"]["data"]["nginx.conf"]
    port = free_port()
    retry = scaling.retry_after_s(COLD_START_S)
    body = scaling.waking_body(LlmctlConfig.model_validate(ZERO), retry)
    assert rendered == scaling.waking_nginx_conf(body, retry)  # what the pod runs, port 8080
    home = Path(tempfile.mkdtemp(prefix="llmctl-waking-"))
    home.chmod(0o755)  # readable by the unprivileged user below, like the ConfigMap's mount
    prefix = home / "run"
    prefix.mkdir(mode=0o777)
    prefix.chmod(0o777)
    conf = home / "nginx.conf"
    conf.write_text(scaling.waking_nginx_conf(body, retry, port=port).replace("listen ", "listen 127.0.0.1:"))
    [container] = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    args = container["command"][1:]  # the pod's own flags, the prefix and config paths moved here
    args[args.index("-p") + 1], args[args.index("-c") + 1] = f"{prefix}/", str(conf)
    as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([*as_user, require_nginx(), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        wait_for(lambda: proc.poll() is not None or _answers(port), "nginx to listen", 10)
        assert proc.poll() is None, proc.communicate()[0]
        yield port, retry
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        shutil.rmtree(home, ignore_errors=True)
        assert "emerg" not in out and "alert" not in out, out


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        return True
    except httpx.TransportError:
        return False


def _assert_waking(response: httpx.Response, retry: int) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(retry)
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "endpoint_waking" and error["code"] == 503 and error["param"] is None
    assert error["message"] == f"the endpoint is waking from zero (it scales to zero after 15 idle minutes); " \
                               f"retry in {retry}s"


def test_the_waking_objects_pass_kubernetes_schemas_and_the_restricted_standard():
    docs = _docs()
    waking = _waking(docs)
    assert sorted(waking) == ["ConfigMap", "Deployment", "NetworkPolicy", "Service"]
    for doc in waking.values():
        kubernetes_validate.validate(doc, "1.33", strict=True)
    pod = waking["Deployment"]["spec"]["template"]["spec"]
    assert restricted_violations(pod) == [] and pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert container["image"] == scaling.WAKING_IMAGE and ":" in container["image"].rsplit("/", 1)[1]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "nvidia.com/gpu" not in json.dumps(container["resources"]) and not pod.get("tolerations")
    # on the system node group: a pending responder must never make Karpenter launch a GPU node
    [term] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == {"matchExpressions": [{"key": "karpenter.sh/nodepool", "operator": "DoesNotExist"}]}
    # never behind the endpoint's Service, and only the interceptor reaches it
    endpoint = next(d for d in docs if d["kind"] == "Service")
    selector = waking["Service"]["spec"]["selector"]
    assert selector == waking["Deployment"]["spec"]["selector"]["matchLabels"]
    assert set(selector.items()) <= set(waking["Deployment"]["spec"]["template"]["metadata"]["labels"].items())
    assert not set(endpoint["spec"]["selector"].items()) <= set(selector.items())
    policy = waking["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == selector and policy["egress"] == []
    assert policy["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "keda"}}}], "ports": [{"protocol": "TCP", "port": 8080}]}]
    # not part of a revision: a rollback restores the server's Deployment and env, never the responder
    assert [(d["kind"], d["metadata"]["name"].startswith("vllm-llama-env-")) for d in revision_documents(docs)] == [
        ("ConfigMap", True), ("Deployment", False)]
    assert not any(d["metadata"]["name"].endswith("-waking") for d in revision_documents(docs))


def test_the_http_scaled_object_fails_over_to_the_responder_after_the_hold():
    docs = _docs()
    http = next(d for d in docs if d["kind"] == "HTTPScaledObject")
    validate_crd(http)
    ref = http["spec"]["coldStartTimeoutFailoverRef"]
    # with a failover the add-on waits timeoutSeconds instead of conditionWait: both are the hold
    assert ref == {"service": "vllm-llama-waking", "port": 8080, "timeoutSeconds": 255}
    assert http["spec"]["timeouts"]["conditionWait"] == "255s"
    assert _waking(docs)["Service"]["spec"]["ports"][0]["port"] == ref["port"]
    bad = json.loads(json.dumps(http))
    bad["spec"]["coldStartTimeoutFailoverRef"]["timeout"] = 30  # misspelt: the strict CRD refuses it
    with pytest.raises(Exception, match="timeout"):
        validate_crd(bad)


def test_the_real_nginx_answers_every_request_with_the_waking_answer(waking_nginx):
    port, retry = waking_nginx
    base = f"http://127.0.0.1:{port}"
    big = {"model": "llama", "prompt": "x" * 2_000_000, "max_tokens": 8}  # past nginx's default 1 MiB body
    for response in (httpx.post(f"{base}/v1/completions", json=big, timeout=10),
                     httpx.post(f"{base}/v1/chat/completions", json={"messages": []}, timeout=10),
                     httpx.get(f"{base}/v1/models", timeout=10)):
        _assert_waking(response, retry)
    assert retry == 85  # half the 170 s cold start: the hold (1.5x) passed, the retry is held again


def test_a_request_held_past_the_hold_gets_the_waking_answer_through_the_interceptor(waking_nginx):
    port, retry = waking_nginx
    never_ready = ("127.0.0.1", free_port())  # the endpoint at zero: no pod behind its Service
    with InterceptorDouble(never_ready, condition_wait_s=30, failover=("127.0.0.1", port),
                           failover_timeout_s=1.0) as interceptor:
        response = httpx.post(f"{interceptor.url}/v1/completions", json={"model": "llama", "prompt": "hi"},
                              timeout=20)
    _assert_waking(response, retry)
    assert response.headers["x-keda-http-cold-start"] == "false"
    [held] = interceptor.requests
    assert 1.0 <= held.held_s < 5 and held.status == 503 and not held.forwarded
