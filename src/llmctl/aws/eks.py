"""EKS look-ups: the cluster, its OIDC issuer, its node groups (eksctl creates and deletes them)."""

from __future__ import annotations

from llmctl.aws.errors import aws_call

NOT_FOUND = "ResourceNotFoundException"


def describe_cluster(eks, name: str) -> dict | None:
    """The cluster as `eks:DescribeCluster` answers, or None when there is none of that name."""
    return aws_call(f"looking up EKS cluster {name}", lambda: eks.describe_cluster(name=name)["cluster"], absent=NOT_FOUND)


def issuer(cluster: dict | None) -> str | None:
    """The cluster's OIDC issuer URL (what IRSA trusts), from a `describe_cluster` answer."""
    return (((cluster or {}).get("identity") or {}).get("oidc") or {}).get("issuer")


def describe_nodegroup(eks, cluster: str, name: str) -> dict | None:
    return aws_call(f"looking up node group {name}",
                    lambda: eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"], absent=NOT_FOUND)


def nodegroups(eks, cluster: str) -> list[dict]:
    """Every node group of the cluster, described."""
    names = aws_call(f"listing node groups of {cluster}", lambda: eks.list_nodegroups(clusterName=cluster).get("nodegroups", []))
    return [group for name in names if (group := describe_nodegroup(eks, cluster, name)) is not None]


def scale_nodegroup(eks, cluster: str, name: str, desired: int) -> None:
    """Set the node group's desired size (its min and max stay); EKS starts or stops instances to match. No call
    when it is that size already (an instance terminated with its group's capacity lowered)."""
    group = describe_nodegroup(eks, cluster, name) or {}
    scaling = dict(group.get("scalingConfig") or {})
    if scaling.get("desiredSize") == desired:
        return
    scaling["desiredSize"] = desired
    scaling["minSize"] = min(scaling.get("minSize", desired), desired)
    aws_call(f"scaling node group {name} to {desired}",
             lambda: eks.update_nodegroup_config(clusterName=cluster, nodegroupName=name, scalingConfig=scaling))
