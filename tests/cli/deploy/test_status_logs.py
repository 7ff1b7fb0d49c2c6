"""`llmctl status` and `llmctl logs` against the Kubernetes double."""

from __future__ import annotations

import json

from tests.cli.deploy.conftest import IMAGE
from tests.cli.deploy.test_deploy import PROGRESS, run_deploy
from tests.fixtures.kube import ENDPOINT_PODS, Scenario

MAIN_LINES = ['{"level": "INFO", "msg": "engine loaded"}', '{"level": "INFO", "msg": "warm-up done"}']


def test_status_json_after_deploy(project, kube, stub_endpoint) -> None:
    kube.script(ENDPOINT_PODS, Scenario.success(download_lines=PROGRESS, main_lines=MAIN_LINES))
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
    # to the pod's metrics port (the port the NetworkPolicy keeps for the monitoring namespace)
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
    kube.script(ENDPOINT_PODS, Scenario.crash_loop(lines=["RuntimeError: boom"]))
    assert run_deploy(project).returncode == 1
    data = json.loads(project("status", "--output", "json").stdout)
    assert data["ready_replicas"] == 0
    assert any(e["reason"] == "BackOff" and "Back-off restarting failed container vllm" in e["message"]
               for e in data["events"])
    assert data["pods"][0]["restarts"] >= 1


def test_logs_of_both_containers(project, kube) -> None:
    kube.script(ENDPOINT_PODS, Scenario.success(download_lines=PROGRESS, main_lines=MAIN_LINES))
    assert run_deploy(project).returncode == 0
    main = project("logs")
    assert main.returncode == 0, main.stderr
    assert main.stdout.splitlines() == MAIN_LINES
    init = project("logs", "--container", "model-download")
    assert init.stdout.splitlines() == PROGRESS
    followed = project("logs", "--follow", "--container", "model-download", timeout=30)  # ends with the container
    assert followed.returncode == 0 and followed.stdout.splitlines() == PROGRESS


def test_logs_previous_instance(project, kube) -> None:
    kube.script(ENDPOINT_PODS, Scenario.crash_loop(lines=["RuntimeError: first crash"], restarts=1))
    assert run_deploy(project).returncode == 1
    previous = project("logs", "--previous")
    assert previous.returncode == 0, previous.stderr
    assert "RuntimeError: first crash" in previous.stdout


def test_logs_without_pods(project) -> None:
    done = project("logs")
    assert done.returncode == 1
    assert "no pods of vllm/vllm-llama" in done.stderr


def test_endpoint_port_forwards_the_cluster_exposure_until_ctrl_c(project, kube, stub_endpoint) -> None:
    """`llmctl endpoint`: how a `cluster` exposure is used from a laptop; the key is still needed."""
    import selectors
    import signal
    import subprocess
    import sys
    import urllib.request

    kube.script(ENDPOINT_PODS, Scenario.success(download_lines=PROGRESS, main_lines=MAIN_LINES))
    assert run_deploy(project).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "llmctl", "endpoint"], cwd=project.cwd, env=project.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=120), "llmctl endpoint printed no URL"
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else url
        body = json.dumps({"model": "llama-2-7b", "prompt": "hi", "max_tokens": 2}).encode()
        request = urllib.request.Request(f"{url}/v1/completions", data=body, method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": "Bearer k"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        assert stub_endpoint.requests[-1]["auth"] == "Bearer k"  # the request reached the pod's port
        assert proc.poll() is None, "forwarding goes on until Ctrl-C"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert "Ctrl-C to stop" in proc.stderr.read()
    assert kube.requests_matching("GET", "/portforward")[-1].status == 101


def test_bench_reaches_a_cluster_exposure_through_a_port_forward(project, kube, stub_endpoint) -> None:
    from llmctl.actions.bench_target import resolve_target
    from llmctl.config import LlmctlConfig, Names
    from llmctl.k8s.client import Kube

    kube.script(ENDPOINT_PODS, Scenario.success(download_lines=PROGRESS, main_lines=MAIN_LINES))
    assert run_deploy(project).returncode == 0
    cfg = LlmctlConfig.model_validate({"model": {"bucket": "llama-models"},
                                       "server": {"port": stub_endpoint.port, "metrics_port": stub_endpoint.metrics_port}})
    client = Kube.from_kubeconfig(str(kube.kubeconfig_path))
    target = resolve_target(None, None, local=None, config_loader=lambda: cfg,
                            names_loader=lambda: Names.from_config(cfg), kube_factory=lambda: client)
    try:
        assert target.source == "cluster" and target.base_url.startswith("http://127.0.0.1:")
        assert target.api_key  # from the Secret
        import urllib.request

        # the cross-check reads the pod's metrics port through a second port-forward
        assert target.metrics_url.startswith("http://127.0.0.1:") and target.metrics_url != target.base_url
        with urllib.request.urlopen(f"{target.metrics_url}/metrics", timeout=30) as response:
            assert b"vllm_model_loaded" in response.read()
    finally:
        target.close()
    assert target.forward is None and target.metrics_forward is None
    forwarded = {r.query.get("ports") for r in kube.requests_matching("GET", "/portforward")}
    assert {str(stub_endpoint.port), str(stub_endpoint.metrics_port)} <= forwarded, forwarded


ZERO = ("  autoscaling:\n    enabled: true\n    max_replicas: 1\n    idle_minutes: 10\n")


def test_status_says_scaled_to_zero_and_how_it_wakes(project, kube, stub_endpoint) -> None:
    """KEDA took the replicas to zero: status says since when and that a request wakes it, not an error."""
    import kubernetes

    from tests.cli.deploy.conftest import config_text

    kube.install_keda(http_add_on=True)
    project.write_config(config_text(stub_endpoint.port, extra=ZERO))
    kube.script(ENDPOINT_PODS, Scenario.success(download_lines=PROGRESS, main_lines=MAIN_LINES))
    assert run_deploy(project).returncode == 0
    state = json.loads((project.cwd / ".llmctl" / "llama.json").read_text())
    assert state["cold_start_s"] > 0  # the deploy measured its cold start
    # what KEDA does after the idle time: the Deployment to zero, its last activity on the ScaledObject
    client = kube.api_client()
    (deployment,) = kube.list("apps/v1", "Deployment", "vllm", ENDPOINT_PODS)  # the serving revision's
    kubernetes.client.AppsV1Api(client).patch_namespaced_deployment(deployment["metadata"]["name"], "vllm",
                                                                    {"spec": {"replicas": 0}})
    kubernetes.client.CustomObjectsApi(client).patch_namespaced_custom_object(
        "keda.sh", "v1alpha1", "vllm", "scaledobjects", "vllm-llama", {"status": {"lastActiveTime": "2026-08-20T17:53:42Z"}})
    kube.wait_for(lambda: not [p for p in kube.list("v1", "Pod", "vllm", ENDPOINT_PODS)
                               if not p["metadata"].get("deletionTimestamp")], 10)
    data = json.loads(project("status", "--output", "json", check=True).stdout)
    zero = data["scaled_to_zero"]
    assert zero == {"idle_since": "2026-08-20T17:53:42Z", "wakes_on_request": True,
                    "wake_s": round(state["cold_start_s"]), "wake_measured": True,
                    "host": "vllm-llama.vllm.svc.cluster.local",  # the Host the interceptor routes
                    "hold_s": 450,  # how long it holds: the first deploy rendered 1.5 x the assumed 300 s
                    "wake_url": "http://vllm-llama-wake.vllm.svc.cluster.local:8080"}  # exposure cluster
    text = project("status", check=True).stdout
    assert (f"vllm/vllm-llama: scaled to zero, idle since 2026-08-20T17:53:42Z, wakes on request (about "
            f"{round(state['cold_start_s'])} s)") in text
    assert "wake:     pods in the cluster call http://vllm-llama-wake.vllm.svc.cluster.local:8080" in text
