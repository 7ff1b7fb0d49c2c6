"""`rolling` with per-revision Deployments: several replicas and no GPUs for a second set (planner.py).

The serving revision gives up one pod (`make_room`, inside the deploy's rollback scope) (its GPU goes to the new revision's first pod, the canary); the gate
judges that pod through a port-forward while the Service still selects the old pods only (capacity dips by
one, traffic never stops). Once it passed, the Service selects both revisions' pods (the canary takes its
share), and one old pod after another makes room for one more new one; the promotion then moves the Service
to the new revision alone and removes the old Deployment (`traffic.Stage`). A swap that stalls (an old pod
that does not go, a new one not Ready in time) rolls back: the old Deployment back at its count, the new one
removed, the Service on the old pods alone.
"""

from __future__ import annotations

import time

from llmctl.actions import deploy as manifests
from llmctl.config import Names
from llmctl.errors import LlmctlError

ROLLOUT_MANAGER = "llmctl-rollout"  # owns spec.replicas while the two revisions trade pods


def scale(kube, names: Names, deployment: str, replicas: int) -> None:
    kube.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": deployment, "namespace": names.namespace}, "spec": {"replicas": replicas}},
               field_manager=ROLLOUT_MANAGER)


def _pods(kube, names: Names, config_hash: str, ready: bool) -> int:
    from llmctl.actions.rollout.pods import is_ready

    selector = ",".join(f"{k}={v}" for k, v in manifests.revision_selector(names, config_hash).items())
    pods = kube.list("v1", "Pod", names.namespace, label_selector=selector)
    return sum(1 for p in pods if not ready or (is_ready(p) and not p["metadata"].get("deletionTimestamp")))


class Stalled(LlmctlError):
    """The pod swap did not progress in time: rolled back like any failed rollout (`run.deploy`)."""


def wait(kube, names: Names, config_hash: str, done, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise Stalled(f"the rolling update stalled: {what} within {timeout_s:.0f}s",
                          hint="`llmctl status` shows the pods and `llmctl events` why; fix that, then deploy again")
        time.sleep(0.2)


def make_room(kube, names: Names, old: dict, old_hash: str, replicas: int, timeout_s: float) -> None:
    """The serving revision down to `replicas` pods, and wait until the others are gone (their GPUs free)."""
    scale(kube, names, old["metadata"]["name"], replicas)
    wait(kube, names, old_hash, lambda: _pods(kube, names, old_hash, ready=False) <= replicas,
         f"the old revision's pods down to {replicas}", timeout_s)


def trade(kube, names: Names, stage, replicas: int, timeout_s: float, say) -> None:
    """After the canary passed its gate: both revisions serve, then pod by pod to the new one."""
    old, new = stage.base_deployment, stage._new()
    old_hash, new_hash = stage.base.config_hash, stage.update.record.config_hash
    both = manifests.route(stage.documents, old["metadata"]["name"], manifests.pod_selector(names))
    manifests.apply_documents(kube, both, names, keep=stage.first_keep)
    say(f"the canary passed: both revisions serve; replacing the other {replicas - 1} pod(s) one at a time")
    for count in range(2, replicas + 1):
        make_room(kube, names, old, old_hash, replicas - count, timeout_s)
        scale(kube, names, new["metadata"]["name"], count)
        wait(kube, names, new_hash, lambda c=count: _pods(kube, names, new_hash, ready=True) >= c,
             f"{count} new pods Ready", timeout_s)


def restore(kube, names: Names, stage, timeout_s: float) -> None:
    """Undo a swap before the new revision is removed: it keeps only its Ready pods (the others give their GPUs
    back), the old revision returns to its count, and enough old pods are Ready to serve alone again before the
    Service leaves the new ones (`Stage.back`)."""
    from llmctl.actions.rollout.update import wait_for_revision

    new, new_hash = stage._new()["metadata"]["name"], stage.update.record.config_hash
    serving_new = _pods(kube, names, new_hash, ready=True)
    if kube.get("apps/v1", "Deployment", new, names.namespace) is not None:
        scale(kube, names, new, serving_new)
    scale(kube, names, stage.base_deployment["metadata"]["name"], stage.rolling)
    wait_for_revision(kube, names, stage.base, max(1, stage.rolling - serving_new), timeout_s)
