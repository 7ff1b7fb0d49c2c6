"""Teardown after Karpenter launched GPU nodes: the instances, launch templates and instance profiles it made,
the interruption queue and its EventBridge rules, and the Karpenter IAM roles all go, in order (the NodePool
first, the instances before the cluster), and nothing of another cluster's is touched."""

from __future__ import annotations

import pytest

from tests.cli.cluster.conftest import cluster_env  # noqa: F401 - the cluster project (moto, double, fake eksctl)
from tests.doubles.karpenter import KarpenterDouble

CLUSTER = "demo"
TAGS = {"llmctl.io/deployment": CLUSTER, "llmctl.io/managed-by": "llmctl"}
KARPENTER = "cluster:\n  capacity: karpenter\n  nodes_max: 2\n"


def _gpu_pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "vllm", "image": "x", "resources": {"requests": {"nvidia.com/gpu": "1"},
                                                                                 "limits": {"nvidia.com/gpu": "1"}}}],
                     "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}}


def _karpenter_world(aws, sqs_name: str) -> dict:
    """What exists of a cluster's Karpenter side in moto (running instances, templates, profiles, queue, rules, roles)."""
    ec2, iam, sqs, events = (aws.client(s) for s in ("ec2", "iam", "sqs", "events"))
    tag = f"kubernetes.io/cluster/{sqs_name}"
    instances = [i["InstanceId"] for r in ec2.describe_instances(Filters=[{"Name": f"tag:{tag}", "Values": ["owned"]}])["Reservations"]
                 for i in r["Instances"] if i["State"]["Name"] not in ("terminated", "shutting-down")]
    templates = [t["LaunchTemplateName"] for t in ec2.describe_launch_templates(
        Filters=[{"Name": "tag:karpenter.k8s.aws/cluster", "Values": [sqs_name]}])["LaunchTemplates"]]
    profiles = [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]
                if p["InstanceProfileName"].startswith(f"{sqs_name}_") or sqs_name in p["InstanceProfileName"].split("-")]
    queues = [u for u in sqs.list_queues().get("QueueUrls", []) if u.rsplit("/", 1)[1] == sqs_name]
    rules = [r["Name"] for r in events.list_rules()["Rules"] if r["Name"].startswith(f"eksctl-{sqs_name}-karpenter")]
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] == f"eksctl-KarpenterNodeRole-{sqs_name}"]
    return {"instances": instances, "templates": templates, "profiles": profiles, "queues": queues, "rules": rules,
            "roles": roles}


@pytest.mark.parametrize("eksctl_leaves_the_queue", [False, True])
def test_teardown_removes_what_karpenter_launched_and_nothing_of_another_cluster(
        cluster_env, aws, kube, fake_eksctl, eksctl_leaves_the_queue):  # noqa: F811
    cluster_env.write_config(cluster_env.cwd.joinpath("llmctl.yaml").read_text() + KARPENTER)
    cluster_env.env["KUBECONFIG"] = str(kube.kubeconfig_path)
    cluster_env("cluster", "up", "--yes", check=True, timeout=240)
    # eksctl's karpenter section made the queue, its four rules and the node role; cluster up the NodePool
    made = _karpenter_world(aws, CLUSTER)
    assert len(made["queues"]) == 1 and len(made["rules"]) == 4 and made["roles"] == ["eksctl-KarpenterNodeRole-demo"]
    assert [p["metadata"]["name"] for p in kube.list("karpenter.sh/v1", "NodePool")] == ["llmctl-gpu"]
    assert kube.get("karpenter.k8s.aws/v1", "EC2NodeClass", "llmctl-gpu")["spec"]["role"] == "eksctl-KarpenterNodeRole-demo"

    # two pending GPU pods: "Karpenter" launches two spot nodes for them
    karpenter = KarpenterDouble(kube, aws, CLUSTER, nodeclass_tags=TAGS)
    for name in ("gpu-a", "gpu-b"):
        kube.create(_gpu_pod(name))
    kube.wait_for(lambda: len(karpenter.pending_gpu_pods()) == 2)
    launched = karpenter.provision()
    assert len(launched) == 2
    kube.wait_for(lambda: all(p["spec"].get("nodeName") for p in kube.list("v1", "Pod", "default")), 10)
    # another cluster's Karpenter node and queue, in the same account and region
    other = KarpenterDouble(kube, aws, "other", nodeclass="default")
    kube.create(_gpu_pod("other-pod"))
    kube.wait_for(lambda: len(other.pending_gpu_pods()) == 1)
    other_instances = other.provision()
    aws.client("sqs").create_queue(QueueName="other", tags={"alpha.eksctl.io/cluster-name": "other"})
    before_other = _karpenter_world(aws, "other")
    made = _karpenter_world(aws, CLUSTER)
    assert sorted(made["instances"]) == sorted(launched) and made["templates"] and len(made["profiles"]) == 2

    if eksctl_leaves_the_queue:
        fake_eksctl._set("leave_karpenter_queue", True)  # a Karpenter stack that could not remove them
    plan = cluster_env("cluster", "down", "--dry-run", "--output", "json", check=True)
    assert "aws_sqs_queue" in plan.stdout and "aws_cloudwatch_event_rule" in plan.stdout and "nodepool/llmctl-gpu" in plan.stdout
    cluster_env("cluster", "down", "--yes", check=True, timeout=240)

    assert _karpenter_world(aws, CLUSTER) == {"instances": [], "templates": [], "profiles": [], "queues": [],
                                              "rules": [], "roles": []}
    assert kube.list("karpenter.sh/v1", "NodePool") == []  # drained before the cluster went
    after_other = _karpenter_world(aws, "other")
    assert after_other == before_other and sorted(after_other["instances"]) == sorted(other_instances)
