"""The GPU node group as the planner sees it (size, max, price, quota), growing it by one, and giving back
the node a rollout emptied (cordoned, drained of the endpoint's pods, its instance terminated)."""

from __future__ import annotations

import time
from collections.abc import Callable

from llmctl.actions.deploy import ANNOTATION_CONFIG_HASH
from llmctl.actions.rollout.planner import NodeGroup
from llmctl.config import LlmctlConfig, Names

NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"  # EKS labels each node of a managed group with its name
CORDON_MANAGER = "llmctl-cordon"  # the field manager of spec.unschedulable on a node llmctl releases


def node_group(aws, cfg: LlmctlConfig, names: Names) -> NodeGroup | None:
    """The managed GPU node group (`cluster.nodegroup_name`), or None when EKS has none of that name."""
    from llmctl import pricing
    from llmctl.aws.eks import describe_nodegroup
    from llmctl.aws.quotas import quota_for, read_quota

    group = describe_nodegroup(aws.eks, names.cluster, cfg.cluster.nodegroup_name)
    if group is None:
        return None
    scaling = group.get("scalingConfig") or {}
    itype = (group.get("instanceTypes") or cfg.cluster.instance_types)[0]
    spot = group.get("capacityType") == "SPOT"
    try:
        spec = pricing.instance(itype)
        vcpus, hourly = spec.vcpus, pricing.hourly(itype, cfg.aws.region, spot)
    except KeyError:
        vcpus, hourly = 0, 0.0
    return NodeGroup(name=cfg.cluster.nodegroup_name, size=int(scaling.get("desiredSize", 0)),
                     max_size=int(scaling.get("maxSize", 0)), instance_type=itype, hourly_usd=hourly,
                     quota_vcpus=read_quota(aws.service_quotas, quota_for(itype, spot)[0]), vcpus_per_node=vcpus)


def scaler(aws, names: Names) -> Callable[[str, int], None]:
    from llmctl.aws.eks import scale_nodegroup

    return lambda group, desired: scale_nodegroup(aws.eks, names.cluster, group, desired)


def releaser(aws) -> Callable[[str], None]:
    """Terminate one instance of the group, its desired capacity lowered with it."""
    from llmctl.aws.autoscaling import terminate_instance

    return lambda instance_id: terminate_instance(aws.autoscaling, instance_id)


def instance_id(node: dict) -> str | None:
    """The EC2 instance behind a node, from its providerID (`aws:///us-east-1a/i-0abc...`)."""
    provider = (node.get("spec") or {}).get("providerID") or ""
    last = provider.rsplit("/", 1)[-1]
    return last if provider.startswith("aws://") and last.startswith("i-") else None


def vacated_node(kube, names: Names, group: str, serving_hash: str) -> dict | None:
    """A node of `group` that runs no live pod of the serving revision (`serving_hash`, its config hash): the
    one the replaced revision leaves (or the surge node, when the new revision was rolled back); None when
    every node serves."""
    pods = kube.list("v1", "Pod", names.namespace, label_selector=_selector(names))
    serving = {p["spec"].get("nodeName") for p in pods if not p["metadata"].get("deletionTimestamp") and
               (p["metadata"].get("annotations") or {}).get(ANNOTATION_CONFIG_HASH) == serving_hash}
    return next((n for n in sorted(group_nodes(kube, group), key=lambda n: n["metadata"]["name"])
                 if n["metadata"]["name"] not in serving and instance_id(n)), None)


def group_nodes(kube, group: str) -> list[dict]:
    return [n for n in kube.list("v1", "Node") if (n["metadata"].get("labels") or {}).get(NODEGROUP_LABEL) == group]


def release_node(kube, names: Names, group: str, size: int, serving_hash: str, release: Callable[[str], None],
                 timeout_s: float, say: Callable[[str], None]) -> bool:
    """Cordon the node the rollout emptied, wait until no pod of the endpoint is left on it (the old pod's
    drain), then terminate its instance with the group's desired size lowered: the group shrinks by that node,
    never by the one that serves. True without a release when the group is down to `size` nodes already (a run
    killed after the terminate); False, with the reason said, when no node can be released so."""
    node = vacated_node(kube, names, group, serving_hash)
    if node is None and len(group_nodes(kube, group)) <= size:
        return True
    if node is None:
        say(f"no node of group {group} is free of the endpoint's pods: the group stays grown; remove the "
            "spare node by hand (`kubectl get pods -o wide` shows which one is free)")
        return False
    name = node["metadata"]["name"]
    kube.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"unschedulable": True}},
               field_manager=CORDON_MANAGER)
    say(f"cordoned node {name} ({instance_id(node)}); waiting for the endpoint's pods to leave it")
    deadline = time.monotonic() + timeout_s
    while any(p["spec"].get("nodeName") == name
              for p in kube.list("v1", "Pod", names.namespace, label_selector=_selector(names))):
        if time.monotonic() > deadline:
            say(f"node {name} still runs the endpoint's pods after {timeout_s:.0f}s: it stays cordoned and the "
                f"group grown; terminate {instance_id(node)} once they are gone (`aws autoscaling "
                f"terminate-instance-in-auto-scaling-group --instance-id {instance_id(node)} "
                "--should-decrement-desired-capacity`)")
            return False
        time.sleep(0.2)
    release(instance_id(node))
    say(f"node {name} ({instance_id(node)}) terminated; node group {group} shrinks by it")
    return True


def _selector(names: Names) -> str:
    return ",".join(f"{k}={v}" for k, v in names.k8s_labels.items())
