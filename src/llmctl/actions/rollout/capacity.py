"""The GPU node group as the planner sees it (size, max, price, quota), and growing or shrinking it by one."""

from __future__ import annotations

from collections.abc import Callable

from llmctl.actions.rollout.planner import NodeGroup
from llmctl.config import LlmctlConfig, Names


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
