"""llmctl's Kubernetes adapter against the Kubernetes double, through the real client and a kubeconfig."""

from __future__ import annotations

import json

import pytest

from llmctl.errors import LlmctlError
from llmctl.k8s.apply import ApplyResult
from llmctl.k8s.client import Kube, KubeApiError
from tests.fixtures.kube import PROMETHEUS_OPERATOR_CRDS, Scenario, Step

NS = "vllm"


def namespace(name: str = NS) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def deployment(replicas: int = 1) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "vllm-llama", "namespace": NS, "labels": {"app.kubernetes.io/managed-by": "llmctl"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "vllm-llama"}},
                 "template": {"metadata": {"labels": {"app": "vllm-llama"}}, "spec": {
                     "initContainers": [{"name": "model-download", "image": "img@sha256:1"}],
                     "containers": [{"name": "vllm", "image": "img@sha256:1",
                                     "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}},
    }


def config_map(name: str, data: dict, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS, "labels": labels or {}}, "data": data}


@pytest.fixture
def k(kube):
    return Kube.from_kubeconfig(str(kube.kubeconfig_path))


def test_from_kubeconfig_uses_the_context_and_reports_the_version(kube):
    kube_client = Kube.from_kubeconfig(str(kube.kubeconfig_path), context=kube.context)
    assert kube_client.server_version() == "v1.31.0-eks-double"
    assert kube.requests_matching("GET", "/version")


def test_from_kubeconfig_reports_a_missing_file(tmp_path):
    with pytest.raises(LlmctlError) as exc:
        Kube.from_kubeconfig(str(tmp_path / "nope"))
    assert "cannot load Kubernetes credentials" in exc.value.message and exc.value.hint


def test_apply_reports_created_updated_unchanged(k, kube):
    assert k.apply(namespace()) == ApplyResult("Namespace", None, NS, "created")
    assert k.apply(config_map("env", {"A": "1"})) == ApplyResult("ConfigMap", NS, "env", "created")
    assert k.apply(config_map("env", {"A": "1"})).action == "unchanged"
    assert k.apply(config_map("env", {"A": "2"})).action == "updated"
    assert k.get("v1", "ConfigMap", "env", NS)["data"] == {"A": "2"}
    applies = [r for r in kube.requests_matching("PATCH") if r.content_type == "application/apply-patch+yaml"]
    assert {r.field_manager for r in applies} == {"llmctl"} and all(r.query["force"] == "true" for r in applies)


def test_apply_dry_run_changes_nothing_and_still_reports_the_action(k, kube):
    k.apply(namespace())
    assert k.apply(config_map("env", {"A": "1"}), dry_run=True).action == "created"
    assert kube.get("v1", "ConfigMap", "env", NS) is None
    k.apply(config_map("env", {"A": "1"}))
    assert k.apply(config_map("env", {"A": "1"}), dry_run=True).action == "unchanged"
    assert k.apply(config_map("env", {"A": "9"}), dry_run=True).action == "updated"
    assert kube.get("v1", "ConfigMap", "env", NS)["data"] == {"A": "1"}


def test_apply_all_orders_dependencies_and_a_second_run_is_unchanged(k, kube):
    smon = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": "vllm", "namespace": NS}, "spec": {"endpoints": [{"port": "http"}]}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "vllm", "namespace": NS},
           "spec": {"selector": {"app": "vllm-llama"}, "ports": [{"port": 8000}]}}
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "vllm-sa", "namespace": NS}}
    objs = [smon, deployment(), svc, sa, namespace(), PROMETHEUS_OPERATOR_CRDS[0]]
    results = k.apply_all(objs)
    assert [r.kind for r in results] == ["CustomResourceDefinition", "Namespace", "ServiceAccount", "Service",
                                         "Deployment", "ServiceMonitor"]
    assert {r.action for r in results} == {"created"}
    kube.wait_for(lambda: kube.get("apps/v1", "Deployment", "vllm-llama", NS).get("status", {}).get("readyReplicas"))
    assert {r.action for r in k.apply_all(objs)} == {"unchanged"}


def test_apply_all_dry_run_into_a_new_namespace_and_a_new_kind(k, kube):
    smon = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": "vllm", "namespace": "default"}, "spec": {}}
    results = k.apply_all([smon, deployment(), namespace(), PROMETHEUS_OPERATOR_CRDS[0]], dry_run=True)
    assert [(r.kind, r.action) for r in results] == [("CustomResourceDefinition", "created"),
                                                     ("Namespace", "created"), ("Deployment", "created"),
                                                     ("ServiceMonitor", "created")]
    assert kube.get("v1", "Namespace", NS) is None and not k.has_kind("monitoring.coreos.com/v1", "ServiceMonitor")


def test_invalid_object_becomes_an_llmctl_error(k):
    k.apply(namespace())
    with pytest.raises(KubeApiError) as exc:
        k.apply(config_map("Not_Valid", {}))
    assert exc.value.status == 422 and exc.value.reason == "Invalid"
    assert "is invalid" in exc.value.message and exc.value.hint


def test_unknown_kind_is_an_llmctl_error(k):
    with pytest.raises(LlmctlError) as exc:
        k.list("keda.sh/v1alpha1", "ScaledObject", NS)
    assert "does not serve ScaledObject" in exc.value.message


def test_get_list_by_selector_and_fill_kind(k):
    k.apply(namespace())
    k.apply(config_map("a", {}, {"role": "env", "app.kubernetes.io/instance": "x"}))
    k.apply(config_map("b", {}, {"role": "dash"}))
    assert k.get("v1", "ConfigMap", "missing", NS) is None
    items = k.list("v1", "ConfigMap", NS, label_selector="role in (env,other)")
    assert [(i["kind"], i["apiVersion"], i["metadata"]["name"]) for i in items] == [("ConfigMap", "v1", "a")]
    assert [i["metadata"]["name"] for i in k.list("v1", "ConfigMap", NS, field_selector="metadata.name=b")] == ["b"]
    assert [i["metadata"]["name"] for i in k.list("v1", "ConfigMap", label_selector="app.kubernetes.io/instance")] \
        == ["a"]


def test_watch_until_the_pod_is_ready(k, kube):
    kube.script("vllm-llama", Scenario.success(download_lines=['{"bytes": 1}']))
    k.apply_all([namespace(), deployment()])
    phases = []
    for type_, pod in k.watch("v1", "Pod", NS, label_selector="app=vllm-llama", timeout_s=10):
        phases.append((type_, pod["status"].get("phase")))
        if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or []):
            break
    else:
        pytest.fail("the watch ended before the pod became ready")
    assert phases[-1] == ("MODIFIED", "Running")


def test_watch_ends_at_its_timeout(k):
    events = list(k.watch("v1", "ConfigMap", "default", timeout_s=0.5))
    assert events == []


def test_pod_logs_follow_and_previous(k, kube):
    lines = [json.dumps({"event": "progress", "bytes": i}) for i in range(20)]
    kube.script("vllm-llama", Scenario.crash_loop(lines=["boom"], restarts=1, download_lines=lines))
    k.apply_all([namespace(), deployment()])
    pod = kube.wait_for(lambda: next(iter(kube.list("v1", "Pod", NS)), None))
    name = pod["metadata"]["name"]
    kube.wait_for(lambda: kube.pod_logs(NS, name, "model-download"))
    assert list(k.pod_logs(name, NS, container="model-download", follow=True)) == lines
    assert list(k.pod_logs(name, NS, container="model-download", tail_lines=2)) == lines[-2:]
    kube.wait_for(lambda: (kube.get("v1", "Pod", name, NS)["status"].get("containerStatuses") or [{}])[0]
                  .get("restartCount"))
    assert list(k.pod_logs(name, NS, container="vllm", previous=True)) == ["boom"]
    with pytest.raises(KubeApiError) as exc:
        list(k.pod_logs(name, NS, container="model-download", previous=True))
    assert exc.value.status == 400


def test_events_for_an_object_oldest_first(k, kube):
    kube.script("vllm-llama", Scenario.unschedulable())
    k.apply_all([namespace(), deployment()])
    pod = kube.wait_for(lambda: next(iter(kube.list("v1", "Pod", NS)), None))
    events = kube.wait_for(lambda: k.events(NS, pod["metadata"]["name"]))
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "FailedScheduling")]
    assert "Insufficient nvidia.com/gpu" in events[0]["message"]
    assert {e["involvedObject"]["kind"] for e in k.events(NS)} >= {"Pod", "ReplicaSet", "Deployment"}


def test_delete_is_idempotent_and_can_wait(k, kube):
    k.apply_all([namespace(), deployment()])
    kube.wait_for(lambda: kube.list("v1", "Pod", NS))
    assert k.delete("apps/v1", "Deployment", "vllm-llama", NS) is True
    assert k.delete("apps/v1", "Deployment", "vllm-llama", NS) is False
    kube.wait_for(lambda: not kube.list("v1", "Pod", NS))
    kube.on_load_balancer()
    k.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "vllm", "namespace": NS},
             "spec": {"type": "LoadBalancer", "ports": [{"port": 8000}]}})
    kube.wait_for(lambda: kube.get("v1", "Service", "vllm", NS)["status"]["loadBalancer"].get("ingress"))
    kube.lb_delay = 0.3  # the cloud controller takes a moment to remove the load balancer
    assert k.delete("v1", "Service", "vllm", NS, wait=True, timeout_s=5) is True
    assert kube.get("v1", "Service", "vllm", NS) is None
    assert k.delete("v1", "Namespace", NS, wait=True, timeout_s=5) is True
    assert kube.get("v1", "Namespace", NS) is None


def test_delete_wait_times_out_with_a_hint(k, kube):
    k.apply(namespace())
    k.apply({**config_map("held", {}), "metadata": {"name": "held", "namespace": NS,
                                                     "finalizers": ["example.com/hold"]}})
    with pytest.raises(LlmctlError) as exc:
        k.delete("v1", "ConfigMap", "held", NS, wait=True, timeout_s=0.5)
    assert "timed out" in exc.value.message and "finalizer" in exc.value.hint


def test_has_kind_before_and_after_the_crd(k, kube):
    assert k.has_kind("apps/v1", "Deployment")
    assert not k.has_kind("monitoring.coreos.com/v1", "ServiceMonitor")
    kube.install_prometheus_operator()
    assert k.has_kind("monitoring.coreos.com/v1", "ServiceMonitor")
    assert not k.has_kind("keda.sh/v1alpha1", "ScaledObject")
    k.apply(__import__("tests.fixtures.kube", fromlist=["KEDA_CRDS"]).KEDA_CRDS[0])
    assert k.has_kind("keda.sh/v1alpha1", "ScaledObject")


def test_unreachable_cluster_is_an_llmctl_error(tmp_path):
    from tests.fixtures.kube import write_kubeconfig

    path = write_kubeconfig(tmp_path / "config", "http://127.0.0.1:9", "token")
    k = Kube.from_kubeconfig(str(path))
    k._api.configuration.retries = 0
    with pytest.raises(LlmctlError) as exc:
        k.server_version()
    assert "cannot reach the Kubernetes API" in exc.value.message


def test_close_streams_ends_a_blocked_watch_and_log_follow(k, kube):
    import threading

    kube.script("vllm-llama", Scenario([Step.schedule(), Step.pull("init"), Step.start("init"),
                                        Step.log("init", ["downloading"])]))
    k.apply_all([namespace(), deployment()])
    pod = kube.wait_for(lambda: next(iter(kube.list("v1", "Pod", NS)), None))
    name = pod["metadata"]["name"]
    kube.wait_for(lambda: kube.pod_logs(NS, name, "model-download"))  # the init container runs, never ends
    seen: dict[str, list] = {"watch": [], "logs": []}

    def watch() -> None:
        seen["watch"] = [t for t, _ in k.watch("v1", "ConfigMap", "default", timeout_s=60)]

    def logs() -> None:
        for line in k.pod_logs(name, NS, container="model-download", follow=True):
            seen["logs"].append(line)

    threads = [threading.Thread(target=watch), threading.Thread(target=logs)]
    for t in threads:
        t.start()
    # Close only once both streams are open and the follow has delivered the line already logged.
    kube.wait_for(lambda: len(k._streams) == 2 and seen["logs"])
    k.close_streams()
    for t in threads:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in threads)
    assert seen == {"watch": [], "logs": ["downloading"]}


def test_watch_restarts_from_now_when_its_resource_version_expired(k, kube):
    k.apply(namespace())
    first = k.apply(config_map("cm-0", {}))
    old_rv = kube.get("v1", "ConfigMap", "cm-0", NS)["metadata"]["resourceVersion"]
    kube.store.history_limit = 2
    for i in range(1, 4):
        k.apply(config_map(f"cm-{i}", {}))
    events = list(k.watch("v1", "ConfigMap", NS, timeout_s=1, resource_version=old_rv))
    assert first.action == "created"
    assert sorted(o["metadata"]["name"] for t, o in events if t == "ADDED") == ["cm-0", "cm-1", "cm-2", "cm-3"]
