"""The eksctl ClusterConfig and the NVIDIA device plugin manifest `cluster up` applies (pure)."""

from __future__ import annotations

from llmctl.config.names import LABEL_INSTANCE, LABEL_MANAGED_BY, TAG_DEPLOYMENT, Names

DEVICE_PLUGIN_IMAGE = "k8s-device-plugin"


def render_context(cfg, names: Names) -> dict:
    from llmctl.actions.cluster.karpenter import node_labels as gpu_node_labels

    cluster = cfg.cluster.model_dump()
    cluster.update(name=names.cluster, region=names.region)
    karpenter = cfg.cluster.karpenter.model_dump() if cfg.cluster.capacity == "karpenter" else None
    # with Karpenter the node group runs the system pods; the GPU labels go on Karpenter's nodes
    node_labels = {"llmctl.io/system": "true", TAG_DEPLOYMENT: names.deployment} if karpenter else \
        gpu_node_labels(cfg, names)
    return {"cluster": cluster, "tags": dict(names.aws_tags), "node_labels": node_labels, "karpenter": karpenter}


def render_cluster_config(cfg, names: Names) -> str:
    """The eksctl ClusterConfig YAML for this deployment (pure: config in, text out)."""
    from llmctl.render import render_text

    return render_text("cluster/clusterconfig.yaml.j2", **render_context(cfg, names))


def device_plugin_objects(cfg, names: Names) -> list[dict]:
    from llmctl.render import render_documents

    return render_documents("cluster/nvidia-device-plugin.yaml.j2", labels=names.k8s_labels,
                            version=cfg.cluster.device_plugin_version)


def is_device_plugin(ds: dict) -> bool:
    """A DaemonSet running NVIDIA's device plugin, whoever installed it."""
    containers = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return "nvidia-device-plugin" in ds["metadata"]["name"] or any(
        DEVICE_PLUGIN_IMAGE in str(c.get("image", "")) for c in containers)


def labelled_ours(obj: dict, names: Names) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return labels.get(LABEL_MANAGED_BY) == "llmctl" and labels.get(LABEL_INSTANCE) == names.deployment
