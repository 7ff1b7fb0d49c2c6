"""`llmctl deploy` (and `llmctl rollback`) as one action: plan, apply, follow, gate, promote or roll back.

The planner's choice is shown (`on_plan`) before anything is written; a temporary GPU node is asked for
before the new pods exist (so they never wait Pending); the new revision's record is written before the
apply; the new revision comes up beside the serving one with the Service still on the old pods (`traffic.py`;
`rolling.py` when only one pod at a time fits); the rollout watcher and its diagnosis decide whether the new
pods came up; the gate judges the new pod directly; only then does the Service move to it, and the old
revision goes (or is kept for an instant rollback). A failure on the way removes the new revision, the Service
never having left the old one (`update.roll_back`), and re-raises the diagnosis, so the command exits 1 with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from llmctl.actions import deploy as manifests
from llmctl.actions import exposure as exposures
from llmctl.actions import front as fronts
from llmctl.actions.rollout import rolling, traffic
from llmctl.actions.rollout import update as updates
from llmctl.config import LlmctlConfig, Names
from llmctl.errors import LlmctlError
from llmctl.k8s.apply import ApplyResult

UNROUTED_S = 15.0  # how long the interceptor may answer 404 for the NLB's name just added to its hosts


@dataclass
class DeployOutcome:
    objects: list[ApplyResult]
    image: str
    api_key: str
    api_key_created: bool
    timeline: object | None = None  # rollout.Timeline
    ready_replicas: int = 0
    endpoint: str | None = None
    smoke: object | None = None  # rollout.SmokeResult
    exposure: exposures.Exposure | None = None
    update: updates.Update | None = None

    def to_dict(self, show_api_key: bool = False) -> dict:
        up = self.update
        data = {
            "objects": [o.to_dict() for o in self.objects],
            "changed": any(o.action != "unchanged" for o in self.objects),
            "image": self.image,
            "api_key_created": self.api_key_created,
            "ready_replicas": self.ready_replicas,
            "timeline": self.timeline.to_dict() if self.timeline is not None else None,
            "endpoint": self.endpoint,
            "smoke": self.smoke.to_dict() if self.smoke is not None else None,
            "exposure": self.exposure.to_dict() if self.exposure is not None else None,
            "revision": up.record.to_dict() if up else None,
            "plan": up.plan.to_dict() if up and up.plan else None,
        }
        if show_api_key:
            data["api_key"] = self.api_key
        return data


def deploy(cfg: LlmctlConfig, names: Names, kube, *, image: str, role_arn: str, timeout_s: float,
           report: Callable[[ApplyResult], None] = lambda r: None,
           emit: Callable = lambda e: None,
           on_applied: Callable[[], None] = lambda: None,
           on_plan: Callable[[updates.Update], None] = lambda u: None,
           gate: Callable[[str, str, dict | None], object] | None = None,
           node_group: Callable[[], object] = lambda: None,
           scale: Callable[[str, int], None] | None = None,
           release: Callable[[str], None] | None = None,
           say: Callable[[str], None] = lambda m: None,
           documents: list[dict] | None = None,
           rollback_of: int | None = None,
           smoke: bool = True, cold_start_s: float | None = None,
           manifest_digest: str | None = None) -> DeployOutcome:
    """Apply, follow the rollout to Ready, gate the new revision, wait for the endpoint's address, send one
    request (through the load balancer, or a port-forward to the ClusterIP Service). `documents` (rollback)
    replaces the rendered revision documents with a recorded revision's; `cold_start_s` (the last measured)
    sets scale to zero's lead and hold times; `manifest_digest` is the model manifest's (a revision's model)."""
    from llmctl.actions.rollout.watcher import RolloutFailed

    started = time.monotonic()
    api_key = manifests.existing_api_key(kube, names) if kube.get("v1", "Namespace", names.namespace) else None
    created = api_key is None
    api_key = api_key or manifests.new_api_key()
    front = fronts.read(kube, names) if fronts.fronted(cfg) else None
    rendered = manifests.render(cfg, names, image=image, role_arn=role_arn, api_key=api_key,
                                cold_start_s=cold_start_s, manifest_digest=manifest_digest, front=front)
    if documents is not None:  # the recorded revision's Deployment and env ConfigMap replace the rendered ones
        rendered = traffic.swap_revision(rendered, traffic.recorded_documents(kube, names, documents))
    update = updates.prepare(kube, cfg, names, rendered, image, node_group=node_group, rollback_of=rollback_of)
    on_plan(update)
    pod_spec = next(d for d in rendered if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    if update.plan is not None and update.plan.grow_node_group:
        if scale is None:
            raise LlmctlError("the plan grows the node group, but no AWS access was given to grow it",
                              hint="run `llmctl deploy` with AWS credentials for the cluster's account")
        updates.grow(update, scale, timeout_s, pod_spec, cfg.deploy.gpus, say)
    if update.previous is not None:  # the first revision's record follows its rollout (no namespace yet)
        updates.begin(update)
    outcome = DeployOutcome([], image, api_key, created, exposure=exposures.exposure(cfg), update=update)
    stage = traffic.stage(kube, cfg, names, update, rendered, say)
    try:
        if stage.rolling:  # one old pod goes first: its GPU is the canary's
            rolling.make_room(kube, names, stage.base_deployment, stage.base.config_hash, stage.rolling - 1,
                              timeout_s)
        outcome.objects = manifests.apply_documents(kube, stage.documents, names, report, keep=stage.first_keep)
        applied = stage.documents
        if stage.start:  # (its own field manager: the autoscaler takes the count over after the switch)
            rolling.scale(kube, names, stage._new()["metadata"]["name"], stage.start)
        on_applied()
        result = _follow(cfg, names, kube, rendered, image, role_arn, timeout_s, started, emit,
                         want=1 if stage.rolling else stage.start or None)
        if result is not None:
            outcome.ready_replicas = result.ready_replicas
            outcome.timeline = None if result.already_ready else result.timeline
            updates.run_gate(update, result.pod, cfg.server.port, gate, api_key)
        if stage.rolling:
            rolling.trade(kube, names, stage, stage.rolling, timeout_s, say)
    except (RolloutFailed, updates.GateFailed, rolling.Stalled) as exc:
        if stage.rolling:  # the old revision's pods back to what they were
            rolling.restore(kube, names, stage, max(10.0, timeout_s))
        if update.changes or stage.base is not None:
            say(f"rolling back: revision {update.record.number} failed; "
                + (f"revision {update.previous.number} serves again" if update.previous else "nothing served before")
                if update.changes else f"rolling back: revision {update.record.number}'s own Deployment did not "
                                       "come up; its Deployment from before serves on")
            back = (lambda docs: manifests.apply_documents(kube, stage.back(), names, keep=stage.first_keep)) \
                if stage.base is not None else (lambda docs: [kube.apply(d) for d in docs])
            if update.changes:
                updates.roll_back(update, exc, back)
            else:  # a migration of the same revision: its old Deployment serves on
                back([])
            if update.previous is not None:
                updates.wait_for_revision(kube, names, update.previous, max(1, cfg.deploy.replicas),
                                          max(10.0, timeout_s))
            stage.settle(max(10.0, timeout_s))
            if scale is not None:
                updates.shrink(update, scale, release, serving_hash=update.previous.config_hash if update.previous
                               else "", timeout_s=manifests.termination_grace_s(cfg) + 30.0, say=say)
        raise
    if stage.base is not None:  # the gate passed: the Service moves, then the old revision goes (or is kept)
        keep = stage.promote(cfg.deploy.keep_previous_minutes, say)
        applied = stage.routed_to_new()
        outcome.objects = manifests.apply_documents(kube, applied, names, report, keep=keep)
    updates.promote(update, outcome.timeline.total_s if outcome.timeline is not None else None)
    if scale is not None and update.grown:
        say(f"the surge is over: node group {update.grown['name']} back to {update.grown['size']}" if update.changes
            else f"a temporary node of node group {update.grown['name']} is still out (an earlier run stopped "
                 f"before giving it back): the group goes back to {update.grown['size']}")
        updates.shrink(update, scale, release, serving_hash=update.record.config_hash,
                       timeout_s=manifests.termination_grace_s(cfg) + 30.0, say=say)
    if result is not None:
        _endpoint(cfg, names, kube, outcome, api_key, timeout_s, started, smoke, applied, report)
    return outcome


def _follow(cfg, names, kube, documents, image, role_arn, timeout_s, started, emit, want: int | None = None):
    """The rollout watcher on the new revision's pods (by config hash), `want` of them (default: the config's);
    None when no replica is wanted."""
    from llmctl.actions.rollout.diagnosis import DownloadSource
    from llmctl.actions.rollout.pods import Revision
    from llmctl.actions.rollout.watcher import RolloutTarget, RolloutWatcher

    if want is None:
        want = max(1, cfg.deploy.replicas) if cfg.deploy.autoscaling.enabled else cfg.deploy.replicas
    if want == 0:
        return None
    target = RolloutTarget(
        revision=Revision(names.namespace, ",".join(f"{k}={v}" for k, v in manifests.pod_selector(names).items()),
                          {manifests.ANNOTATION_CONFIG_HASH: updates.config_hash(documents)}),
        replicas=want,
        image=image,
        timeout_s=max(1.0, timeout_s - (time.monotonic() - started)),
        requested_timeout_s=timeout_s,
        download=DownloadSource(cfg.model.bucket, cfg.model.prefix, role_arn, names.service_account),
        provisioner="Karpenter" if cfg.cluster.capacity == "karpenter" else None,
    )
    return RolloutWatcher(kube, target, emit).run()


def _endpoint(cfg, names, kube, outcome: DeployOutcome, api_key: str, timeout_s: float, started: float,
              smoke: bool, applied: list[dict], report: Callable[[ApplyResult], None]) -> None:
    """The endpoint's address and one request through it; an NLB in front of the interceptor first has its DNS
    name added to the hosts the interceptor routes (`applied`: the documents the last apply wrote)."""
    from llmctl.actions.rollout.endpoint import smoke_request, wait_for_address

    ex = outcome.exposure
    if not ex.load_balancer:
        outcome.endpoint = exposures.cluster_url(names, ex)
        if smoke:
            from llmctl.k8s.portforward import forward_service

            with forward_service(kube, names.namespace, names.app, ex.port, wait_s=10.0) as forward:
                outcome.smoke = smoke_request(forward.url, api_key, cfg.model.served_name,
                                              max(10.0, timeout_s - (time.monotonic() - started)))
        return
    remaining = max(1.0, timeout_s - (time.monotonic() - started))
    namespace, name = (fronts.NAMESPACE, fronts.front_name(names)) if fronts.fronted(cfg) else (names.namespace, names.app)
    address = wait_for_address(kube, namespace, name, remaining)
    if fronts.fronted(cfg):
        added = fronts.host_addresses(kube, applied, fronts.hostnames(kube.get("v1", "Service", name, namespace)))
        if added is not None:
            outcome.objects.append(added)
            report(added)
    outcome.endpoint = exposures.endpoint_url(address, ex)
    if smoke:
        remaining = max(10.0, timeout_s - (time.monotonic() - started))
        outcome.smoke = smoke_request(outcome.endpoint, api_key, cfg.model.served_name, remaining,
                                      unrouted_s=UNROUTED_S if fronts.fronted(cfg) else 0.0)
