"""Reading one endpoint pod's status (pure): its phase in the rollout, and the states diagnosis needs.

A `Revision` names the pods of one rollout among others (old pods of the same Deployment, or a
second revision beside it): a label selector the API filters by, plus annotations the pod
template carries (today the config hash).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmctl.actions.rollout.events import DOWNLOADING, LOADING, PULLING, READY, SCHEDULING

INIT_CONTAINER = "model-download"
MAIN_CONTAINER = "vllm"


@dataclass(frozen=True)
class Revision:
    """The pods of one revision: `selector` (labels) in `namespace`, with `annotations` on each."""

    namespace: str
    selector: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    def owns(self, pod: dict) -> bool:
        """A live pod of this revision (a terminating pod no longer counts)."""
        meta = pod.get("metadata") or {}
        have = meta.get("annotations") or {}
        return not meta.get("deletionTimestamp") and all(have.get(k) == v for k, v in self.annotations.items())


def statuses(pod: dict, key: str) -> dict[str, dict]:
    """Container statuses by container name (`key`: containerStatuses or initContainerStatuses)."""
    return {s["name"]: s for s in (pod.get("status") or {}).get(key) or []}


def condition(pod: dict, kind: str) -> dict:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def waiting(status: dict) -> dict:
    return (status.get("state") or {}).get("waiting") or {}


def terminated(status: dict, last: bool = False) -> dict:
    """The container's current termination, or (`last`) the previous instance's."""
    return (status.get("lastState" if last else "state") or {}).get("terminated") or {}


def is_ready(pod: dict) -> bool:
    return condition(pod, "Ready").get("status") == "True"


def has_init(pod: dict) -> bool:
    return any(c["name"] == INIT_CONTAINER for c in (pod.get("spec") or {}).get("initContainers") or [])


def is_scheduled(pod: dict) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def memory_limit(pod: dict, container: str) -> str | None:
    return next((((c.get("resources") or {}).get("limits") or {}).get("memory")
                 for c in (pod.get("spec") or {}).get("containers") or [] if c["name"] == container), None)


def unschedulable_message(pod: dict) -> str | None:
    """The scheduler's reason when it marked the pod Unschedulable, else None."""
    scheduled = condition(pod, "PodScheduled")
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return scheduled.get("message", "")
    return None


def pod_phase(pod: dict) -> str:
    """Where one pod is in the rollout, from its status alone."""
    if is_ready(pod):
        return READY
    if not is_scheduled(pod) and condition(pod, "PodScheduled").get("status") != "True":
        return SCHEDULING
    main = statuses(pod, "containerStatuses").get(MAIN_CONTAINER, {})
    if "running" in (main.get("state") or {}) or main.get("restartCount"):
        return LOADING
    if has_init(pod):
        init = statuses(pod, "initContainerStatuses").get(INIT_CONTAINER, {})
        state = init.get("state") or {}
        if "running" in state or init.get("restartCount"):
            return DOWNLOADING
        if state.get("terminated", {}).get("exitCode") == 0:
            return LOADING
    return PULLING
