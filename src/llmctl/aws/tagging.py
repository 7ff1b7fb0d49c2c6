"""Tags: the two shapes AWS APIs use, whose a resource is, and the Resource Groups Tagging API.

Also the tags other tools write that llmctl reads: eksctl names the cluster on everything its
stacks create, the AWS cloud controller and load balancer controller mark what they made for
a Service and for the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable

from llmctl.aws.errors import AWS_ERRORS, aws_error
from llmctl.config.names import TAG_DEPLOYMENT, TAG_MANAGED_BY

EKSCTL_CLUSTER_TAGS = ("alpha.eksctl.io/cluster-name", "eksctl.cluster.k8s.io/v1alpha1/cluster-name")
K8S_SERVICE_TAGS = ("kubernetes.io/service-name", "service.k8s.aws/stack")
LBC_CLUSTER_TAG = "elbv2.k8s.aws/cluster"
KARPENTER_CLUSTER_TAG = "karpenter.k8s.aws/cluster"  # on the launch templates Karpenter makes


def tags(items: Iterable[dict] | None, key: str = "Key", value: str = "Value") -> dict[str, str]:
    """`[{"Key": k, "Value": v}, ...]` (or CodeBuild's `key`/`value`) -> `{k: v}`."""
    return {item[key]: item[value] for item in items or []}


def tag_list(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    """`{k: v}` -> the list shape most AWS APIs take, sorted so requests are stable."""
    return [{key: k, value: v} for k, v in sorted(tags.items())]


def is_ours(tags: dict[str, str], deployment: str) -> bool:
    """Tagged for this deployment by llmctl (an absent managed-by tag is older llmctl's)."""
    return tags.get(TAG_DEPLOYMENT) == deployment and tags.get(TAG_MANAGED_BY, "llmctl") == "llmctl"


def eksctl_made_for(tags: dict[str, str], cluster: str) -> bool:
    """eksctl tagged this as created for `cluster`."""
    return any(tags.get(k) == cluster for k in EKSCTL_CLUSTER_TAGS)


def service_of(tags: dict[str, str]) -> str:
    """The `namespace/name` of the Service a load balancer resource was made for ("" if none)."""
    return next((tags[k] for k in K8S_SERVICE_TAGS if k in tags), "")


def tagged_resources(tagging, filters: list[dict]) -> dict[str, dict[str, str]]:
    """ARN -> tags of every resource the Tagging API returns for all of `filters` (ANDed)."""
    found: dict[str, dict[str, str]] = {}
    try:
        for page in tagging.get_paginator("get_resources").paginate(TagFilters=filters):
            for item in page.get("ResourceTagMappingList", []):
                found[item["ResourceARN"]] = tags(item.get("Tags"))
    except AWS_ERRORS as exc:
        keys = ", ".join(f["Key"] for f in filters)
        raise aws_error(exc, f"listing resources tagged {keys}") from None
    return found
