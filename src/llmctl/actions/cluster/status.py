"""`cluster status`: control plane, node groups, GPU nodes, device plugin health and the IRSA role,
from one observation of the cluster (read-only)."""

from __future__ import annotations

from llmctl.actions.cluster.manager import ClusterManager, ClusterState
from llmctl.actions.cluster.render import is_device_plugin, labelled_ours
from llmctl.aws.tagging import is_ours
from llmctl.errors import LlmctlError
from llmctl.k8s.nodes import gpu_allocatable, node_ready


def cluster_status(m: ClusterManager) -> dict:
    from llmctl.aws import eks

    state = m.state()
    cluster = state.cluster()
    out: dict = {"name": m.names.cluster, "region": m.names.region, "exists": cluster is not None}
    if cluster is None:
        return out
    issuer = state.issuer()
    out["control_plane"] = {"status": cluster.get("status"), "version": cluster.get("version"),
                            "endpoint": cluster.get("endpoint"), "oidc_issuer": issuer,
                            "managed_by_llmctl": is_ours(cluster.get("tags") or {}, m.names.deployment)}
    out["oidc_provider"] = state.oidc_provider()
    out["nodegroups"] = [_nodegroup(ng) for ng in eks.nodegroups(m.aws.eks, m.names.cluster)]
    out["irsa_role"] = _irsa_status(m, issuer)
    out["kubeconfig_context"] = state.context()
    try:
        nodes = state.kube().list("v1", "Node")
        out["nodes"] = [{
            "name": n["metadata"]["name"],
            "instance_type": (n["metadata"].get("labels") or {}).get("node.kubernetes.io/instance-type"),
            "nodegroup": (n["metadata"].get("labels") or {}).get("eks.amazonaws.com/nodegroup"),
            "ready": node_ready(n), "gpu_allocatable": gpu_allocatable(n)} for n in nodes]
        out["device_plugin"] = _device_plugin_status(m, state)
    except LlmctlError as exc:
        out["nodes"] = None
        out["device_plugin"] = None
        out["kube_error"] = exc.message
        out["kube_fix"] = exc.hint
    out["gpu_schedulable"] = any(n["ready"] and n["gpu_allocatable"] >= 1 for n in out["nodes"] or [])
    return out


def _nodegroup(ng: dict) -> dict:
    scaling = ng.get("scalingConfig") or {}
    return {"name": ng["nodegroupName"], "status": ng.get("status"), "instance_types": ng.get("instanceTypes"),
            "capacity_type": ng.get("capacityType"), "desired": scaling.get("desiredSize"),
            "min": scaling.get("minSize"), "max": scaling.get("maxSize")}


def _irsa_status(m: ClusterManager, issuer: str | None) -> dict:
    """Does the role exist, and do its trust and permissions match the cluster and config exactly?"""
    from llmctl.aws import iam
    from llmctl.aws.irsa import POLICY_NAME, permissions_policy, trust_policy

    name = m.names.irsa_role
    role = iam.get_role(m.aws.iam, name)
    if role is None:
        return {"name": name, "exists": False}
    trust = iam.document(role["AssumeRolePolicyDocument"])
    expected_trust = trust_policy(m.aws.account_id, issuer, m.names.namespace, m.names.service_account,
                                  m.partition) if issuer else None
    policies = iam.inline_policies(m.aws.iam, name)
    policy_ok = bool(m.cfg.model.bucket) and list(policies) == [POLICY_NAME] and policies[POLICY_NAME] == \
        permissions_policy(m.cfg.model.bucket, m.cfg.model.prefix, m.partition)
    return {"name": name, "exists": True, "arn": role["Arn"], "trust_matches_cluster": trust == expected_trust,
            "permissions_match": policy_ok}


def _device_plugin_status(m: ClusterManager, state: ClusterState) -> dict | None:
    for ds in state.kube().list("apps/v1", "DaemonSet"):
        if not is_device_plugin(ds):
            continue
        status = ds.get("status") or {}
        containers = ds["spec"]["template"]["spec"].get("containers") or [{}]
        desired, ready = status.get("desiredNumberScheduled", 0), status.get("numberReady", 0)
        return {"name": f"{ds['metadata']['namespace']}/{ds['metadata']['name']}",
                "image": containers[0].get("image"),
                "managed_by_llmctl": labelled_ours(ds, m.names),
                "desired": desired, "ready": ready, "healthy": desired > 0 and ready == desired}
    return None
