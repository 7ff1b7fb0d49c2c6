"""`llmctl monitoring up|down|render` and `llmctl dashboard`, run as a user does, against the
Kubernetes API double."""

from __future__ import annotations

import base64
import json
import sys
import textwrap

import yaml

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


FAKE_KUBECTL = textwrap.dedent("""\
    #!{python}
    # Stands in for `kubectl port-forward`: records its arguments, announces a port, exits.
    import json, sys, time
    open({record!r}, "w").write(json.dumps(sys.argv[1:]))
    print("Forwarding from 127.0.0.1:45678 -> 3000", flush=True)
    time.sleep(0.5)
""")


def test_dashboard_port_forwards_grafana(llmctl, kube, tmp_path):
    setup(llmctl, kube)
    llmctl("monitoring", "up", check=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "kubectl-args.json"
    fake = bin_dir / "kubectl"
    fake.write_text(FAKE_KUBECTL.format(python=sys.executable, record=str(record)))
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{llmctl.env['PATH']}"}
    done = llmctl("dashboard", "--no-browser", "--show-password", env=env, check=True)
    assert done.stdout.strip() == "http://127.0.0.1:45678"
    assert f"login: admin / {admin_password(kube)}" in done.stderr
    args = json.loads(record.read_text())
    assert args[:6] == ["port-forward", "--address", "127.0.0.1", "-n", "monitoring", "svc/demo-grafana"]
    assert args[6] == ":80"

    llmctl("dashboard", "--prometheus", "--port", "9999", "--no-browser", env=env, check=True)
    args = json.loads(record.read_text())
    assert args[5:7] == ["svc/demo-prometheus", "9999:9090"]


def test_dashboard_without_stack_points_to_up(llmctl, kube):
    setup(llmctl, kube)
    done = llmctl("dashboard", "--no-browser")
    assert done.returncode == 1
    assert "no Grafana Service in namespace monitoring" in done.stderr


def test_dashboard_reports_a_failed_port_forward(llmctl, kube, tmp_path):
    setup(llmctl, kube)
    llmctl("monitoring", "up", check=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.stderr.write('error: no ready pods for svc/demo-grafana\\n')\nsys.exit(1)\n")
    fake.chmod(0o755)
    done = llmctl("dashboard", "--no-browser", env={"PATH": f"{bin_dir}:{llmctl.env['PATH']}"})
    assert done.returncode == 1
    assert "kubectl port-forward failed: error: no ready pods for svc/demo-grafana" in done.stderr
