"""Karpenter capacity on the Kubernetes double with Karpenter's double.

Scale to zero and back: the empty GPU node goes (consolidation) and a woken replica gets a new one; `status`
and `cost --running` follow. A spot interruption: the interrupted nodes are drained
through the Eviction API (the PodDisruptionBudget takes one replica at a time), each evicted pod terminates
with the pod's grace (preStop, then the server's SIGTERM drain, inside the two-minute notice), the Service
keeps a ready endpoint throughout, Karpenter launches the replacements, and `status` and `cost --running`
say what runs afterwards."""

from __future__ import annotations

import json

from tests.cli.deploy.test_deploy import APP, PROGRESS, run_deploy
from tests.doubles.karpenter import KarpenterDouble
from tests.fixtures.kube import DEFAULT_NODE, ENDPOINT_PODS, Scenario, endpoint_deployment

TAGS = {"llmctl.io/deployment": "llama", "llmctl.io/managed-by": "llmctl"}
SPOT_NOTICE_S = 120


def _config(port: int, metrics_port: int, deploy: str = "  replicas: 2\n") -> str:
    return (f"project:\n  name: llama\nmodel:\n  bucket: llama-models\nserver:\n  port: {port}\n"
            f"  metrics_port: {metrics_port}\ncluster:\n  capacity: karpenter\n  nodes_max: 2\n"
            f"deploy:\n{deploy}")


def _instances(project) -> set[str]:
    """The instances `cost --running` prices."""
    cost = json.loads(project("cost", "--running", "--output", "json", check=True).stdout)
    return {line["item"].split(" ")[1] for line in cost["lines"] if line["item"].startswith("aws_instance")}


def test_scale_to_zero_and_back_on_karpenter_capacity(project, kube, aws, stub_endpoint) -> None:
    import kubernetes

    kube.remove_node(DEFAULT_NODE)
    kube.install_keda(http_add_on=True)
    zero = "  autoscaling:\n    enabled: true\n    max_replicas: 1\n    idle_minutes: 10\n"
    project.write_config(_config(stub_endpoint.port, stub_endpoint.metrics_port, zero))
    kube.script(ENDPOINT_PODS, Scenario.success(download_lines=PROGRESS, delay=0.05))
    karpenter = KarpenterDouble(kube, aws, "llama", nodeclass_tags=TAGS).start(consolidate_after_s=0.5)
    apps = kubernetes.client.AppsV1Api(kube.api_client())
    try:
        done = run_deploy(project)
        assert done.returncode == 0, done.stderr
        assert "waits for Karpenter to launch a node (no nodes available to schedule pods)" in done.stdout + done.stderr
        [first] = karpenter.instances.values()
        assert _instances(project) == {first}

        apps.patch_namespaced_deployment(endpoint_deployment(kube), "vllm", {"spec": {"replicas": 0}})  # KEDA, after the idle time
        kube.wait_for(lambda: not karpenter.instances and not kube.list("v1", "Node"), 10)  # the empty node went
        status = json.loads(project("status", "--output", "json", check=True).stdout)
        assert status["scaled_to_zero"]["wakes_on_request"] and status["pods"] == [] and status["ready_replicas"] == 0
        assert _instances(project) == set()  # nothing on the GPU bill
        states = {i["InstanceId"]: i["State"]["Name"] for r in aws.client("ec2").describe_instances()["Reservations"]
                  for i in r["Instances"]}
        assert states[first] == "terminated"

        apps.patch_namespaced_deployment(endpoint_deployment(kube), "vllm", {"spec": {"replicas": 1}})  # a request woke it
        kube.wait_for(lambda: len(karpenter.instances) == 1 and [p for p in kube.list("v1", "Pod", "vllm") if any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])], 10)
    finally:
        karpenter.stop()
    [second] = karpenter.instances.values()
    status = json.loads(project("status", "--output", "json", check=True).stdout)
    assert status["scaled_to_zero"] is None and (status["replicas"], status["ready_replicas"]) == (1, 1)
    assert [p["node"] for p in status["pods"]] == list(karpenter.instances)
    assert _instances(project) == {second} != {first}


def test_a_spot_interruption_drains_one_replica_at_a_time_and_karpenter_replaces_the_nodes(
        project, kube, aws, stub_endpoint) -> None:
    kube.remove_node(DEFAULT_NODE)  # GPU nodes come from Karpenter only
    project.write_config(_config(stub_endpoint.port, stub_endpoint.metrics_port))
    kube.script(ENDPOINT_PODS, Scenario.success(download_lines=PROGRESS, main_lines=['{"msg": "engine ready"}'], delay=0.1))
    karpenter = KarpenterDouble(kube, aws, "llama", nodeclass_tags=TAGS).start()
    try:
        assert run_deploy(project).returncode == 0
        first = dict(karpenter.instances)
        assert len(first) == 2
        pdb = kube.get("policy/v1", "PodDisruptionBudget", APP, "vllm")
        assert pdb["spec"]["maxUnavailable"] == 1
        template = kube.get("apps/v1", "Deployment", endpoint_deployment(kube), "vllm")["spec"]["template"]["spec"]
        grace = template["terminationGracePeriodSeconds"]
        [env] = [c for c in kube.list("v1", "ConfigMap", "vllm") if "DRAIN_TIMEOUT_S" in c.get("data", {})]
        drain = int(env["data"]["DRAIN_TIMEOUT_S"])
        prestop = template["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert prestop + drain < grace <= SPOT_NOTICE_S - 15  # the whole termination fits the notice

        # what the Service's endpoints hold after every change, and how each evicted pod ended
        ready_counts, ended = [], {}

        def watch(type_, rt, obj, old) -> None:
            if rt.kind != "Pod" or obj["metadata"].get("namespace") != "vllm":
                return
            pods = kube.store.list(kube.rt("v1", "Pod"), "vllm")
            ready_counts.append(sum(1 for p in pods if not p["metadata"].get("deletionTimestamp") and any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])))
            meta = obj["metadata"]
            if meta.get("deletionTimestamp"):
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in obj["status"].get("conditions") or [])
                seen = ended.setdefault(meta["name"], {"grace": meta.get("deletionGracePeriodSeconds"), "unready": False})
                seen["unready"] = seen["unready"] or not ready
                seen["deleted"] = type_ == "DELETED"

        kube.pod_termination_delay = 0.3  # the drain's stand-in: a terminating pod stays this long
        kube.store.listeners.append(watch)
        for node in list(first):  # both spot nodes get the notice at once
            karpenter.interrupt(node)
        kube.wait_for(lambda: len(karpenter.gone) == 2 and len(karpenter.instances) == 2 and len([
            p for p in kube.list("v1", "Pod", "vllm") if not p["metadata"].get("deletionTimestamp") and any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]) == 2, 30)
        kube.store.listeners.remove(watch)
    finally:
        karpenter.stop()

    assert min(ready_counts) >= 1, ready_counts  # the Service always had a ready endpoint
    assert kube.evictions_refused >= 1  # the second node's pod waited for its replacement (the PDB)
    evicted = {pod.split("/")[1] for pods in karpenter.interrupted.values() for pod in pods}
    assert set(ended) >= evicted and len(evicted) == 2
    for name in evicted:  # each went through the graceful termination: unready first, then gone
        assert ended[name] == {"grace": grace, "unready": True, "deleted": True}, ended
    states = {i["InstanceId"]: i["State"]["Name"] for r in aws.client("ec2").describe_instances()["Reservations"]
              for i in r["Instances"]}
    assert all(states[i] == "terminated" for i in first.values())
    replacements = set(karpenter.instances.values())
    assert all(states[i] == "running" for i in replacements) and not replacements & set(first.values())

    status = json.loads(project("status", "--output", "json", check=True).stdout)
    assert (status["replicas"], status["ready_replicas"]) == (2, 2)
    assert {p["node"] for p in status["pods"]} == set(karpenter.instances) and all(p["ready"] for p in status["pods"])
    assert _instances(project) == replacements


def test_on_karpenter_capacity_a_pod_no_new_node_would_take_still_fails_at_once(project, kube) -> None:
    """Karpenter launches nodes for pods short of a node; a taint the pod does not tolerate is not that."""
    kube.remove_node(DEFAULT_NODE)
    kube.add_node("gpu-tainted", taints=[{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}])
    project.write_config(_config(5000, 9100, "  replicas: 1\n"))
    done = run_deploy(project)
    assert done.returncode == 1
    assert "taint the endpoint does not tolerate: dedicated: ml" in done.stderr and "waits for Karpenter" not in done.stdout
