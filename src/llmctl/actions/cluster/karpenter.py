"""Karpenter's GPU capacity: the EC2NodeClass and NodePool(s) `cluster up` applies (pure).

eksctl's `karpenter` section installs Karpenter, its IAM roles, the node instance profile and the spot
interruption queue; these objects say which nodes it may launch: the configured GPU instance types, spot
preferred and on-demand when spot is short, the `nvidia.com/gpu` taint, a GPU limit (`cluster.nodes_max`
nodes), and removal of empty nodes, so a scaled-to-zero endpoint stops paying for its GPU.
`cluster.on_demand_base` adds a heavier on-demand pool, limited to that many nodes' GPUs: Karpenter fills
it first, so the first replicas never sit on spot.
"""

from __future__ import annotations

from llmctl import pricing
from llmctl.config.names import TAG_DEPLOYMENT, Names

NODE_CLASS = "llmctl-gpu"
GPU_POOL = "llmctl-gpu"
ON_DEMAND_POOL = "llmctl-gpu-on-demand"
# EC2's spot interruption notice, and the part of it the notice needs to reach Karpenter (EventBridge ->
# SQS) and Karpenter to cordon the node and evict the pod.
SPOT_NOTICE_S = 120
NOTICE_DELIVERY_S = 15
# The Karpenter AMI alias of each ami_family (Karpenter v1 has no Ubuntu alias; config refuses it).
AMI_ALIASES = {"AmazonLinux2023": "al2023", "AmazonLinux2": "al2", "Bottlerocket": "bottlerocket"}
# Root device of each family: Bottlerocket keeps images and the model cache on its second (data) volume.
ROOT_DEVICES = {"AmazonLinux2023": "/dev/xvda", "AmazonLinux2": "/dev/xvda", "Bottlerocket": "/dev/xvdb"}
MAX_GPUS_PER_INSTANCE = 8


def uses_spot(cfg) -> bool:
    c = cfg.cluster
    return c.karpenter.spot if c.capacity == "karpenter" else c.spot


def gpus_per_node(cfg) -> int:
    """The most GPUs one of the configured instance types has (types outside the price table: 8)."""
    return max((pricing.INSTANCES[t].gpus if t in pricing.INSTANCES else MAX_GPUS_PER_INSTANCE)
               for t in cfg.cluster.instance_types)


def node_labels(cfg, names: Names) -> dict[str, str]:
    return {**cfg.cluster.node_labels, "llmctl.io/gpu": "true", TAG_DEPLOYMENT: names.deployment}


def pools(cfg) -> list[dict]:
    c = cfg.cluster
    per_node = gpus_per_node(cfg)
    spot = ["spot", "on-demand"] if c.karpenter.spot else ["on-demand"]
    general = {"name": GPU_POOL, "weight": 10, "capacity_types": spot, "gpu_limit": str(c.nodes_max * per_node)}
    if not c.on_demand_base:
        return [general]
    base = {"name": ON_DEMAND_POOL, "weight": 100, "capacity_types": ["on-demand"],
            "gpu_limit": str(c.on_demand_base * per_node)}
    return [base, general]


def karpenter_objects(cfg, names: Names) -> list[dict]:
    """The EC2NodeClass, then the NodePool(s) that reference it."""
    from llmctl.render import render_documents

    c = cfg.cluster
    node_class = render_documents(
        "karpenter/ec2nodeclass.yaml.j2", name=NODE_CLASS, labels=names.k8s_labels, cluster=names.cluster,
        ami_alias=f"{AMI_ALIASES[c.ami_family]}@{c.karpenter.ami_version}", node_role=names.karpenter_node_role,
        root_device=ROOT_DEVICES[c.ami_family], volume_size_gb=c.volume_size_gb, tags=dict(names.aws_tags))
    node_pools = render_documents(
        "karpenter/nodepool.yaml.j2", pools=pools(cfg), labels=names.k8s_labels, node_labels=node_labels(cfg, names),
        node_class=NODE_CLASS, instance_types=c.instance_types, zones=c.availability_zones,
        termination_grace_s=SPOT_NOTICE_S - NOTICE_DELIVERY_S, consolidate_after=c.karpenter.consolidate_after)
    return node_class + node_pools
