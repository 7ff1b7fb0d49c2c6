"""`llmctl cluster up` end to end: fake eksctl, the moto server and the Kubernetes double."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.cli.cluster.conftest import CLEAN_STATE, EXPECTED_POLICY, expected_trust, snapshot

MUTATING = ("create", "utils", "delete")


def mutating_calls(fake_eksctl) -> list[list[str]]:
    return [a for a in fake_eksctl.argv if a[0] in MUTATING]


def _gpu_once_watched(kube) -> None:
    """Give every node its GPU once a client watches nodes (the wait step)."""
    kube.wait_for(lambda: any(r.query.get("watch") in ("true", "1", "True")
                              for r in kube.requests_matching("GET", "/api/v1/nodes")), timeout=170)
    for node in kube.list("v1", "Node"):
        kube.set_allocatable(node["metadata"]["name"], {"nvidia.com/gpu": "1"}, after=0.3)


def test_full_up_then_second_run_changes_nothing(cluster_env, aws, kube, fake_eksctl, shared_schemas):
    import jsonschema
    import yaml

    # The GPU appears while `cluster up` is watching: the device plugin "registers" it only once the
    # wait step's node watch is open (a fixed delay raced the steps before it on a loaded machine).
    fake_eksctl.gpu_delay = None
    registered = threading.Thread(target=_gpu_once_watched, args=(kube,), daemon=True)
    registered.start()
    done = cluster_env("cluster", "up", "--yes", check=True, timeout=180)
    registered.join(timeout=5)

    creates = fake_eksctl.calls("create", "cluster")
    assert len(creates) == 1 and creates[0][2] == "-f" and "--install-nvidia-plugin=false" in creates[0]
    rendered = yaml.safe_load(Path(creates[0][3]).read_text())
    schema = json.loads((shared_schemas / "eksctl-clusterconfig-v1alpha5.schema.json").read_text())
    jsonschema.validate(rendered, schema)
    assert "│ " in done.stderr and 'EKS cluster "demo" in "us-east-1" region is ready' in done.stderr  # streamed

    issuer = aws.client("eks").describe_cluster(name="demo")["cluster"]["identity"]["oidc"]["issuer"]
    iam = aws.client("iam")
    role = iam.get_role(RoleName="demo-vllm-s3-access")["Role"]
    assert role["Path"] == "/llmctl/demo/"  # teardown lists the deployment's IAM path; policies can scope by it
    assert role["Arn"] == "arn:aws:iam::123456789012:role/llmctl/demo/demo-vllm-s3-access"
    assert role["AssumeRolePolicyDocument"] == expected_trust(issuer)
    assert iam.list_role_policies(RoleName="demo-vllm-s3-access")["PolicyNames"] == ["vllm-model-read"]
    assert iam.get_role_policy(RoleName="demo-vllm-s3-access", PolicyName="vllm-model-read")["PolicyDocument"] == EXPECTED_POLICY
    assert iam.list_attached_role_policies(RoleName="demo-vllm-s3-access")["AttachedPolicies"] == []

    # the wait watched the node join without a GPU, then gain one
    assert "nvidia.com/gpu allocatable 0" in done.stderr
    assert "nvidia.com/gpu allocatable 1" in done.stderr
    assert "fake-user@demo.us-east-1.eksctl.io" in done.stdout
    assert snapshot(aws, kube, cluster_env) == CLEAN_STATE

    before = len(fake_eksctl.argv)
    again = cluster_env("cluster", "up", "--yes", "--output", "json", check=True, timeout=180)
    steps = json.loads(again.stdout)["steps"]
    assert [s["status"] for s in steps] == ["unchanged"] * 7
    assert mutating_calls(fake_eksctl) == [creates[0]]
    assert all(a == ["version"] for a in fake_eksctl.argv[before:])
    assert snapshot(aws, kube, cluster_env) == CLEAN_STATE


@pytest.mark.parametrize("fail_at", ["cluster", "oidc", "nodegroup", "kubeconfig"])
def test_failed_run_resumes_to_the_clean_state(cluster_env, aws, kube, fake_eksctl, fail_at):
    fake_eksctl.fail_at = fail_at
    failed = cluster_env("cluster", "up", "--yes", timeout=180)
    assert failed.returncode == 1, failed.stderr
    assert "eksctl exited 1" in failed.stderr and "Traceback" not in failed.stderr
    assert "re-run" in failed.stderr

    fake_eksctl.fail_at = None
    cluster_env("cluster", "up", "--yes", check=True, timeout=180)
    assert snapshot(aws, kube, cluster_env) == CLEAN_STATE
    resumed = mutating_calls(fake_eksctl)[1:]
    # eksctl stops at the failed task: the re-run does that task and every one eksctl never reached
    expected = {
        "cluster": [["create", "cluster"]],  # nothing was made: create again
        "oidc": [["utils", "associate-iam-oidc-provider"], ["create", "nodegroup"], ["utils", "write-kubeconfig"]],
        "nodegroup": [["create", "nodegroup"], ["utils", "write-kubeconfig"]],
        "kubeconfig": [["utils", "write-kubeconfig"]],
    }[fail_at]
    assert [a[:2] for a in resumed] == expected


def test_gpu_wait_times_out_then_resumes(cluster_env, aws, kube, fake_eksctl):
    fake_eksctl.gpu_delay = None  # the device plugin never registers a GPU
    failed = cluster_env("cluster", "up", "--yes", "--gpu-timeout", "3", timeout=180)
    assert failed.returncode == 1
    assert "no node reported allocatable nvidia.com/gpu within 3s" in failed.stderr
    node = kube.list("v1", "Node")[0]["metadata"]["name"]
    kube.set_allocatable(node, {"nvidia.com/gpu": "1"})
    kube.wait_for(lambda: kube.get("v1", "Node", node)["status"]["allocatable"].get("nvidia.com/gpu") == "1")
    again = cluster_env("cluster", "up", "--yes", "--output", "json", check=True, timeout=180)
    assert [s["status"] for s in json.loads(again.stdout)["steps"]] == ["unchanged"] * 7
    assert snapshot(aws, kube, cluster_env) == CLEAN_STATE


def test_drifted_role_and_missing_device_plugin_are_repaired(cluster_env, aws, kube, fake_eksctl):
    cluster_env("cluster", "up", "--yes", check=True, timeout=180)
    iam = aws.client("iam")
    wrong = expected_trust("https://oidc.eks.us-east-1.amazonaws.com/id/OLDCLUSTER", service_account="other")
    iam.update_assume_role_policy(RoleName="demo-vllm-s3-access", PolicyDocument=json.dumps(wrong))
    iam.put_role_policy(RoleName="demo-vllm-s3-access", PolicyName="extra",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    with kube.lock:
        ds_type = kube.rt("apps/v1", "DaemonSet")
        kube.store.remove(ds_type, kube.store.get(ds_type, "kube-system", "nvidia-device-plugin-daemonset"))

    status = json.loads(cluster_env("cluster", "status", "--output", "json", check=True).stdout)
    assert status["irsa_role"]["trust_matches_cluster"] is False
    assert status["irsa_role"]["permissions_match"] is False
    assert status["device_plugin"] is None

    again = cluster_env("cluster", "up", "--yes", "--output", "json", check=True, timeout=180)
    by_kind = {s["kind"]: s["status"] for s in json.loads(again.stdout)["steps"]}
    assert by_kind["iam-role"] == "updated" and by_kind["k8s-daemonset"] == "created"
    assert by_kind["eks-cluster"] == "unchanged"
    assert snapshot(aws, kube, cluster_env) == CLEAN_STATE


def test_existing_device_plugin_is_detected(cluster_env, aws, kube, fake_eksctl):
    kube.create({"apiVersion": "apps/v1", "kind": "DaemonSet",
                 "metadata": {"name": "nvidia-device-plugin", "namespace": "kube-system"},
                 "spec": {"selector": {"matchLabels": {"app": "ndp"}}, "template": {
                     "metadata": {"labels": {"app": "ndp"}},
                     "spec": {"containers": [{"name": "p", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.16.0"}]}}}})
    done = cluster_env("cluster", "up", "--yes", "--output", "json", check=True, timeout=180)
    step = next(s for s in json.loads(done.stdout)["steps"] if s["kind"] == "k8s-daemonset")
    assert step["status"] == "unchanged" and "kube-system/nvidia-device-plugin" in step["detail"]
    assert kube.get("apps/v1", "DaemonSet", "nvidia-device-plugin-daemonset", "kube-system") is None
