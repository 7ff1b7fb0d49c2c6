"""Choose how a new revision replaces the serving one, from what the cluster has now (the choice is pure).

`surge` (blue-green) starts the new revision's own Deployment beside the serving one (`traffic.py`): it needs
a GPU for each new pod, free on a node the pod fits now, or from growing the GPU node group by one node within its max size and
the account's quota (then the plan names the temporary node and its cost, and the group shrinks afterwards).
`rolling` replaces one pod at a time when replicas > 1 and no GPU is spare: capacity dips by one pod, traffic
never stops. `recreate` is the last resort (every pod stops before the new one starts) and is only taken with
the user's consent (`--allow-downtime` or a yes), stating the expected downtime from the last measured cold
start. A surge that cannot schedule is refused here, with the numbers, instead of leaving a pod Pending.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from llmctl.actions.deploy import ANNOTATION_CONFIG_HASH
from llmctl.errors import LlmctlError
from llmctl.k8s.nodes import GPU, gpu_allocatable, node_ready

INITIAL, SURGE, ROLLING, RECREATE = "initial", "surge", "rolling", "recreate"
BLUE_GREEN = "blue-green"  # deploy.strategy's other name for surge: every new pod beside the serving ones


@dataclass(frozen=True)
class NodeGroup:
    name: str
    size: int  # desired size now
    max_size: int
    instance_type: str
    hourly_usd: float
    quota_vcpus: float | None  # the EC2 quota that limits the group; None: could not be read
    vcpus_per_node: int


@dataclass(frozen=True)
class ClusterFacts:
    free_gpus: int  # allocatable nvidia.com/gpu not requested by any pod, on Ready nodes the pod fits
    fitting_nodes: int
    node_group: NodeGroup | None = None
    last_cold_start_s: float | None = None  # the serving revision's measured time to Ready

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PlanRequest:
    strategy: str  # auto | surge | recreate
    replicas: int
    gpus_per_pod: int
    allow_downtime: bool
    serving: bool  # a revision serves now (else there is nothing to keep up)


@dataclass
class RolloutPlan:
    strategy: str
    reason: str
    grow_node_group: str | None = None  # the group grown by one node for the surge (shrunk afterwards)
    temporary_node: dict | None = None  # {"instance_type", "hourly_usd"} of that node
    downtime_s: float | None = None  # recreate: the expected outage (the last measured cold start)
    needs_consent: bool = False  # recreate without --allow-downtime: ask, or refuse when no one can answer
    facts: ClusterFacts | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["facts"] = self.facts.to_dict() if self.facts else None
        return data


class SurgeRefused(LlmctlError):
    """A surge the cluster cannot schedule: refused at plan time (nothing applied), with the numbers."""


def plan(request: PlanRequest, facts: ClusterFacts | None) -> RolloutPlan:
    """The strategy and why (pure)."""
    if not request.serving or facts is None:  # (the cluster is only read when a revision serves)
        return RolloutPlan(INITIAL, "nothing serves yet: the first revision starts directly", facts=facts)
    need = request.gpus_per_pod
    if need == 0:
        return RolloutPlan(SURGE, "the pod needs no GPU: a second pod always fits", facts=facts)
    if request.strategy == RECREATE:
        return _recreate("deploy.strategy is recreate", request, facts)
    need_all = need * max(1, request.replicas)  # blue-green: every new pod beside the serving ones
    if facts.free_gpus >= need_all:
        return RolloutPlan(SURGE, f"{facts.free_gpus} GPU(s) free now on {facts.fitting_nodes} fitting node(s); "
                                  f"the new revision's pods need {need_all}", facts=facts)
    growth = _growth(facts.node_group, need) if need_all == need else \
        f"{request.replicas} new pods need {need_all} GPUs beside the serving ones, one more node is not enough"
    if growth is None:
        group = facts.node_group
        return RolloutPlan(SURGE, f"no GPU free now ({facts.free_gpus} free, {need} needed); node group "
                                  f"{group.name} grows {group.size} -> {group.size + 1} (max {group.max_size}) "
                                  "for the new pod, and shrinks back after",
                           grow_node_group=group.name,
                           temporary_node={"instance_type": group.instance_type, "hourly_usd": group.hourly_usd},
                           facts=facts)
    if request.strategy in (SURGE, BLUE_GREEN):
        raise SurgeRefused(f"a surge cannot schedule: {facts.free_gpus} GPU(s) free, {need_all} needed; {growth}",
                           hint="free a GPU, raise cluster.nodes_max (and the quota), or set deploy.strategy: auto "
                                "to let the planner replace the pod in place")
    if request.replicas > 1:
        return RolloutPlan(ROLLING, f"no GPUs for a surge ({facts.free_gpus} free, {need_all} needed; {growth}); "
                                    f"{request.replicas} replicas: one pod is replaced at a time, the others serve",
                           facts=facts)
    return _recreate(f"no GPU for a second pod ({facts.free_gpus} free, {need} needed; {growth})", request, facts)


def _growth(group: NodeGroup | None, need: int) -> str | None:
    """None when the node group can grow by one node; else why not (the numbers)."""
    if group is None:
        return "no managed GPU node group to grow"
    if group.size >= group.max_size:
        return f"node group {group.name} is at its max size ({group.size}/{group.max_size})"
    wanted = (group.size + 1) * group.vcpus_per_node
    if group.quota_vcpus is not None and group.quota_vcpus < wanted:
        return (f"one more {group.instance_type} needs {wanted} vCPUs of quota, the account has "
                f"{group.quota_vcpus:g}")
    return None


def _recreate(why: str, request: PlanRequest, facts: ClusterFacts) -> RolloutPlan:
    down = facts.last_cold_start_s
    expected = f"about {down:.0f}s (the last measured cold start)" if down else "a full cold start (none measured yet)"
    return RolloutPlan(RECREATE, f"{why}: every pod stops before the new one starts; downtime {expected}",
                       downtime_s=down, needs_consent=not request.allow_downtime, facts=facts)


def deployment_strategy(strategy: str) -> dict:
    """The Deployment's `strategy` for a planned rollout."""
    if strategy == RECREATE:
        return {"type": "Recreate"}
    if strategy == ROLLING:
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


# -- reading the cluster ---------------------------------------------------------------------------


def _tolerates(tolerations: list[dict], taint: dict) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator", "Equal") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def fits(node: dict, pod_spec: dict) -> bool:
    """Whether the scheduler could place the pod on the node, GPUs aside: Ready, schedulable, its node
    selector matched and every NoSchedule/NoExecute taint tolerated."""
    labels = node["metadata"].get("labels") or {}
    if not node_ready(node) or (node.get("spec") or {}).get("unschedulable"):
        return False
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    return all(_tolerates(pod_spec.get("tolerations") or [], t) for t in (node.get("spec") or {}).get("taints") or []
               if t.get("effect") in ("NoSchedule", "NoExecute"))


def _gpu_requests(pod: dict) -> int:
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        total += int(str((res.get("requests") or res.get("limits") or {}).get(GPU, 0)))
    return total


def free_gpus(nodes: list[dict], pods: list[dict], pod_spec: dict, own_hash: str | None = None) -> tuple[int, int]:
    """(free GPUs, fitting nodes): allocatable minus what scheduled, unfinished pods request; pods of the
    revision being planned (`own_hash`, a resumed rollout's) hold GPUs that are already the new revision's."""
    used: dict[str, int] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        ours = own_hash is not None and \
            ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_CONFIG_HASH) == own_hash
        if node and not ours and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            used[node] = used.get(node, 0) + _gpu_requests(pod)
    fitting = [n for n in nodes if fits(n, pod_spec)]
    free = sum(max(0, gpu_allocatable(n) - used.get(n["metadata"]["name"], 0)) for n in fitting)
    return free, len(fitting)


def cluster_facts(kube, pod_spec: dict, node_group: NodeGroup | None, last_cold_start_s: float | None,
                  own_hash: str | None = None) -> ClusterFacts:
    free, fitting = free_gpus(kube.list("v1", "Node"), kube.list("v1", "Pod"), pod_spec, own_hash)
    return ClusterFacts(free, fitting, node_group, last_cold_start_s)
