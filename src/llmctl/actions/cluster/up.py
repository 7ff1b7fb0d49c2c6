"""The steps of `cluster up`, each observing before it acts, so a re-run after any failure resumes.

All steps share one `ClusterState`: the cluster is described once per plan, and again only
after a step that changed it (eksctl created the cluster, the provider, the node group).
"""

from __future__ import annotations

import time

from llmctl.actions.cluster.manager import ClusterManager, ClusterState
from llmctl.actions.cluster.render import device_plugin_objects, is_device_plugin, labelled_ours
from llmctl.errors import LlmctlError
from llmctl.k8s.nodes import GPU, gpu_allocatable, node_ready
from llmctl.plan import Action, Plan, Step


def up_plan(m: ClusterManager, gpu_timeout_s: float | None = None) -> Plan:
    state = m.state()
    plan = Plan()
    # with Karpenter no GPU node exists before a pod asks for one: its NodePool is the last step
    last = _karpenter_step(m, state) if m.cfg.cluster.capacity == "karpenter" else _gpu_wait_step(m, state, gpu_timeout_s)
    for step in (_cluster_step(m, state), _oidc_step(m, state), _nodegroup_step(m, state),
                 _kubeconfig_step(m, state), _irsa_step(m, state), _device_plugin_step(m, state), last):
        plan.add(step)
    return plan


def _cluster_step(m: ClusterManager, state: ClusterState) -> Step:
    def observe() -> Action:
        return "none" if state.usable_cluster() is not None else "create"

    def apply() -> str:
        path = m.write_config_file()
        m.eksctl.create_cluster(path, m.stream(f"eksctl create cluster -f {path} (15-25 minutes)"))
        state.changed()
        return f"Kubernetes {m.cfg.cluster.kubernetes_version} in {m.names.region}"

    return Step(f"EKS cluster {m.names.cluster}", "eks-cluster", observe, apply, detail="eksctl create cluster")


def _oidc_step(m: ClusterManager, state: ClusterState) -> Step:
    def observe() -> Action:
        return "none" if state.oidc_provider() else "create"

    def apply() -> str:
        path = m.write_config_file()
        m.eksctl.associate_oidc_provider(path, m.stream("eksctl utils associate-iam-oidc-provider"))
        state.changed()
        return state.issuer()

    return Step("IAM OIDC provider", "iam-oidc-provider", observe, apply, detail="for IRSA")


def _nodegroup_step(m: ClusterManager, state: ClusterState) -> Step:
    c = m.cfg.cluster

    def observe() -> Action:
        if state.cluster() is None:
            return "create"
        return "none" if state.nodegroup() is not None else "create"

    def apply() -> None:
        path = m.write_config_file()
        m.eksctl.create_nodegroup(path, c.nodegroup_name, m.stream(f"eksctl create nodegroup --include {c.nodegroup_name}"))
        state.changed()

    kind = "spot" if c.spot else "on-demand"
    return Step(f"GPU node group {c.nodegroup_name}", "eks-nodegroup", observe, apply,
                detail=f"{c.nodes_desired} x {'/'.join(c.instance_types)} {kind} ({c.nodes_min}-{c.nodes_max})")


def _kubeconfig_step(m: ClusterManager, state: ClusterState) -> Step:
    def observe() -> Action:
        return "none" if state.context() else "create"

    def apply() -> str:
        m.eksctl.write_kubeconfig(m.names.cluster, m.names.region, m.stream("eksctl utils write-kubeconfig"))
        state.changed()
        return state.context()

    return Step("kubeconfig context", "kubeconfig", observe, apply)


def _irsa_step(m: ClusterManager, state: ClusterState) -> Step:
    from llmctl.aws.irsa import irsa_role_step

    def inner() -> Step | None:
        issuer = state.issuer()
        if issuer is None:
            return None
        return irsa_role_step(
            m.aws.iam, m.names.irsa_role, account_id=m.aws.account_id, issuer=issuer,
            namespace=m.names.namespace, service_account=m.names.service_account,
            bucket=m.cfg.model.bucket, prefix=m.cfg.model.prefix, tags=m.names.aws_tags, path=m.names.iam_path,
            partition=m.partition)

    def observe() -> Action:
        role = inner()
        return "create" if role is None else role.observe()

    def apply() -> str | None:
        role = inner()
        if role is None:
            raise LlmctlError(f"cluster {m.names.cluster} has no OIDC issuer; cannot create the IRSA role",
                              hint="re-run `llmctl cluster up`")
        return role.apply()

    from llmctl.aws.iam import get_role, legacy_path_note

    moved = legacy_path_note(get_role(m.aws.iam, m.names.irsa_role), m.names.iam_path)
    return Step(f"IAM role {m.names.irsa_role}", "iam-role", observe, apply,
                detail=moved or f"IRSA for {m.names.namespace}/{m.names.service_account}: read "
                                f"s3://{m.cfg.model.bucket}/{m.cfg.model.prefix}/")


def foreign_device_plugin(kube, names) -> str | None:
    """A device plugin the node image or someone else runs (not ours), as `namespace/name`."""
    for ds in kube.list("apps/v1", "DaemonSet"):
        if is_device_plugin(ds) and not labelled_ours(ds, names):
            return f"{ds['metadata']['namespace']}/{ds['metadata']['name']}"
    return None


def _device_plugin_step(m: ClusterManager, state: ClusterState) -> Step:
    version = m.cfg.cluster.device_plugin_version
    step = Step(f"NVIDIA device plugin {version}", "k8s-daemonset", lambda: "none", lambda: None,
                detail="DaemonSet kube-system/nvidia-device-plugin-daemonset")

    def observe() -> Action:
        if state.cluster() is None or state.context() is None:
            return "create"
        if m.cfg.cluster.ami_family == "Bottlerocket":
            step.detail = "Bottlerocket runs the NVIDIA device plugin on the host"
            return "none"
        foreign = foreign_device_plugin(state.kube(), m.names)
        if foreign:
            step.detail = f"already running as {foreign} (not managed by llmctl)"
            return "none"
        result = state.kube().apply_all(device_plugin_objects(m.cfg, m.names), dry_run=True)
        actions = {r.action for r in result}
        return "create" if "created" in actions else ("update" if "updated" in actions else "none")

    def apply() -> str:
        results = state.kube().apply_all(device_plugin_objects(m.cfg, m.names))
        return ", ".join(f"{r.kind} {r.namespace}/{r.name} {r.action}" for r in results)

    step.observe, step.apply = observe, apply
    return step


def _karpenter_step(m: ClusterManager, state: ClusterState) -> Step:
    """The EC2NodeClass and GPU NodePool(s): Karpenter (installed by eksctl) launches GPU nodes from them."""
    from llmctl.actions.cluster.karpenter import karpenter_objects

    objects = karpenter_objects(m.cfg, m.names)
    pools = [o["metadata"]["name"] for o in objects if o["kind"] == "NodePool"]

    def observe() -> Action:
        if state.cluster() is None or state.context() is None:
            return "create"
        if not state.kube().has_kind("karpenter.sh/v1", "NodePool"):
            return "create"
        actions = {r.action for r in state.kube().apply_all(objects, dry_run=True)}
        return "create" if "created" in actions else ("update" if "updated" in actions else "none")

    def apply() -> str:
        kube = state.kube()
        if not kube.has_kind("karpenter.sh/v1", "NodePool"):
            raise LlmctlError("the cluster has no NodePool kind: Karpenter is not installed",
                              hint="eksctl installs it from the ClusterConfig's karpenter section; check `helm -n "
                                   "karpenter list` and the eksctl-*-karpenter stack, then re-run `llmctl cluster up`")
        results = kube.apply_all(objects)
        return ", ".join(f"{r.kind} {r.name} {r.action}" for r in results)

    return Step(f"Karpenter GPU capacity ({', '.join(pools)})", "k8s-nodepool", observe, apply,
                detail="EC2NodeClass and NodePool: spot first, GPU nodes launched for pending pods")


def _gpu_wait_step(m: ClusterManager, state: ClusterState, timeout_s: float | None) -> Step:
    timeout = timeout_s or m.cfg.cluster.gpu_wait_timeout_s

    def observe() -> Action:
        if state.cluster() is None or state.context() is None:
            return "run"
        return "none" if any(gpu_allocatable(n) >= 1 for n in state.kube().list("v1", "Node")) else "run"

    def apply() -> str:
        node = wait_for_gpu_node(m, state.kube(), timeout)
        return f"{node['metadata']['name']} reports {gpu_allocatable(node)} x {GPU}"

    return Step(f"a schedulable GPU ({GPU} >= 1)", "wait", observe, apply, detail=f"watch nodes, up to {timeout:.0f}s")


def wait_for_gpu_node(m: ClusterManager, kube, timeout_s: float) -> dict:
    """Watch nodes until one is Ready with allocatable nvidia.com/gpu >= 1; report changes as they come."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, tuple] = {}
    with m.output.status(f"waiting for a node with allocatable {GPU} (up to {timeout_s:.0f}s)"):
        while (remaining := deadline - time.monotonic()) > 0:
            for type_, node in kube.watch("v1", "Node", timeout_s=remaining):
                name = node["metadata"]["name"]
                if type_ == "DELETED":
                    seen.pop(name, None)
                    continue
                state = (node_ready(node), gpu_allocatable(node))
                if seen.get(name) != state:
                    seen[name] = state
                    itype = (node["metadata"].get("labels") or {}).get("node.kubernetes.io/instance-type", "?")
                    m.output.info(f"  node {name} ({itype}): {'Ready' if state[0] else 'NotReady'}, "
                                  f"{GPU} allocatable {state[1]}")
                if state[0] and state[1] >= 1:
                    return node
    raise LlmctlError(
        f"no node reported allocatable {GPU} within {timeout_s:.0f}s "
        f"({len(seen)} node(s) seen: {', '.join(seen) or 'none'})",
        hint="check the device plugin pods (`kubectl -n kube-system get pods -l name=nvidia-device-plugin-ds`) and "
             "the node group's health in the EKS console; then re-run `llmctl cluster up`")
