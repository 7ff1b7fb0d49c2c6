"""`llmctl bench` against a deployed endpoint KEDA scaled to zero: it warns before it starts, its first request
goes through the KEDA HTTP add-on's interceptor (a port-forward to its proxy Service, with a Host the
HTTPScaledObject routes), which holds it while KEDA starts a replica; that request's time is reported as the
wake time, apart from the steady-state figures."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import kubernetes

from tests.bench.fakeserver import FakeServer, Script
from tests.cli.deploy.conftest import config_text
from tests.cli.deploy.test_deploy import APP, PROGRESS, run_deploy
from tests.doubles.interceptor import InterceptorDouble
from tests.doubles.kube.cluster import INTERCEPTOR_LABELS
from tests.fixtures.kube import ENDPOINT_PODS, Scenario, endpoint_deployment

ZERO = "  autoscaling:\n    enabled: true\n    max_replicas: 1\n    idle_minutes: 10\n"
# behind the chart's proxy Service, which install_keda(http_add_on=True) puts in `keda`
INTERCEPTOR_POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "keda-add-ons-http-interceptor-0",
                                                                   "namespace": "keda", "labels": INTERCEPTOR_LABELS},
                   "spec": {"containers": [{"name": "interceptor", "image": "ghcr.io/kedacore/http-add-on-interceptor",
                                            "ports": [{"name": "proxy", "containerPort": 8080}]}]}}
WAKE_STEP_S = 0.2  # each of the woken pod's steps (schedule, pulls, start, ready): a wake of about 2 s


def _ready_pods(kube) -> list[dict]:
    return [p for p in kube.list("v1", "Pod", "vllm", ENDPOINT_PODS) if not p["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]


def test_bench_warns_at_zero_and_reports_the_wake_apart_from_steady_state(project, kube, stub_endpoint) -> None:
    kube.install_keda(http_add_on=True)
    project.write_config(config_text(stub_endpoint.port, extra=ZERO))
    kube.script(ENDPOINT_PODS, Scenario.success(download_lines=PROGRESS))
    assert run_deploy(project).returncode == 0
    apps = kubernetes.client.AppsV1Api(kube.api_client())
    apps.patch_namespaced_deployment(endpoint_deployment(kube), "vllm", {"spec": {"replicas": 0}})  # KEDA after the idle time
    kube.wait_for(lambda: not kube.list("v1", "Pod", "vllm", ENDPOINT_PODS), 10)
    assert json.loads(project("status", "-o", "json", check=True).stdout)["scaled_to_zero"]["wakes_on_request"]

    woke: dict[str, float] = {}

    def wake() -> None:  # the held request activates KEDA's external-push trigger: one replica
        woke["at"] = time.monotonic()
        apps.patch_namespaced_deployment(endpoint_deployment(kube), "vllm", {"spec": {"replicas": 1}})

    hosts = kube.get("http.keda.sh/v1alpha1", "HTTPScaledObject", APP, "vllm")["spec"]["hosts"]
    kube.script(ENDPOINT_PODS, Scenario.success(delay=WAKE_STEP_S))
    with FakeServer(Script(tokens=8, model="llama-2-7b")) as pod:  # what the woken pod serves
        backend = urlsplit(pod.url)
        interceptor = InterceptorDouble((backend.hostname, backend.port), condition_wait_s=60, hosts=hosts,
                                        ready=lambda: bool(_ready_pods(kube)), on_first_hold=wake).start()
        try:
            kube.script("keda-add-ons-http-interceptor-0", Scenario.success(delay=0.01))
            kube.expose("keda-add-ons-http-interceptor-0", 8080, ("127.0.0.1", int(urlsplit(interceptor.url).port)))
            kube.create(INTERCEPTOR_POD)
            kube.wait_for(lambda: [p for p in kube.list("v1", "Pod", "keda") if p["status"].get("conditions") and any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])], 10)
            done = project("bench", "-n", "6", "--concurrency", "2", "--output-len", "8", "--warmup", "0",
                           "--output-json", "out.json", timeout=120, env={"COLUMNS": "200"})
        finally:
            interceptor.stop()
    assert done.returncode == 0, done.stderr
    assert "vllm/vllm-llama is scaled to zero: the first request wakes it (about" in done.stderr
    doc = json.loads((project.cwd / "out.json").read_text())
    wake_s = doc["llmctl"]["wake"]["wake_s"]
    row = next(line for line in done.stdout.splitlines() if "Wake from zero" in line)
    assert f"{wake_s:,.2f} s (the last deploy measured" in row, done.stdout
    assert doc["llmctl"]["wake"]["expected_measured"] is True  # the deploy measured its cold start
    assert wake_s >= 5 * WAKE_STEP_S and woke["at"]  # it waited for the replica to start
    first, *_ = interceptor.requests
    assert first.held_s >= 5 * WAKE_STEP_S and all(r.forwarded for r in interceptor.requests)
    # the steady state: six requests, none of them the wake
    assert doc["completed"] == 6 and doc["failed"] == 0
    assert doc["p99_ttft_ms"] < wake_s * 1000 / 2 and doc["p99_e2el_ms"] < wake_s * 1000 / 2
    assert len(interceptor.requests) == 1 + 6 + 1  # the wake, the six, bench's /v1/models
    assert _ready_pods(kube)


def test_bench_at_zero_with_nothing_to_wake_it_says_so_in_one_line(project, kube, stub_endpoint) -> None:
    kube.install_keda(http_add_on=True)
    project.write_config(config_text(stub_endpoint.port, extra=ZERO))
    kube.script(ENDPOINT_PODS, Scenario.success(download_lines=PROGRESS))
    assert run_deploy(project).returncode == 0
    client = kube.api_client()
    kubernetes.client.AppsV1Api(client).patch_namespaced_deployment(endpoint_deployment(kube), "vllm", {"spec": {"replicas": 0}})
    kubernetes.client.CustomObjectsApi(client).delete_namespaced_custom_object(
        "http.keda.sh", "v1alpha1", "vllm", "httpscaledobjects", APP)  # the add-on's object gone
    kube.wait_for(lambda: not kube.list("v1", "Pod", "vllm", ENDPOINT_PODS), 10)
    done = project("bench", "-n", "2", "--warmup", "0", timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "vllm/vllm-llama is scaled to zero and no HTTPScaledObject wakes it on request" in done.stderr
