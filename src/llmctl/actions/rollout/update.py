"""Replace the serving revision with a new one, or put the previous one back when the new one fails.

`prepare()` reads the recorded revisions and the cluster, and plans (nothing written): a deploy whose config
hash is the serving revision's is no update at all; one whose hash an earlier record has reuses that number
(a re-run after an interrupted update). `Update` then carries the rollout through: the temporary node (grow,
wait for its GPU, shrink after), the revision record (written `rolling-out` before anything is applied, so a
killed run leaves a trace), the gate on the new pod through a port-forward (never the public address), and on
any failure (crash loop, OOM kill, timeout, failed gate) the new revision's Deployment removed while the
Service stays on the previous one (`traffic.py`), the temporary node released, and the record `failed`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmctl.actions import revisions as revs
from llmctl.actions.deploy import ANNOTATION_CONFIG_HASH, ANNOTATION_MODEL_MANIFEST
from llmctl.actions.rollout import planner
from llmctl.config import LlmctlConfig, Names
from llmctl.errors import LlmctlError


class GateFailed(LlmctlError):
    """The promotion gate refused the new revision (its report is on the revision record)."""

    def __init__(self, report):
        names = ", ".join(c.name for c in report.checks if not c.passed) or "see the gate's report"
        super().__init__(f"the new revision failed its promotion gate ({names}); the previous revision serves",
                         hint="fix the model or the golden prompts, then deploy again (`llmctl history` shows the "
                              "gate's results)")
        self.report = report


def config_hash(documents: list[dict]) -> str:
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    return deployment["spec"]["template"]["metadata"]["annotations"][ANNOTATION_CONFIG_HASH]


def set_strategy(documents: list[dict], strategy: dict) -> None:
    next(d for d in documents if d["kind"] == "Deployment")["spec"]["strategy"] = strategy


@dataclass
class Update:
    """One planned change of what serves (or none: `record` is the serving revision then)."""

    kube: object
    names: Names
    records: list[revs.RevisionRecord]
    record: revs.RevisionRecord
    previous: revs.RevisionRecord | None
    plan: planner.RolloutPlan | None  # None: what serves does not change
    grown: dict | None = field(default=None)  # {"name", "size"} while a temporary node is asked for
    replicas: int = 0  # the pods the new revision starts with (`starting_replicas`; 0: no change)

    @property
    def changes(self) -> bool:
        return self.plan is not None


def prepare(kube, cfg: LlmctlConfig, names: Names, documents: list[dict], image: str, *,
            node_group: Callable[[], planner.NodeGroup | None] = lambda: None,
            rollback_of: int | None = None) -> Update:
    """Plan the change from the recorded revisions and the cluster (reads only)."""
    records = revs.history(kube, names)
    wanted = config_hash(documents)
    current = revs.serving(records)
    if current is not None and current.config_hash == wanted:
        live = next((d for d in current.documents if d["kind"] == "Deployment"), None)
        if live is not None:  # keep the strategy its rollout used: a re-run changes nothing
            set_strategy(documents, live["spec"]["strategy"])
        return Update(kube, names, records, current, current, None, grown=revs.grown(records))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    pod_spec = deployment["spec"]["template"]["spec"]
    replicas = starting_replicas(kube, cfg, names, current)
    request = planner.PlanRequest(cfg.deploy.strategy, replicas, cfg.deploy.gpus,
                                  cfg.deploy.allow_downtime, serving=current is not None)
    earlier = revs.by_config_hash(records, wanted)
    resuming = earlier is not None and earlier.outcome == revs.ROLLING_OUT  # an interrupted rollout of this revision
    facts = None  # the first revision has nothing to keep serving: no capacity to look at
    if request.serving:
        # pods of the wanted revision (a resumed rollout's, a kept revision's) are already the new revision's
        facts = planner.cluster_facts(kube, pod_spec, None, current.cold_start_s, wanted)
        if facts.free_gpus < cfg.deploy.gpus:  # only then is the node group asked about
            facts = planner.ClusterFacts(facts.free_gpus, facts.fitting_nodes, node_group(), facts.last_cold_start_s)
    plan = planner.plan(request, facts)
    if plan.strategy != planner.INITIAL:
        set_strategy(documents, planner.deployment_strategy(plan.strategy))
    env = next(d for d in revs.revision_documents(documents) if d["kind"] == "ConfigMap")["data"]
    number = earlier.number if resuming else revs.next_number(records)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    record = revs.RevisionRecord(
        number=number, created=revs.now_iso(), image=image, config_hash=wanted,
        model=f"s3://{env.get('S3_BUCKET')}/{env.get('S3_PREFIX')}",
        manifest_digest=annotations.get(ANNOTATION_MODEL_MANIFEST),
        engine={k: v for k, v in env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")},
        strategy=plan.strategy, reason=plan.reason, rollback_of=rollback_of,
        documents=revs.revision_documents(documents))
    record.grown = revs.grown(records)  # a temporary node still out: this rollout gives it back
    return Update(kube, names, records, record, current, plan, grown=record.grown, replicas=replicas)


def starting_replicas(kube, cfg: LlmctlConfig, names: Names, current: revs.RevisionRecord | None) -> int:
    """The pods the new revision starts with: the config's; under an autoscaler, as many as the serving
    revision runs now (its live Deployment, as the autoscaler scaled it), so capacity does not dip at the
    switch while the autoscaler catches up (the planner counts GPUs for all of them)."""
    if not cfg.deploy.autoscaling.enabled:
        return cfg.deploy.replicas
    floor = max(1, cfg.deploy.replicas)
    if current is None:
        return floor
    from llmctl.actions.rollout.traffic import live_deployment

    live = live_deployment(kube, names, current) or {}
    return max(floor, int((live.get("spec") or {}).get("replicas") or 0))


def grow(update: Update, scale: Callable[[str, int], None], timeout_s: float, pod_spec: dict, gpus: int,
         say: Callable[[str], None] = lambda m: None) -> None:
    """Ask the node group for one more node, then wait until a node the pod fits offers the GPU. The record
    says so first (`grown`), so a run killed before the give-back leaves the next one to finish it."""
    group = update.plan.facts.node_group
    update.grown = update.record.grown = update.grown or {"name": group.name, "size": group.size}
    revs.save(update.kube, update.names, update.record)
    say(f"growing node group {group.name} {group.size} -> {group.size + 1} for the surge pod")
    scale(group.name, group.size + 1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        free, _ = planner.free_gpus(update.kube.list("v1", "Node"), update.kube.list("v1", "Pod"), pod_spec)
        if free >= gpus:
            return
        time.sleep(0.5)
    shrink(update, scale)
    raise LlmctlError(f"node group {group.name} did not offer a GPU node within {timeout_s:.0f}s of growing",
                      hint="check the node group's health in the EKS console (instance capacity in the zone, "
                           "quota), then deploy again")


def shrink(update: Update, scale: Callable[[str, int], None], release: Callable[[str], None] | None = None, *,
           serving_hash: str = "", timeout_s: float = 60.0, say: Callable[[str], None] = lambda m: None) -> None:
    """Give the temporary node back: the group returns to the size it had before the surge. With `release`
    (terminate an instance), the node the rollout emptied goes (cordoned, drained of the endpoint's pods), never
    one a pod of the serving revision (`serving_hash`) runs on; when none can go so, the group stays grown
    (and the record says so: the next deploy tries again). The records' `grown` is cleared once it is back."""
    from llmctl.actions.rollout.capacity import release_node

    if update.grown:
        name, size = update.grown["name"], update.grown["size"]
        if release is None or release_node(update.kube, update.names, name, size, serving_hash, release,
                                           timeout_s, say):
            scale(name, size)
            for record in {r.number: r for r in [*update.records, update.record] if r.grown}.values():
                record.grown = None
                revs.save(update.kube, update.names, record)
        update.grown = None


def begin(update: Update) -> None:
    if update.changes:
        revs.save(update.kube, update.names, update.record)


def run_gate(update: Update, pod: str | None, port: int, gate: Callable | None, api_key: str) -> None:
    """The promotion gate (`gate(url, api_key, baseline)`) against the new pod itself, through a port-forward,
    before the revision counts as serving; raises GateFailed. The first revision has no traffic to protect:
    its smoke request is its check."""
    if gate is None or pod is None or not update.changes or update.previous is None:
        return
    from llmctl.k8s.portforward import PortForward

    baseline = (update.previous.gate or {}).get("bench")
    with PortForward(update.kube, update.names.namespace, pod, port) as forward:
        report = gate(forward.url, api_key, baseline)
    update.record.gate = report.to_dict()
    if not report.passed:
        raise GateFailed(report)


def promote(update: Update, cold_start_s: float | None) -> None:
    """The new revision serves: record it (the one before is superseded)."""
    if not update.changes:  # what serves did not change; a rollout killed on the way to another one ended
        revs.settle_interrupted(update.kube, update.names, update.records, update.record)
        return
    if cold_start_s:
        update.record.cold_start_s = round(cold_start_s, 3)
    revs.mark_serving(update.kube, update.names, update.records, update.record)


def roll_back(update: Update, error: LlmctlError, apply: Callable[[list[dict]], object]) -> None:
    """Record the failure, then `apply` (traffic.Stage.back: the new revision pruned, the previous one's
    documents again where a recreate stopped it; its pods keep, or regain, the traffic)."""
    update.record.outcome = revs.FAILED
    update.record.diagnosis = f"{error.message}" + (f" ({error.hint})" if error.hint else "")
    revs.save(update.kube, update.names, update.record)
    if update.previous is not None and update.previous.documents:
        apply(update.previous.documents)


def wait_for_revision(kube, names: Names, record: revs.RevisionRecord, replicas: int, timeout_s: float) -> bool:
    """Whether `replicas` Ready pods of `record` (by config hash) serve within `timeout_s`."""
    from llmctl.actions.rollout.pods import is_ready

    deadline = time.monotonic() + timeout_s
    selector = ",".join(f"{k}={v}" for k, v in names.k8s_labels.items())
    while time.monotonic() < deadline:
        pods = kube.list("v1", "Pod", names.namespace, label_selector=selector)
        ready = [p for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp") and
                 (p["metadata"].get("annotations") or {}).get(ANNOTATION_CONFIG_HASH) == record.config_hash]
        if len(ready) >= replicas:
            return True
        time.sleep(0.2)
    return False
