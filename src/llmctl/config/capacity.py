"""`cluster.capacity`, `cluster.on_demand_base`, `cluster.karpenter.*`: where the GPU nodes come from.

`nodegroup` (the default) is today's managed GPU node group. `karpenter` installs Karpenter through
eksctl's own `karpenter` section (with the spot interruption queue) and renders a GPU NodePool and
EC2NodeClass: spot preferred, on-demand when spot is short, nodes removed when empty. The managed node
group then shrinks to a small system group for Karpenter, CoreDNS and the monitoring stack.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from llmctl.config.problems import Invalid
from llmctl.config.section import Section

# Karpenter's own pattern for NodePool.spec.disruption.consolidateAfter
_CONSOLIDATE_AFTER = r"^(([0-9]+(s|m|h))+|Never)$"


class KarpenterConfig(Section):
    version: str = Field("1.14.0", pattern=r"^\d+\.\d+\.\d+$",
                         description="Karpenter version eksctl installs (its Helm chart; the v1 API).")
    ami_version: str = Field("latest", pattern=r"^(latest|v[0-9][0-9.]*)$",
                             description="AMI release of the family's alias (al2023@<version>); pin one "
                             "(e.g. v20260801) so a new AMI does not replace the GPU nodes.")
    spot: bool = Field(True, description="Offer spot to Karpenter (preferred when offered); on-demand is always the "
                       "fallback when spot is short.")
    consolidate_after: str = Field("1m", pattern=_CONSOLIDATE_AFTER,
                                   description="How long a GPU node stays empty before Karpenter removes it.")
    system_instance_type: str = Field("t3.large", description="Instance type of the managed node group that runs the "
                                      "system pods (Karpenter itself must not run on nodes it manages).")
    system_nodes: int = Field(1, ge=1, le=10, description="Nodes of the system node group.")

    @field_validator("system_instance_type")
    @classmethod
    def _instance_type_shape(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9-]*\d[a-z0-9-]*\.[a-z0-9]+", value):
            raise Invalid(f"{value!r} is not an EC2 instance type", fix="use a small type such as t3.large")
        return value


def check_capacity(cluster) -> None:
    """Cross-field rules of the capacity settings; `cluster` is the ClusterConfig being validated."""
    karpenter = cluster.capacity == "karpenter"
    if cluster.on_demand_base and not karpenter:
        raise Invalid(f"cluster.on_demand_base is {cluster.on_demand_base} but cluster.capacity is nodegroup (a node "
                      "group has no spot/on-demand split)", fix="set cluster.capacity: karpenter, or remove on_demand_base")
    if cluster.on_demand_base > cluster.nodes_max:
        raise Invalid(f"cluster.on_demand_base ({cluster.on_demand_base}) exceeds cluster.nodes_max "
                      f"({cluster.nodes_max}, the GPU node limit)", fix="raise cluster.nodes_max or lower on_demand_base")
    changed = sorted(k for k, v in cluster.karpenter.model_dump().items() if v != KarpenterConfig().model_dump()[k])
    if not karpenter and changed:  # the starter file lists the defaults: only a changed value is a problem
        keys = ", ".join(f"cluster.karpenter.{k}" for k in changed)
        raise Invalid(f"{keys} set but cluster.capacity is nodegroup (Karpenter is not installed)",
                      fix="set cluster.capacity: karpenter, or remove the cluster.karpenter settings")
    if karpenter and cluster.ami_family == "Ubuntu2204":
        raise Invalid("cluster.ami_family Ubuntu2204 has no Karpenter AMI alias", fix="use AmazonLinux2023 (its "
                      "NVIDIA variant), Bottlerocket or AmazonLinux2 with cluster.capacity: karpenter")
    if karpenter and cluster.spot:
        raise Invalid("cluster.spot is the node group's setting; with cluster.capacity karpenter the GPU nodes come "
                      "from Karpenter", fix="remove cluster.spot and use cluster.karpenter.spot (true by default)")
