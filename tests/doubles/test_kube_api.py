"""The Kubernetes double behaves like an API server for the real `kubernetes` client."""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from tests.doubles.kube import DEFAULT_NODE, PROMETHEUS_OPERATOR_CRDS, KubeDouble, Scenario, Step

NS = "vllm"


def deployment(name: str = "vllm-llama", replicas: int = 1, image: str = "123.dkr.ecr/vllm@sha256:abc",
               gpu: int = 1) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/instance": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {
                     "initContainers": [{"name": "model-download", "image": image}],
                     "containers": [{"name": "vllm", "image": image,
                                     "resources": {"limits": {"nvidia.com/gpu": gpu}}}],
                     "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}}},
    }


@pytest.fixture
def dyn(kube_api_client, tmp_path):
    return DynamicClient(kube_api_client, cache_file=str(tmp_path / "discovery.json"))


@pytest.fixture
def core(kube_api_client):
    return client.CoreV1Api(kube_api_client)


@pytest.fixture
def ns(core):
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return NS


def apply(dyn, obj: dict):
    res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    return res.server_side_apply(body=obj, field_manager="llmctl", force_conflicts=True)


def is_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def only_pod(kube, name="vllm-llama"):
    return kube.wait_for(lambda: next(iter(kube.list("v1", "Pod", NS, f"app={name}")), None))


def test_watch_sees_scripted_pod_become_ready(kube, dyn, core, ns):
    lines = [json.dumps({"event": "progress", "bytes": i * 10, "total": 30}) for i in range(1, 4)]
    kube.script("vllm-llama", Scenario.success(download_lines=lines, main_lines=["INFO loading"]))
    apply(dyn, deployment())
    seen = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_pod, NS, label_selector="app=vllm-llama", timeout_seconds=10):
        pod = event["object"]
        seen.append((event["type"], pod.status.phase))
        if is_ready(pod):
            w.stop()
    assert seen[0][0] == "ADDED" and seen[-1] == ("MODIFIED", "Running")
    pod = only_pod(kube)
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert pod["spec"]["nodeName"] == DEFAULT_NODE
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    log = core.read_namespaced_pod_log(pod["metadata"]["name"], NS, container="model-download")
    assert log.splitlines() == lines
    reasons = [e["reason"] for e in sorted(kube.events(NS, pod["metadata"]["name"]),
                                           key=lambda e: e["metadata"]["resourceVersion"])]
    assert reasons[:4] == ["Scheduled", "Pulling", "Pulled", "Created"]
    dep = kube.wait_for(lambda: (d := kube.get("apps/v1", "Deployment", "vllm-llama", NS)).get("status", {}).get(
        "readyReplicas") and d)
    assert dep["status"]["availableReplicas"] == 1 and dep["status"]["updatedReplicas"] == 1
    assert dep["status"]["observedGeneration"] == 1
    assert {c["type"]: c["reason"] for c in dep["status"]["conditions"]} == {
        "Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}


def test_server_side_apply_creates_updates_and_a_repeat_changes_nothing(kube, dyn, ns):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "env", "namespace": NS,
                                                                "labels": {"a": "1"}},
          "data": {"MAX_MODEL_LEN": "512", "DTYPE": "float16"}}
    created = apply(dyn, cm)
    patches = kube.requests_matching("PATCH", "/configmaps/env")
    assert patches[-1].status == 201 and patches[-1].content_type == "application/apply-patch+yaml"
    assert patches[-1].field_manager == "llmctl" and patches[-1].query["force"] == "true"
    assert [f["manager"] for f in created.metadata.managedFields] == ["llmctl"]
    again = apply(dyn, cm)
    assert kube.requests_matching("PATCH", "/configmaps/env")[-1].status == 200
    assert again.metadata.resourceVersion == created.metadata.resourceVersion
    changed = apply(dyn, {**cm, "data": {"MAX_MODEL_LEN": "1024"}})
    assert changed.metadata.resourceVersion != created.metadata.resourceVersion
    assert changed.data.to_dict() == {"MAX_MODEL_LEN": "1024"}  # a field no longer applied is removed

    dep = apply(dyn, deployment())
    assert dep.metadata.generation == 1
    bigger = apply(dyn, deployment(replicas=2))
    assert bigger.metadata.generation == 2 and bigger.spec.replicas == 2
    assert kube.wait_for(lambda: len(kube.list("v1", "Pod", NS, "app=vllm-llama")) == 2)


def test_noop_apply_keeps_resource_version_of_a_settled_deployment(kube, dyn, ns):
    apply(dyn, deployment())
    kube.wait_for(lambda: kube.get("apps/v1", "Deployment", "vllm-llama", NS).get("status", {}).get("readyReplicas"))
    time.sleep(0.1)
    before = kube.get("apps/v1", "Deployment", "vllm-llama", NS)["metadata"]
    after = apply(dyn, deployment()).metadata
    assert (after.resourceVersion, after.generation) == (before["resourceVersion"], before["generation"])


def test_create_replace_patch_and_error_statuses(kube, core, ns):
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-key"}, "stringData": {"k": "v"}}
    core.create_namespaced_secret(NS, body)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_secret(NS, body)
    status = json.loads(exc.value.body)
    assert (exc.value.status, status["kind"], status["reason"], status["code"]) == (409, "Status", "AlreadyExists",
                                                                                    409)
    assert status["message"] == 'secrets "api-key" already exists'
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_secret("missing", NS)
    assert exc.value.status == 404 and json.loads(exc.value.body)["message"] == 'secrets "missing" not found'
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": "Bad_Name"}})
    assert exc.value.status == 422 and json.loads(exc.value.body)["reason"] == "Invalid"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nowhere", {"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": "x"}})
    assert exc.value.status == 404 and json.loads(exc.value.body)["message"] == 'namespaces "nowhere" not found'
    current = kube.get("v1", "Secret", "api-key", NS)
    current["metadata"]["labels"] = {"x": "y"}
    replaced = core.replace_namespaced_secret("api-key", NS, current)
    assert replaced.metadata.labels == {"x": "y"}
    with pytest.raises(ApiException) as exc:  # the resourceVersion it carried is now stale
        core.replace_namespaced_secret("api-key", NS, current)
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "Conflict"
    patched = core.patch_namespaced_secret("api-key", NS, {"metadata": {"labels": {"x": None, "z": "1"}}})
    assert patched.metadata.labels == {"z": "1"}


def test_label_and_field_selectors_filter(kube, core, ns):
    for name, labels in [("a", {"tier": "gpu", "env": "prod"}), ("b", {"tier": "cpu", "env": "dev"}),
                         ("c", {"tier": "gpu"})]:
        core.create_namespaced_config_map(NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": name, "labels": labels}})

    def names(**kw):
        return [i.metadata.name for i in core.list_namespaced_config_map(NS, **kw).items]

    assert names(label_selector="tier=gpu") == ["a", "c"]
    assert names(label_selector="tier!=gpu") == ["b"]
    assert names(label_selector="env in (prod,dev),tier==gpu") == ["a"]
    assert names(label_selector="env notin (prod)") == ["b", "c"]
    assert names(label_selector="env") == ["a", "b"]
    assert names(label_selector="!env") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b", label_selector="tier") == ["a", "c"]
    assert [i.metadata.name for i in core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={NS}").items] == ["a", "b", "c"]
    with pytest.raises(ApiException) as exc:
        names(label_selector="tier in gpu")
    assert exc.value.status == 400


def test_logs_follow_streams_lines_as_the_container_writes_them(kube, dyn, core, ns):
    lines = [f"line {i}" for i in range(5)]
    kube.script("vllm-llama", Scenario([Step.schedule(), Step.pull("init"), Step.start("init"),
                                        [Step(lambda sim, ln=ln: sim.log("init", ln), 0.1) for ln in lines],
                                        Step.exit("init", 0), Step.start("main"), Step.ready("main")]))
    apply(dyn, deployment())
    pod = kube.wait_for(lambda: next((p for p in kube.list("v1", "Pod", NS)
                                      if kube.pod_logs(NS, p["metadata"]["name"], "model-download")), None))
    name = pod["metadata"]["name"]
    received = []
    for line in watch.Watch().stream(core.read_namespaced_pod_log, name, NS, container="model-download"):
        received.append((line, len(kube.pod_logs(NS, name, "model-download")[0])))
    assert [line for line, _ in received] == lines
    assert received[0][1] < len(lines)  # the first line arrived before the container wrote the last
    assert core.read_namespaced_pod_log(name, NS, container="model-download", tail_lines=2) == "line 3\nline 4\n"
    _wait_pod(kube, lambda p: "running" in ((p["status"].get("containerStatuses") or [{}])[0].get("state") or {}))
    assert core.read_namespaced_pod_log(name, NS) == ""  # the only main container is the default


def test_logs_of_a_container_still_waiting_are_a_bad_request(kube, dyn, core, ns):
    kube.script("vllm-llama", Scenario.unschedulable())
    apply(dyn, deployment())
    pod = only_pod(kube)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log(pod["metadata"]["name"], NS, container="vllm")
    assert exc.value.status == 400 and "is waiting to start" in exc.value.body


def _wait_pod(kube, check, timeout=5.0):
    return kube.wait_for(lambda: next((p for p in kube.list("v1", "Pod", NS) if check(p)), None), timeout)


def _events(kube, pod) -> list[tuple[str, str, str]]:
    return [(e["type"], e["reason"], e["message"]) for e in kube.events(NS, pod["metadata"]["name"])]


def test_failed_scheduling_scenario(kube, dyn, ns):
    kube.script("vllm-llama", Scenario.unschedulable())
    apply(dyn, deployment())
    pod = _wait_pod(kube, lambda p: p["status"].get("conditions"))
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["conditions"] == [{**pod["status"]["conditions"][0], "type": "PodScheduled",
                                            "status": "False", "reason": "Unschedulable"}]
    assert ("Warning", "FailedScheduling") == _events(kube, pod)[0][:2]
    assert "Insufficient nvidia.com/gpu" in _events(kube, pod)[0][2]


def test_scheduler_reports_a_missing_gpu_and_binds_when_a_node_gains_one(kube, dyn, ns):
    kube.set_allocatable(DEFAULT_NODE, {"nvidia.com/gpu": None})  # no device plugin yet: no GPU resource
    assert "nvidia.com/gpu" not in kube.get("v1", "Node", DEFAULT_NODE)["status"]["allocatable"]
    apply(dyn, deployment())
    pod = _wait_pod(kube, lambda p: p["status"].get("conditions"))
    message = _events(kube, pod)[0][2]
    assert message.startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    kube.set_allocatable(DEFAULT_NODE, {"nvidia.com/gpu": "1"}, after=0.05)
    ready = _wait_pod(kube, lambda p: any(c["type"] == "Ready" and c["status"] == "True"
                                          for c in p["status"].get("conditions") or []))
    assert ready["spec"]["nodeName"] == DEFAULT_NODE


def test_untolerated_taint_is_reported(kube, dyn, ns):
    kube.remove_node(DEFAULT_NODE)
    kube.add_node("tainted", taints=[{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}])
    apply(dyn, deployment())
    pod = _wait_pod(kube, lambda p: p["status"].get("conditions"))
    assert "1 node(s) had untolerated taint {dedicated: infra}" in _events(kube, pod)[0][2]


def test_image_pull_backoff_scenario(kube, dyn, ns):
    kube.script("vllm-llama", Scenario.image_pull_error())
    apply(dyn, deployment(image="123.dkr.ecr/vllm:missing"))
    pod = _wait_pod(kube, lambda p: (p["status"].get("initContainerStatuses") or [{}])[0].get("state", {}).get(
        "waiting", {}).get("reason") == "ImagePullBackOff")
    events = _events(kube, pod)
    assert ("Warning", "Failed", "Error: ErrImagePull") in events
    assert ("Warning", "Failed", "Error: ImagePullBackOff") in events
    assert any(m.startswith('Failed to pull image "123.dkr.ecr/vllm:missing"') and "not found" in m
               for _, _, m in events)
    assert pod["status"]["phase"] == "Pending"


def test_crash_loop_scenario_keeps_previous_logs(kube, dyn, core, ns):
    kube.script("vllm-llama", Scenario.crash_loop(lines=["starting", "CUDA error: boom"], restarts=2))
    apply(dyn, deployment())
    pod = _wait_pod(kube, lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("restartCount") == 2)
    status = pod["status"]["containerStatuses"][0]
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert pod["status"]["phase"] == "Running"
    backoffs = [e for e in kube.events(NS, pod["metadata"]["name"]) if e["reason"] == "BackOff"]
    assert backoffs[0]["type"] == "Warning" and backoffs[0]["count"] == 2
    previous = core.read_namespaced_pod_log(pod["metadata"]["name"], NS, container="vllm", previous=True)
    assert previous == "starting\nCUDA error: boom\n"


def test_oom_killed_scenario(kube, dyn, ns):
    kube.script("vllm-llama", Scenario.oom_killed())
    apply(dyn, deployment())
    pod = _wait_pod(kube, lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("lastState"))
    terminated = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)


def test_init_container_failure_scenario(kube, dyn, core, ns):
    lines = ['{"event": "error", "error": "AccessDenied", "message": "s3:GetObject denied"}']
    kube.script("vllm-llama", Scenario.init_failure(download_lines=lines))
    apply(dyn, deployment())
    pod = _wait_pod(kube, lambda p: (p["status"].get("initContainerStatuses") or [{}])[0].get("restartCount"))
    init = pod["status"]["initContainerStatuses"][0]
    assert init["lastState"]["terminated"]["exitCode"] == 1
    assert init["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    initialized = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False" and initialized["reason"] == "ContainersNotInitialized"
    assert core.read_namespaced_pod_log(pod["metadata"]["name"], NS, container="model-download",
                                        previous=True).splitlines() == lines


def test_never_ready_scenario_reports_failed_probes(kube, dyn, ns):
    kube.script({"app": "vllm-llama"}, Scenario.never_ready(probe_failures=2))
    apply(dyn, deployment())
    pod = _wait_pod(kube, lambda p: any(e["reason"] == "Unhealthy" and e["count"] == 2
                                        for e in kube.events(NS, p["metadata"]["name"])))
    assert pod["status"]["phase"] == "Running"
    assert next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] == "False"


def test_deleting_a_namespace_cascades(kube, dyn, core, ns):
    apply(dyn, deployment())
    core.create_namespaced_config_map(NS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    kube.wait_for(lambda: kube.list("v1", "Pod", NS))
    kube.namespace_delete_delay = 0.5  # long enough to see the namespace Terminating
    core.delete_namespace(NS)
    assert kube.get("v1", "Namespace", NS)["status"]["phase"] == "Terminating"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(NS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y"}})
    assert exc.value.status == 403
    kube.wait_for(lambda: kube.get("v1", "Namespace", NS) is None)
    assert kube.list("v1", "Pod", NS) == [] and kube.list("apps/v1", "Deployment", NS) == []
    assert kube.list("v1", "ConfigMap", NS) == [] and kube.list("apps/v1", "ReplicaSet", NS) == []


def test_deleting_a_deployment_deletes_its_pods(kube, dyn, ns):
    apply(dyn, deployment(replicas=2))
    kube.wait_for(lambda: len(kube.list("v1", "Pod", NS)) == 2)
    dyn.resources.get(api_version="apps/v1", kind="Deployment").delete(name="vllm-llama", namespace=NS)
    kube.wait_for(lambda: not kube.list("v1", "Pod", NS) and not kube.list("apps/v1", "ReplicaSet", NS))


def test_discovery_serves_builtin_kinds_and_crd_kinds_once_installed(kube, dyn, ns):
    for api_version, kind in [("v1", "Pod"), ("v1", "Event"), ("apps/v1", "DaemonSet"),
                              ("policy/v1", "PodDisruptionBudget"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
                              ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
                              ("apiextensions.k8s.io/v1", "CustomResourceDefinition")]:
        assert dyn.resources.get(api_version=api_version, kind=kind).kind == kind
    with pytest.raises(ResourceNotFoundError):
        dyn.resources.get(api_version="monitoring.coreos.com/v1", kind="ServiceMonitor")
    for crd in PROMETHEUS_OPERATOR_CRDS:
        apply(dyn, crd)
    smon = dyn.resources.get(api_version="monitoring.coreos.com/v1", kind="ServiceMonitor")
    assert smon.namespaced and smon.name == "servicemonitors"
    apply(dyn, {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                "metadata": {"name": "vllm", "namespace": NS}, "spec": {"endpoints": [{"interval": "30s"}]}})
    assert [i.metadata.name for i in smon.get(namespace=NS).items] == ["vllm"]
    crd = kube.wait_for(lambda: kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                                         "servicemonitors.monitoring.coreos.com").get("status"))
    assert {c["type"]: c["status"] for c in crd["conditions"]}["Established"] == "True"
    dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition").delete(
        name="servicemonitors.monitoring.coreos.com")
    kube.wait_for(lambda: "servicemonitors" not in json.dumps(
        kube.registry.resource_list("monitoring.coreos.com", "v1")))


def test_daemonset_runs_on_matching_nodes_only(kube, dyn, ns):
    kube.add_node("cpu-node", gpus=0, labels={"role": "cpu"})
    kube.add_node("tainted-gpu", taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}])
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "nvidia-device-plugin-daemonset", "namespace": "kube-system"},
          "spec": {"selector": {"matchLabels": {"name": "ndp"}}, "template": {
              "metadata": {"labels": {"name": "ndp"}},
              "spec": {"nodeSelector": {"eks.amazonaws.com/nodegroup": "gpu-nodes"},
                       "containers": [{"name": "plugin", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"}]}}}}
    apply(dyn, ds)
    kube.wait_for(lambda: kube.get("apps/v1", "DaemonSet", ds["metadata"]["name"], "kube-system")
                  .get("status", {}).get("numberReady") == 2)
    nodes = sorted(p["spec"]["nodeName"] for p in kube.list("v1", "Pod", "kube-system", "name=ndp"))
    assert nodes == sorted([DEFAULT_NODE, "cpu-node"])  # the untolerated taint keeps it off tainted-gpu
    ds["spec"]["template"]["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                      "effect": "NoSchedule"}]
    apply(dyn, ds)
    kube.wait_for(lambda: len(kube.list("v1", "Pod", "kube-system", "name=ndp")) == 3)


def test_load_balancer_service_gets_a_hostname_and_hooks_run(kube, dyn, core, ns):
    calls = []
    kube.on_load_balancer(create=lambda svc: calls.append(("create", svc["metadata"]["name"])) or "my-nlb.elb.aws",
                          delete=lambda svc: calls.append(("delete", svc["metadata"]["name"])))
    apply(dyn, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "vllm", "namespace": NS},
                "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 8000}]}})
    svc = kube.wait_for(lambda: kube.get("v1", "Service", "vllm", NS)["status"]["loadBalancer"].get("ingress"))
    assert svc == [{"hostname": "my-nlb.elb.aws"}]
    core.delete_namespaced_service("vllm", NS)
    assert kube.get("v1", "Service", "vllm", NS)["metadata"].get("deletionTimestamp")  # the finalizer holds it
    kube.wait_for(lambda: kube.get("v1", "Service", "vllm", NS) is None)
    assert calls == [("create", "vllm"), ("delete", "vllm")]


def test_watch_from_a_resource_version_and_selector_transitions(kube, core, ns):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"on": "yes"}}}
    created = core.create_namespaced_config_map(NS, cm)
    core.patch_namespaced_config_map("a", NS, {"metadata": {"labels": {"on": "no"}}})
    core.patch_namespaced_config_map("a", NS, {"metadata": {"labels": {"on": "yes"}}})
    core.delete_namespaced_config_map("a", NS)
    events = [(e["type"], e["object"].metadata.labels["on"]) for e in watch.Watch().stream(
        core.list_namespaced_config_map, NS, label_selector="on=yes",
        resource_version=created.metadata.resource_version, timeout_seconds=1)]
    assert events == [("DELETED", "no"), ("ADDED", "yes"), ("DELETED", "yes")]


def test_wrong_token_is_unauthorized(kube):
    config = client.Configuration(host=kube.url)
    config.api_key = {"BearerToken": "wrong"}
    config.api_key_prefix = {"BearerToken": "Bearer"}
    with client.ApiClient(config) as api, pytest.raises(ApiException) as exc:
        client.CoreV1Api(api).list_namespace()
    assert exc.value.status == 401


def test_stop_ends_every_thread_even_with_an_open_watch(tmp_path):
    before = set(threading.enumerate())
    double = KubeDouble(kubeconfig_path=tmp_path / "config").start()
    api = double.api_client()
    stream = watch.Watch().stream(client.CoreV1Api(api).list_namespace, timeout_seconds=30)
    next(stream)
    double.stop()
    api.close()
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not {t for t in set(threading.enumerate()) - before if t.name.startswith(("kube-double", "Thread"))}


def test_apply_without_force_reports_conflicts_with_another_manager(kube, dyn, ns):
    res = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "env", "namespace": NS}, "data": {"A": "1"}}
    res.server_side_apply(body=cm, field_manager="helm")
    with pytest.raises(ApiException) as exc:
        res.server_side_apply(body={**cm, "data": {"A": "2"}}, field_manager="llmctl")
    assert exc.value.status == 409 and '- conflict with "helm": .data.A' in json.loads(exc.value.body)["message"]
    forced = res.server_side_apply(body={**cm, "data": {"A": "2"}}, field_manager="llmctl", force_conflicts=True)
    assert forced.data.A == "2"
    res.server_side_apply(body={**cm, "data": {"A": "3"}}, field_manager="llmctl")  # llmctl owns .data.A now
    assert {f["manager"] for f in kube.get("v1", "ConfigMap", "env", NS)["metadata"]["managedFields"]} == {
        "helm", "llmctl"}


def test_image_pull_error_without_init_containers_hits_the_main_container(kube, dyn, ns):
    kube.script("plain", Scenario.image_pull_error())
    obj = deployment("plain")
    del obj["spec"]["template"]["spec"]["initContainers"]
    apply(dyn, obj)
    pod = _wait_pod(kube, lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("state", {}).get(
        "waiting", {}).get("reason") == "ImagePullBackOff")
    assert pod["status"]["phase"] == "Pending"


def test_watch_from_a_compacted_resource_version_is_expired(kube, core, ns):
    kube.store.history_limit = 3
    first = core.create_namespaced_config_map(NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": "cm-0"}})
    for i in range(1, 6):
        core.create_namespaced_config_map(NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": f"cm-{i}"}})
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(core.list_namespaced_config_map, NS, timeout_seconds=1,
                                  resource_version=first.metadata.resource_version))
    assert exc.value.status == 410 and "too old resource version" in exc.value.reason


def test_a_deleted_pod_terminates_before_it_goes_away(kube, dyn, core, ns):
    kube.pod_termination_delay = 0.3
    apply(dyn, deployment())
    pod = _wait_pod(kube, lambda p: p["spec"].get("nodeName"))
    name = pod["metadata"]["name"]
    core.delete_namespaced_pod(name, NS)
    terminating = kube.get("v1", "Pod", name, NS)
    assert terminating["metadata"]["deletionTimestamp"] and terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    replacement = _wait_pod(kube, lambda p: p["metadata"]["name"] != name)  # the ReplicaSet replaces it at once
    assert replacement["metadata"]["ownerReferences"] == pod["metadata"]["ownerReferences"]
    kube.wait_for(lambda: kube.get("v1", "Pod", name, NS) is None)
    core.delete_namespaced_pod(replacement["metadata"]["name"], NS, grace_period_seconds=0)
    assert kube.get("v1", "Pod", replacement["metadata"]["name"], NS) is None


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def _pods(kube) -> list[dict]:
    return kube.list("v1", "Pod", NS, "app=vllm-llama")


def test_recreate_starts_new_pods_only_after_the_old_ones_are_gone(kube, dyn, ns):
    kube.pod_termination_delay = 0.3
    first = deployment()
    first["spec"]["strategy"] = {"type": "Recreate"}
    apply(dyn, first)
    old = kube.wait_for(lambda: next((p for p in _pods(kube) if _ready(p)), None))
    second = deployment(image="img@sha256:new")
    second["spec"]["strategy"] = {"type": "Recreate"}
    apply(dyn, second)
    kube.wait_for(lambda: kube.get("v1", "Pod", old["metadata"]["name"], NS)["metadata"].get("deletionTimestamp"))
    assert [p["metadata"]["name"] for p in _pods(kube)] == [old["metadata"]["name"]]  # nothing new yet
    kube.wait_for(lambda: not _ready(kube.get("v1", "Pod", old["metadata"]["name"], NS)))  # terminating
    new = kube.wait_for(lambda: next((p for p in _pods(kube) if _ready(p)), None))
    assert new["spec"]["containers"][0]["image"] == "img@sha256:new"
    assert kube.get("v1", "Pod", old["metadata"]["name"], NS) is None


def test_rolling_update_on_one_gpu_waits_for_a_second_gpu(kube, dyn, ns):
    apply(dyn, deployment())
    old = kube.wait_for(lambda: next((p for p in _pods(kube) if _ready(p)), None))
    apply(dyn, deployment(image="img@sha256:new"))
    new = _wait_pod(kube, lambda p: p["metadata"]["name"] != old["metadata"]["name"] and any(
        e["reason"] == "FailedScheduling" for e in kube.events(NS, p["metadata"]["name"])))
    assert "Insufficient nvidia.com/gpu" in kube.events(NS, new["metadata"]["name"])[0]["message"]
    status = kube.get("apps/v1", "Deployment", "vllm-llama", NS)["status"]
    assert status["readyReplicas"] == 1 and status["observedGeneration"] == 2
    assert {c["type"]: c["reason"] for c in status["conditions"]}["Progressing"] == "ReplicaSetUpdated"
    assert _ready(kube.get("v1", "Pod", old["metadata"]["name"], NS))  # the old pod keeps serving
    kube.add_node("ip-192-168-99-1.ec2.internal")
    kube.wait_for(lambda: [p["metadata"]["name"] for p in _pods(kube) if _ready(p)] == [new["metadata"]["name"]])
    kube.wait_for(lambda: kube.get("v1", "Pod", old["metadata"]["name"], NS) is None)
    done = kube.wait_for(lambda: (d := kube.get("apps/v1", "Deployment", "vllm-llama", NS)["status"]).get(
        "updatedReplicas") == 1 and d.get("replicas") == 1 and d)
    assert {c["type"]: c["reason"] for c in done["conditions"]}["Progressing"] == "NewReplicaSetAvailable"
