"""`llmctl monitoring up|down|render` and `llmctl dashboard`, run as a user does, against the
Kubernetes API double."""

from __future__ import annotations

import base64
import http.client
import json
import re
import selectors
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
import yaml

from llmctl.k8s.client import Kube

SELECTOR = "app.kubernetes.io/managed-by=llmctl,app.kubernetes.io/instance=demo"
CONFIG = "project:\n  name: demo\n"


def setup(llmctl, kube, config: str = CONFIG):
    llmctl.write_config(config)
    llmctl.env["KUBECONFIG"] = str(kube.kubeconfig_path)
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vllm"}})


def owned(kube, api_version: str, kind: str, namespace: str) -> set[str]:
    return {o["metadata"]["name"] for o in kube.list(api_version, kind, namespace, label_selector=SELECTOR)}


def admin_password(kube) -> str:
    secret = kube.get("v1", "Secret", "demo-grafana-admin", "monitoring")
    return base64.b64decode(secret["data"]["admin-password"]).decode()


def test_up_self_contained_then_rerun_then_down(llmctl, kube):
    setup(llmctl, kube)
    done = llmctl("monitoring", "up", "-o", "json", check=True)
    data = json.loads(done.stdout)
    assert data["mode"] == "self-contained"
    assert {o["action"] for o in data["objects"]} == {"created"}
    assert owned(kube, "apps/v1", "StatefulSet", "monitoring") == {"demo-prometheus"}
    assert owned(kube, "apps/v1", "Deployment", "monitoring") == {"demo-grafana", "demo-alertmanager"}
    assert owned(kube, "rbac.authorization.k8s.io/v1", "Role", "vllm") == {"demo-prometheus-discovery"}
    services = kube.list("v1", "Service", "monitoring", label_selector=SELECTOR)
    assert {s["spec"]["type"] for s in services} == {"ClusterIP"}
    password = admin_password(kube)
    assert len(password) >= 24

    again = json.loads(llmctl("monitoring", "up", "-o", "json", check=True).stdout)
    assert {o["action"] for o in again["objects"]} == {"unchanged"}
    assert admin_password(kube) == password, "a re-run must not rotate the Grafana password"

    down = json.loads(llmctl("monitoring", "down", "-o", "json", check=True).stdout)
    assert {o["action"] for o in down["objects"]} == {"deleted"}
    for api_version, kind, ns in [("apps/v1", "StatefulSet", "monitoring"), ("apps/v1", "Deployment", "monitoring"),
                                  ("v1", "Service", "monitoring"), ("v1", "ConfigMap", "monitoring"),
                                  ("v1", "Secret", "monitoring"), ("rbac.authorization.k8s.io/v1", "Role", "vllm")]:
        assert kube.wait_for(lambda a=api_version, k=kind, n=ns: not owned(kube, a, k, n), timeout=10), kind
    # nothing of the endpoint itself is touched
    assert kube.get("v1", "Namespace", "vllm") is not None


def test_dry_run_changes_nothing(llmctl, kube):
    setup(llmctl, kube)
    done = llmctl("monitoring", "up", "--dry-run", "-o", "json", check=True)
    assert json.loads(done.stdout)["objects"]
    assert not owned(kube, "apps/v1", "Deployment", "monitoring")


def test_up_prunes_what_config_no_longer_wants(llmctl, kube):
    setup(llmctl, kube, CONFIG + "monitoring:\n  dcgm: true\n")
    llmctl("monitoring", "up", check=True)
    assert owned(kube, "apps/v1", "DaemonSet", "monitoring") == {"demo-dcgm-exporter"}
    llmctl.write_config(CONFIG)
    done = json.loads(llmctl("monitoring", "up", "-o", "json", check=True).stdout)
    assert {"kind": "DaemonSet", "name": "demo-dcgm-exporter", "namespace": "monitoring", "action": "deleted"} in done["objects"]


def test_operator_mode_when_its_crds_exist(llmctl, kube):
    setup(llmctl, kube)
    kube.install_prometheus_operator()
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}})
    kube.create({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": "kps-prometheus", "namespace": "monitoring"},
        "spec": {"serviceMonitorSelector": {"matchLabels": {"release": "kps"}},
                 "ruleSelector": {"matchLabels": {"release": "kps"}}},
    })
    data = json.loads(llmctl("monitoring", "up", "-o", "json", check=True).stdout)
    assert data["mode"] == "operator"
    assert {(o["kind"], o["name"]) for o in data["objects"]} == {
        ("ServiceMonitor", "vllm-demo"), ("PrometheusRule", "vllm-demo"), ("ConfigMap", "vllm-demo-dashboards")}
    monitor = kube.get("monitoring.coreos.com/v1", "ServiceMonitor", "vllm-demo", "monitoring")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"
    board = kube.get("v1", "ConfigMap", "vllm-demo-dashboards", "monitoring")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert not owned(kube, "apps/v1", "Deployment", "monitoring")

    llmctl("monitoring", "down", check=True)
    assert kube.wait_for(lambda: not owned(kube, "monitoring.coreos.com/v1", "ServiceMonitor", "monitoring"), timeout=10)
    assert kube.wait_for(lambda: not owned(kube, "monitoring.coreos.com/v1", "PrometheusRule", "monitoring"), timeout=10)


def test_missing_alert_secret_fails_with_the_fix(llmctl, kube):
    setup(llmctl, kube, CONFIG + "monitoring:\n  alertmanager:\n    slack_webhook_secret: slack-hook\n")
    done = llmctl("monitoring", "up")
    assert done.returncode == 1
    assert "Secret slack-hook with key `url`" in done.stderr
    assert "kubectl -n monitoring create secret generic slack-hook" in done.stderr
    assert not owned(kube, "apps/v1", "Deployment", "monitoring")


def test_up_before_deploy_says_so(llmctl, kube):
    llmctl.write_config(CONFIG)
    llmctl.env["KUBECONFIG"] = str(kube.kubeconfig_path)
    done = llmctl("monitoring", "up")
    assert done.returncode == 1
    assert "namespace vllm of the endpoint does not exist" in done.stderr


def test_render_needs_no_cluster(llmctl):
    llmctl.write_config(CONFIG)
    done = llmctl("monitoring", "render", check=True)
    kinds = [d["kind"] for d in yaml.safe_load_all(done.stdout) if d]
    assert "StatefulSet" in kinds and "Secret" not in kinds
    done = llmctl("monitoring", "render", "--mode", "operator", check=True)
    assert [d["kind"] for d in yaml.safe_load_all(done.stdout) if d] == ["ServiceMonitor", "PrometheusRule", "ConfigMap"]
    assert llmctl("monitoring", "render", "--mode", "sideways").returncode == 2


@contextmanager
def running_dashboard(llmctl, *args: str):
    """`llmctl dashboard ...` as a user runs it: yields (process, the URL it printed); Ctrl-C at the end."""
    proc = subprocess.Popen([sys.executable, "-m", "llmctl", "dashboard", *args], cwd=llmctl.cwd, env=llmctl.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=120):
                raise AssertionError("llmctl dashboard printed no URL within 120 s")
        url = proc.stdout.readline().strip()
        if not url:
            raise AssertionError(f"llmctl dashboard exited {proc.wait(30)}: {proc.stderr.read()}")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def ui_pod(kube, component: str) -> str:
    """The name of the stack's ready pod of `component` (grafana, prometheus)."""
    def ready():
        for pod in kube.list("v1", "Pod", "monitoring", f"app.kubernetes.io/name={component}"):
            if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or []):
                return pod["metadata"]["name"]
        return None
    return kube.wait_for(ready, timeout=30)


def test_dashboard_port_forwards_grafana_until_ctrl_c(llmctl, kube, upstream_http):
    setup(llmctl, kube)
    llmctl("monitoring", "up", check=True)
    ui_pod(kube, "grafana")
    kube.expose("demo-grafana", 3000, upstream_http.address)  # Grafana's container port, as a real server
    with running_dashboard(llmctl, "--no-browser", "--show-password") as (proc, url):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        with urllib.request.urlopen(f"{url}/hello", timeout=30) as resp:
            assert resp.read() == b"hello from upstream"
        assert proc.poll() is None, "the dashboard keeps forwarding until Ctrl-C"
    assert proc.returncode == 0
    stderr = proc.stderr.read()
    assert f"login: admin / {admin_password(kube)}" in stderr
    assert "forwarding; Ctrl-C to stop" in stderr and "warning" not in stderr
    assert kube.requests_matching("GET", "/portforward")[-1].status == 101


def test_dashboard_prometheus_on_a_chosen_port(llmctl, kube, upstream_http):
    setup(llmctl, kube)
    llmctl("monitoring", "up", check=True)
    ui_pod(kube, "prometheus")
    kube.expose("demo-prometheus", 9090, upstream_http.address)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with running_dashboard(llmctl, "--prometheus", "--port", str(port), "--no-browser") as (proc, url):
        assert url == f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{url}/hello", timeout=30) as resp:
            assert resp.read() == b"hello from upstream"
    assert proc.returncode == 0
    assert "login" not in proc.stderr.read()


def test_dashboard_warns_on_a_refused_connection_and_stops_when_the_pod_goes(llmctl, kube):
    setup(llmctl, kube)
    llmctl("monitoring", "up", check=True)
    pod = ui_pod(kube, "grafana")  # running, but nothing exposed: Grafana does not listen (yet)
    with running_dashboard(llmctl, "--no-browser") as (proc, url):
        with pytest.raises((urllib.error.URLError, http.client.RemoteDisconnected, ConnectionResetError)):
            urllib.request.urlopen(f"{url}/", timeout=30)
        Kube.from_kubeconfig(str(kube.kubeconfig_path)).delete("v1", "Pod", pod, "monitoring")
        assert proc.wait(timeout=30) == 1
    stderr = " ".join(proc.stderr.read().split())  # rich wraps warnings at COLUMNS
    assert f"warning: pod monitoring/{pod}: nothing listens on port 3000 (connection refused); fix: " in stderr
    assert f"error: pod monitoring/{pod} does not exist" in stderr
    assert "Traceback" not in stderr


def test_dashboard_without_stack_points_to_up(llmctl, kube):
    setup(llmctl, kube)
    done = llmctl("dashboard", "--no-browser")
    assert done.returncode == 1
    assert "no Grafana Service in namespace monitoring" in done.stderr
