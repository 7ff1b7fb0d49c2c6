"""An `internal` endpoint that scales to zero, as its clients use it (issue 21): `deploy` puts the NLB's Service
in `keda` in front of the KEDA HTTP add-on's interceptor (the double: `tests/doubles/interceptor.py`, reading
the HTTPScaledObject's hosts live as the interceptor's routing table does), adds the NLB's DNS name to the
hosts and smoke-tests through it; a second deploy changes nothing; at zero `status` names the NLB and a
request to it is held while KEDA wakes a replica, then answered."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import kubernetes

from tests.bench.fakeserver import FakeServer, Script
from tests.cli.deploy.conftest import config_text
from tests.cli.deploy.test_bench_zero import INTERCEPTOR_POD, WAKE_STEP_S, ZERO, _ready_pods
from tests.cli.deploy.test_deploy import APP, PROGRESS, run_deploy
from tests.doubles.interceptor import InterceptorDouble
from tests.fixtures.kube import ENDPOINT_PODS, Scenario, endpoint_deployment

NLB = "localhost"  # the NLB's DNS name as the double's cloud controller publishes it (it resolves here)


def test_an_nlb_at_zero_reaches_the_endpoint_through_the_interceptor(project, kube, stub_endpoint) -> None:
    kube.install_keda(http_add_on=True)
    kube.install_aws_load_balancer_controller()
    kube.on_load_balancer(create=lambda service: NLB)
    apps = kubernetes.client.AppsV1Api(kube.api_client())
    woke: dict[str, float] = {}

    def wake() -> None:  # the held request activates KEDA's external-push trigger: one replica
        woke["at"] = time.monotonic()
        apps.patch_namespaced_deployment(endpoint_deployment(kube), "vllm", {"spec": {"replicas": 1}})

    def hosts() -> list[str]:
        routing = kube.get("http.keda.sh/v1alpha1", "HTTPScaledObject", APP, "vllm")
        return routing["spec"]["hosts"] if routing else []

    interceptor = InterceptorDouble(("127.0.0.1", stub_endpoint.port), condition_wait_s=60, hosts=hosts,
                                    ready=lambda: bool(_ready_pods(kube)), on_first_hold=wake).start()
    try:
        port = urlsplit(interceptor.url).port  # the NLB's port (server.port) lands on the interceptor
        kube.expose(ENDPOINT_PODS, port, ("127.0.0.1", stub_endpoint.port))  # the gate's port-forward to the pod
        kube.script("keda-add-ons-http-interceptor-0", Scenario.success(delay=0.01))
        kube.create(INTERCEPTOR_POD)
        project.write_config(config_text(port, metrics_port=stub_endpoint.metrics_port,
                                         extra=ZERO + "  exposure: internal\n"))
        kube.script(ENDPOINT_PODS, Scenario.success(download_lines=PROGRESS))
        done = run_deploy(project, "-o", "json")
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["endpoint"] == f"http://{NLB}:{port}" and data["smoke"]["status"] == 200
        actions = {(o["kind"], o["namespace"], o["name"]): o["action"] for o in data["objects"]}
        assert actions[("Service", "keda", "vllm-llama-vllm")] == "created"
        assert actions[("HTTPScaledObject", "vllm", APP)] == "updated"  # its hosts got the NLB's name
        assert NLB in hosts()
        smoke = next(r for r in interceptor.requests if r.path == "/v1/completions")
        assert smoke.forwarded and smoke.status == 200  # through the NLB and the interceptor
        nlb = kube.get("v1", "Service", "vllm-llama-vllm", "keda")
        assert nlb["spec"]["selector"] == INTERCEPTOR_POD["metadata"]["labels"]
        assert kube.get("v1", "Service", APP, "vllm")["spec"]["type"] == "ClusterIP"

        # the second deploy holds for the cold start the first one measured; the third changes nothing, and the
        # NLB's name stays a host throughout
        second = json.loads(run_deploy(project, "-o", "json").stdout)
        assert {o["name"] for o in second["objects"] if o["action"] != "unchanged"} <= {APP, f"{APP}-waking"}
        third = json.loads(run_deploy(project, "-o", "json").stdout)
        assert {o["action"] for o in third["objects"]} == {"unchanged"} and NLB in hosts()

        apps.patch_namespaced_deployment(endpoint_deployment(kube), "vllm", {"spec": {"replicas": 0}})
        kube.wait_for(lambda: not kube.list("v1", "Pod", "vllm", ENDPOINT_PODS), 10)
        status = json.loads(project("status", "-o", "json", check=True).stdout)
        assert status["endpoint"] == f"http://{NLB}:{port}" and status["scaled_to_zero"]["wakes_on_request"]
        assert status["exposure"]["service"] == "keda/vllm-llama-vllm"
        assert "through the KEDA HTTP add-on's interceptor" in status["exposure"]["reachable_from"]

        kube.script(ENDPOINT_PODS, Scenario.success(delay=WAKE_STEP_S))
        before = len(interceptor.requests)
        with FakeServer(Script(tokens=8, model="llama-2-7b")) as pod:  # what the woken pod serves (streams)
            interceptor.backend = (urlsplit(pod.url).hostname, urlsplit(pod.url).port)
            bench = project("bench", "-n", "2", "--warmup", "0", "--output-len", "8", "--output-json", "out.json",
                            timeout=120)
    finally:
        interceptor.stop()
    assert bench.returncode == 0, bench.stderr
    doc = json.loads((project.cwd / "out.json").read_text())
    assert doc["failed"] == 0 and doc["llmctl"]["wake"]["wake_s"] >= 5 * WAKE_STEP_S and woke["at"]
    first = interceptor.requests[before]
    assert first.held_s >= 5 * WAKE_STEP_S and all(r.forwarded for r in interceptor.requests[before:])
