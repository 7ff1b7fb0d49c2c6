"""Follow one revision's pods through the Kubernetes API until enough are Ready.

Pods and events are watched (no sleep-polling), the init container's progress lines are
tailed, and `RolloutEvent`s are emitted as the most advanced pod moves through the phases. A
failure visible in a pod, an event or a log raises `RolloutFailed` carrying the typed
`Failure`; so does the timeout. Only pods the `Revision` owns count, so the same watcher
follows a new revision while older pods of the same Deployment are still serving.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmctl.actions.rollout.diagnosis import (
    LOG_TAIL_LINES,
    ContainerFailed,
    DownloadSource,
    Failure,
    ImagePullFailed,
    NotReadyInTime,
    diagnose_download,
    diagnose_image,
    diagnose_pod,
    diagnose_scheduling,
    explain,
)
from llmctl.actions.rollout.events import (
    DOWNLOADING,
    LOADING,
    PHASES,
    READY,
    SCHEDULING,
    Notice,
    PhaseStarted,
    RolloutEvent,
    RolloutFinished,
    Timeline,
    parse_progress_line,
)
from llmctl.actions.rollout.pods import (
    INIT_CONTAINER,
    MAIN_CONTAINER,
    Revision,
    has_init,
    is_ready,
    is_scheduled,
    memory_limit,
    pod_phase,
    unschedulable_message,
)
from llmctl.errors import LlmctlError
from llmctl.k8s.nodes import gpu_allocatable


class RolloutFailed(LlmctlError):
    """The rollout cannot reach Ready; `failure` holds the facts, the message is `explain()`'s."""

    def __init__(self, failure: Failure):
        message, hint = explain(failure)
        super().__init__(message, hint=hint)
        self.failure = failure


@dataclass
class RolloutTarget:
    """What to follow: `replicas` Ready pods of `revision`, running `image`, within `timeout_s`."""

    revision: Revision
    replicas: int
    image: str
    timeout_s: float
    download: DownloadSource = field(default_factory=DownloadSource)
    requested_timeout_s: float | None = None  # what the user asked for (timeout_s is what is left of it)
    # pending pods wait for a node provisioner (Karpenter) to launch a node: a pod the scheduler cannot place
    # for want of a node (none, no GPU, GPUs busy, too small) is waited for, not a failure
    provisioner: str | None = None


@dataclass
class RolloutResult:
    pod: str | None
    timeline: Timeline
    ready_replicas: int
    already_ready: bool = False  # the pods were Ready when first seen: nothing rolled out


class RolloutWatcher:
    def __init__(self, kube, target: RolloutTarget, emit: Callable[[RolloutEvent], None],
                 clock: Callable[[], float] = time.monotonic):
        self.kube = kube
        self.t = target
        self.namespace = target.revision.namespace
        self.emit_to = emit
        self.clock = clock
        self.t0 = clock()
        self.timeline = Timeline()
        self.queue: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.pods: dict[str, dict] = {}
        self.tailing: set[str] = set()
        self.notified: set[str] = set()
        self.last_unhealthy: str | None = None
        self.saw_unready = False
        self.threads: list[threading.Thread] = []

    def now(self) -> float:
        return self.clock() - self.t0

    def emit(self, event: RolloutEvent) -> None:
        self.timeline.apply(event)
        self.emit_to(event)

    # -- producers (threads) -----------------------------------------------------------------------

    def _spawn(self, fn: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._guard, args=(fn,), daemon=True)
        thread.start()
        self.threads.append(thread)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - re-raised by the main loop, in its thread
            if not self.stop.is_set():
                self.queue.put(("error", exc))

    def _watch(self, api_version: str, kind: str, label_selector: str | None) -> None:
        timeout = max(1, int(self.t.timeout_s) + 5)
        for event_type, obj in self.kube.watch(api_version, kind, namespace=self.namespace,
                                               label_selector=label_selector, timeout_s=timeout):
            if self.stop.is_set():
                return
            self.queue.put((kind, event_type, obj))

    def _tail(self, pod: str) -> None:
        for line in self.kube.pod_logs(pod, self.namespace, container=INIT_CONTAINER, follow=True):
            if self.stop.is_set():
                return
            self.queue.put(("log", pod, line))

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> RolloutResult:
        self.emit(PhaseStarted(SCHEDULING, 0.0))
        self._spawn(lambda: self._watch("v1", "Pod", self.t.revision.selector))
        self._spawn(lambda: self._watch("v1", "Event", None))
        deadline = self.t0 + self.t.timeout_s
        try:
            while True:
                remaining = deadline - self.clock()
                if remaining <= 0:
                    raise RolloutFailed(self._timeout())
                try:
                    item = self.queue.get(timeout=min(remaining, 1.0))
                except queue.Empty:
                    continue
                done = self._handle(item)
                if done is not None:
                    return done
        finally:
            self.stop.set()

    def _handle(self, item: tuple) -> RolloutResult | None:
        kind = item[0]
        if kind == "error":
            raise item[1]
        if kind == "log":
            progress = parse_progress_line(item[2], self.now())
            if progress:
                self.emit(progress)
            return None
        if kind == "Event":
            return self._on_event(item[2])
        _, event_type, pod = item
        name = pod["metadata"]["name"]
        if event_type == "DELETED" or not self.t.revision.owns(pod):
            self.pods.pop(name, None)
            return None
        self.pods[name] = pod
        return self._on_pod(pod)

    def _on_pod(self, pod: dict) -> RolloutResult | None:
        unschedulable = unschedulable_message(pod)
        if unschedulable is not None:
            self._unschedulable(pod, unschedulable)
            return None
        failure = diagnose_pod(pod, self.t.image)
        if failure:
            raise RolloutFailed(self._complete(pod, failure))
        ready = [p for p in self.pods.values() if is_ready(p)]
        self.saw_unready = self.saw_unready or not is_ready(pod)
        lead = self._lead()
        phase = READY if len(ready) >= self.t.replicas else pod_phase(lead)
        if phase == READY and self.t.replicas > 1 and len(ready) < self.t.replicas:
            phase = LOADING
        self._advance_to(phase, lead)
        if phase == DOWNLOADING and lead["metadata"]["name"] not in self.tailing:
            self.tailing.add(lead["metadata"]["name"])
            self._spawn(lambda name=lead["metadata"]["name"]: self._tail(name))
        if len(ready) >= self.t.replicas:
            self.emit(RolloutFinished(self.now(), True))
            return RolloutResult(lead["metadata"]["name"], self.timeline, len(ready), not self.saw_unready)
        return None

    def _lead(self) -> dict:
        """The most advanced of the revision's pods: the display follows it."""
        return max(self.pods.values(), key=lambda p: (PHASES.index(pod_phase(p)), p["metadata"]["name"]))

    def _advance_to(self, phase: str, pod: dict) -> None:
        """Emit every phase up to `phase` not yet entered (a watch may skip one: a cached image)."""
        target = PHASES.index(phase)
        skip = set() if has_init(pod) else {DOWNLOADING}  # weights streamed from S3 by the engine
        for p in PHASES[: target + 1]:
            if p not in self.timeline.starts and p not in skip:
                detail = pod["metadata"]["name"] if p == SCHEDULING else ""
                self.emit(PhaseStarted(p, self.now(), detail))

    def _on_event(self, event: dict) -> None:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") != "Pod" or involved.get("name") not in self.pods:
            return
        uid = event["metadata"].get("uid") or event["metadata"]["name"]
        if uid in self.notified:
            return
        self.notified.add(uid)
        reason, message = event.get("reason", ""), event.get("message", "")
        if reason == "FailedScheduling":
            if not is_scheduled(self.pods[involved["name"]]):  # not an old event
                self._unschedulable(self.pods[involved["name"]], message)
            return
        if reason == "Pulled":
            self.emit(Notice(message, self.now()))
        elif reason == "Unhealthy":
            self.last_unhealthy = message
            self.emit(Notice(message, self.now(), "warn"))
        elif reason == "BackOff" or event.get("type") == "Warning":
            self.emit(Notice(f"{reason}: {message}", self.now(), "warn"))

    # -- completing a diagnosis with what only the API can tell -------------------------------------

    def _unschedulable(self, pod: dict, message: str) -> None:
        """Fail with the scheduler's reason, unless a node provisioner launches the node the pod waits for."""
        failure = self._scheduling(message)
        if self.t.provisioner is None or failure.cause not in ("no-nodes", "no-gpu-node", "gpus-busy", "too-small"):
            raise RolloutFailed(failure)
        waiting = f"waiting:{pod['metadata']['name']}"
        if waiting not in self.notified:
            self.notified.add(waiting)
            self.emit(Notice(f"{pod['metadata']['name']} waits for {self.t.provisioner} to launch a node ({message})",
                             self.now()))

    def _scheduling(self, message: str) -> Failure:
        gpu_nodes = None
        if "Insufficient nvidia.com/gpu" in message:
            gpu_nodes = sum(1 for n in self.kube.list("v1", "Node") if gpu_allocatable(n) > 0)
        return diagnose_scheduling(message, gpu_nodes)

    def _logs(self, pod: str, container: str, previous: bool) -> list[str]:
        try:
            return list(self.kube.pod_logs(pod, self.namespace, container=container, previous=previous,
                                           tail_lines=50))
        except LlmctlError:
            return []

    def _events(self, pod: str) -> list[dict]:
        try:
            return self.kube.events(self.namespace, involved_name=pod)
        except LlmctlError:
            return []

    def _complete(self, pod: dict, failure: Failure) -> Failure:
        """Add the log lines, the pull error or the memory limit a pod's status does not hold."""
        name = pod["metadata"]["name"]
        if isinstance(failure, ContainerFailed) and failure.container == INIT_CONTAINER:
            lines = self._logs(name, INIT_CONTAINER, failure.previous) or self._logs(name, INIT_CONTAINER, False)
            return diagnose_download(lines, failure.exit_code, self.t.download)
        if isinstance(failure, ContainerFailed) and failure.oom:
            return dataclasses.replace(failure, memory_limit=memory_limit(pod, failure.container))
        if isinstance(failure, ContainerFailed):
            lines = self._logs(name, failure.container, failure.previous)[-LOG_TAIL_LINES:]
            return dataclasses.replace(failure, log_lines=tuple(lines))
        if isinstance(failure, ImagePullFailed):  # ImagePullBackOff only says "Back-off pulling image"
            pulls = [e.get("message", "") for e in self._events(name) if e.get("reason") == "Failed"
                     and e.get("message", "").startswith("Failed to pull image")]
            if pulls:
                return diagnose_image(failure.image, pulls[-1].split(": ", 1)[-1])
        return failure

    def _timeout(self) -> NotReadyInTime:
        phase = self.timeline.current or SCHEDULING
        pods = list(self.pods.values())
        failure = NotReadyInTime(self.t.requested_timeout_s or self.t.timeout_s, sum(1 for p in pods if is_ready(p)),
                                 self.t.replicas, phase)
        if phase == LOADING and pods:
            lines = self._logs(self._lead()["metadata"]["name"], MAIN_CONTAINER, False)[-LOG_TAIL_LINES:]
            return dataclasses.replace(failure, last_probe=self.last_unhealthy, log_lines=tuple(lines))
        if phase == DOWNLOADING:
            return dataclasses.replace(failure, download=self.timeline.download)
        return failure
