"""Scripted pod lifecycles: what the scheduler and a kubelet would write into a pod, step by step.

A `Scenario` is a list of timed `Step`s. The double runs one copy of a scenario for every pod it
matches (see `KubeDouble.script`). Each step waits `delay` seconds after the previous one, then
changes the pod's status, emits the events a kubelet/scheduler emits, or appends container logs.

Containers are named by role so one scenario fits any manifest: "init" is the pod's first init
container (steps that target it are skipped when the pod has none), "main" its first container,
"first" whichever the kubelet starts first (init if any); an explicit container name works too.

Ready-made scenarios (all keyword arguments optional):

    Scenario.success(download_lines=[...], main_lines=[...])   # Scheduled -> Pulling/Pulled ->
        # init container running with its log lines -> init done -> main Running (loading) -> Ready
    Scenario.unschedulable(message="0/1 nodes are available: 1 Insufficient nvidia.com/gpu. ...")
    Scenario.image_pull_error(message=..., container="first")     # ErrImagePull -> ImagePullBackOff
    Scenario.crash_loop(lines=[...], exit_code=1, restarts=2)      # CrashLoopBackOff, --previous logs
    Scenario.oom_killed(lines=[...], restarts=1)                   # lastState.terminated OOMKilled/137
    Scenario.init_failure(download_lines=[...], exit_code=1)       # Init:Error -> Init:CrashLoopBackOff
    Scenario.never_ready(main_lines=[...], probe_failures=3)       # Running, Unhealthy readiness events
    Scenario.pending()                                             # never scheduled, no events

Custom ones are built from steps: `Scenario([Step.schedule(), Step.pull("main"), Step.start("main"),
Step.log("main", ["hello"]), Step.ready("main")])`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .store import now_rfc3339

DEFAULT_DELAY = 0.02
LINE_INTERVAL = 0.002
GPU_UNSCHEDULABLE = ("0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are "
                     "available: 1 No preemption victims found for incoming pod.")


@dataclass
class Step:
    """One timed change to a pod: `run(sim)` happens `delay` seconds after the previous step."""

    run: Callable[[PodSim], bool | None]  # returning False stops the scenario here
    delay: float = DEFAULT_DELAY
    label: str = ""

    @staticmethod
    def schedule(node: str | None = None, delay: float = DEFAULT_DELAY) -> Step:
        """Bind to `node`, or to the first node the pod fits (FailedScheduling and a retry on node changes
        when none fits)."""
        return Step(lambda sim: sim.schedule(node), delay, "schedule")

    @staticmethod
    def unschedulable(message: str = GPU_UNSCHEDULABLE, delay: float = DEFAULT_DELAY) -> Step:
        return Step(lambda sim: sim.unschedulable(message), delay, "unschedulable")

    @staticmethod
    def pull(container: str = "init", seconds: float = 1.5, delay: float = DEFAULT_DELAY) -> list[Step]:
        return [Step(lambda sim: sim.pulling(container), delay, "pulling"),
                Step(lambda sim: sim.pulled(container, seconds), delay, "pulled")]

    @staticmethod
    def pull_error(container: str = "init", message: str | None = None, delay: float = DEFAULT_DELAY,
                   backoffs: int = 1) -> list[Step]:
        steps = [Step(lambda sim: sim.pulling(container), delay, "pulling"),
                 Step(lambda sim: sim.pull_failed(container, message), delay, "ErrImagePull")]
        steps += [Step(lambda sim: sim.pull_backoff(container), delay, "ImagePullBackOff")] * backoffs
        return steps

    @staticmethod
    def start(container: str = "main", delay: float = DEFAULT_DELAY) -> Step:
        return Step(lambda sim: sim.start(container), delay, "start")

    @staticmethod
    def log(container: str, lines: list[str], interval: float = LINE_INTERVAL) -> list[Step]:
        return [Step(lambda sim, line=line: sim.log(container, line), interval, "log") for line in lines]

    @staticmethod
    def exit(container: str = "init", exit_code: int = 0, reason: str | None = None,
             delay: float = DEFAULT_DELAY) -> Step:
        return Step(lambda sim: sim.terminate(container, exit_code, reason), delay, "exit")

    @staticmethod
    def backoff(container: str = "main", delay: float = DEFAULT_DELAY) -> Step:
        return Step(lambda sim: sim.crash_backoff(container), delay, "CrashLoopBackOff")

    @staticmethod
    def started(container: str = "main", delay: float = DEFAULT_DELAY) -> Step:
        """The startup probe passed (containerStatuses[].started = true)."""
        return Step(lambda sim: sim.set_started(container), delay, "started")

    @staticmethod
    def ready(container: str = "main", delay: float = DEFAULT_DELAY) -> Step:
        return Step(lambda sim: sim.set_ready(container), delay, "ready")

    @staticmethod
    def unhealthy(container: str = "main", message: str = "Readiness probe failed: HTTP probe failed with "
                  "statuscode: 503", delay: float = DEFAULT_DELAY) -> Step:
        return Step(lambda sim: sim.unhealthy(container, message), delay, "unhealthy")


def _flatten(items) -> list[Step]:
    out: list[Step] = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, (list, tuple)) else [item])
    return out


@dataclass
class Scenario:
    steps: list[Step] = field(default_factory=list)
    name: str = "custom"

    def __post_init__(self):
        self.steps = _flatten(self.steps)

    @classmethod
    def success(cls, download_lines: list[str] = (), main_lines: list[str] = (),
                delay: float = DEFAULT_DELAY) -> Scenario:
        return cls([Step.schedule(delay=delay), Step.pull("init", delay=delay), Step.start("init", delay),
                    Step.log("init", list(download_lines)), Step.exit("init", 0, delay=delay),
                    Step.pull("main", delay=delay), Step.start("main", delay), Step.log("main", list(main_lines)),
                    Step.started("main", delay), Step.ready("main", delay)], "success")

    @classmethod
    def unschedulable(cls, message: str = GPU_UNSCHEDULABLE, delay: float = DEFAULT_DELAY) -> Scenario:
        return cls([Step.unschedulable(message, delay)], "unschedulable")

    @classmethod
    def pending(cls) -> Scenario:
        return cls([], "pending")

    @classmethod
    def image_pull_error(cls, message: str | None = None, container: str = "first",
                         delay: float = DEFAULT_DELAY) -> Scenario:
        return cls([Step.schedule(delay=delay), Step.pull_error(container, message, delay)], "image_pull_error")

    @classmethod
    def _running_main(cls, download_lines, delay) -> list:
        return [Step.schedule(delay=delay), Step.pull("init", delay=delay), Step.start("init", delay),
                Step.log("init", list(download_lines)), Step.exit("init", 0, delay=delay),
                Step.pull("main", delay=delay), Step.start("main", delay)]

    @classmethod
    def crash_loop(cls, lines: list[str] = ("Traceback (most recent call last):", "RuntimeError: boom"),
                   exit_code: int = 1, reason: str = "Error", restarts: int = 2, download_lines: list[str] = (),
                   delay: float = DEFAULT_DELAY) -> Scenario:
        steps = cls._running_main(download_lines, delay)
        for i in range(restarts):
            if i:
                steps.append(Step.start("main", delay))
            steps += [Step.log("main", list(lines)), Step.exit("main", exit_code, reason, delay),
                      Step.backoff("main", delay)]
        return cls(steps, "crash_loop")

    @classmethod
    def oom_killed(cls, lines: list[str] = ("Loading model weights...",), restarts: int = 1,
                   download_lines: list[str] = (), delay: float = DEFAULT_DELAY) -> Scenario:
        scenario = cls.crash_loop(lines, 137, "OOMKilled", restarts, download_lines, delay)
        scenario.name = "oom_killed"
        return scenario

    @classmethod
    def init_failure(cls, download_lines: list[str] = ('{"event": "error", "error": "AccessDenied"}',),
                     exit_code: int = 1, restarts: int = 1, delay: float = DEFAULT_DELAY) -> Scenario:
        steps = [Step.schedule(delay=delay), Step.pull("init", delay=delay)]
        for i in range(restarts):
            steps += [Step.start("init", delay), Step.log("init", list(download_lines)),
                      Step.exit("init", exit_code, "Error", delay), Step.backoff("init", delay)]
        return cls(steps, "init_failure")

    @classmethod
    def never_ready(cls, main_lines: list[str] = (), probe_failures: int = 3, download_lines: list[str] = (),
                    delay: float = DEFAULT_DELAY) -> Scenario:
        steps = cls._running_main(download_lines, delay) + [Step.log("main", list(main_lines)),
                                                            Step.started("main", delay)]
        steps += [Step.unhealthy("main", delay=delay) for _ in range(probe_failures)]
        return cls(steps, "never_ready")


@dataclass
class ContainerState:
    name: str
    image: str
    init: bool
    state: dict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    pulled: bool = False

    def status(self) -> dict:
        out = {"name": self.name, "image": self.image, "imageID": "", "ready": self.ready,
               "restartCount": self.restart_count, "state": copy.deepcopy(self.state),
               "lastState": copy.deepcopy(self.last_state), "started": self.started}
        if "running" in self.state or "terminated" in self.state:
            out["imageID"] = f"{self.image.split('@')[0]}@sha256:{'0' * 64}"
            out["containerID"] = f"containerd://{abs(hash((self.name, self.restart_count))):064x}"[:77]
        return out


class PodSim:
    """The kubelet's view of one pod; every change ends with `sync()` writing the pod status."""

    def __init__(self, cluster, pod: dict, scenario: Scenario):
        self.cluster = cluster
        self.namespace = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.scenario = scenario
        self.next_step = 0
        self.node: str | None = pod.get("spec", {}).get("nodeName")
        self.scheduled: dict | None = None
        self.waiting_for_nodes = False
        spec = pod.get("spec", {})
        self.init = [ContainerState(c["name"], c.get("image", ""), True) for c in spec.get("initContainers") or []]
        self.main = [ContainerState(c["name"], c.get("image", ""), False) for c in spec.get("containers") or []]
        for c in self.init + self.main:
            c.state = {"waiting": {"reason": "PodInitializing" if (self.init and not c.init) else
                                   "ContainerCreating"}}
        self.start_time: str | None = None

    # -- helpers --------------------------------------------------------------------------------

    def pod(self) -> dict | None:
        pod = self.cluster.store.get(self.cluster.rt("v1", "Pod"), self.namespace, self.name)
        return pod if pod and pod["metadata"]["uid"] == self.uid else None

    def container(self, ref: str) -> ContainerState | None:
        if ref == "init":
            return self.init[0] if self.init else None
        if ref == "main":
            return self.main[0] if self.main else None
        if ref == "first":  # the first container the kubelet starts
            return (self.init + self.main)[0] if self.init + self.main else None
        return next((c for c in self.init + self.main if c.name == ref), None)

    def field_path(self, c: ContainerState) -> str:
        return f"spec.{'initContainers' if c.init else 'containers'}{{{c.name}}}"

    def event(self, type_: str, reason: str, message: str, c: ContainerState | None = None,
              component: str = "kubelet") -> None:
        pod = self.pod()
        if pod is not None:
            self.cluster.record_event(pod, type_, reason, message, component=component,
                                      field_path=self.field_path(c) if c else None, host=self.node)

    def sync(self) -> None:
        pod = self.pod()
        if pod is None:
            return
        status: dict = {"phase": "Pending", "qosClass": pod.get("status", {}).get("qosClass", "Burstable")}
        conditions = []
        ts = now_rfc3339()
        if self.scheduled is not None:
            conditions.append({"type": "PodScheduled", "lastProbeTime": None, "lastTransitionTime": ts,
                               **self.scheduled})
        if self.node:
            status.update(hostIP="192.168.10.11", podIP=f"192.168.{abs(hash(self.uid)) % 200}.{len(self.name)}",
                          startTime=self.start_time)
            init_pending = [c.name for c in self.init
                            if not ("terminated" in c.state and c.state["terminated"]["exitCode"] == 0)]
            unready = [c.name for c in self.main if not c.ready]
            conditions.insert(0, {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": None,
                                  "lastTransitionTime": ts})
            conditions.insert(1, self._cond("Initialized", not init_pending, "ContainersNotInitialized",
                                            f"containers with incomplete status: [{' '.join(init_pending)}]", ts))
            conditions.insert(2, self._cond("Ready", not unready, "ContainersNotReady",
                                            f"containers with unready status: [{' '.join(unready)}]", ts))
            conditions.insert(3, self._cond("ContainersReady", not unready, "ContainersNotReady",
                                            f"containers with unready status: [{' '.join(unready)}]", ts))
            if self.init:
                status["initContainerStatuses"] = [c.status() for c in self.init]
            status["containerStatuses"] = [c.status() for c in self.main]
            if not init_pending and any("running" in c.state or c.restart_count for c in self.main):
                status["phase"] = "Running"
        status["conditions"] = conditions
        old = pod.get("status", {})
        for cond in conditions:  # keep transition times of unchanged conditions
            prev = next((p for p in old.get("conditions") or [] if p["type"] == cond["type"]), None)
            if prev and prev.get("status") == cond.get("status"):
                cond["lastTransitionTime"] = prev.get("lastTransitionTime")
        self.cluster.store.put_status(self.cluster.rt("v1", "Pod"), pod, status)

    @staticmethod
    def _cond(type_: str, ok: bool, reason: str, message: str, ts: str) -> dict:
        cond = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None, "lastTransitionTime": ts}
        if not ok:
            cond.update(reason=reason, message=message)
        return cond

    # -- the steps ------------------------------------------------------------------------------

    def schedule(self, node: str | None) -> bool:
        pod = self.pod()
        if pod is None:
            return False
        if node is None and not self.node:
            node, message = self.cluster.pick_node(pod)
            if node is None:
                self.unschedulable(message)
                self.waiting_for_nodes = True
                return False
        node = node or self.node
        self.waiting_for_nodes = False
        if not pod["spec"].get("nodeName"):
            bound = copy.deepcopy(pod)
            bound["spec"]["nodeName"] = node
            self.cluster.store.put(self.cluster.rt("v1", "Pod"), bound)
            self.event("Normal", "Scheduled", f"Successfully assigned {self.namespace}/{self.name} to {node}",
                       component="default-scheduler")
        self.node = node
        self.start_time = now_rfc3339()
        self.scheduled = {"status": "True"}
        self.sync()
        return True

    def unschedulable(self, message: str) -> bool:
        self.scheduled = {"status": "False", "reason": "Unschedulable", "message": message}
        self.event("Warning", "FailedScheduling", message, component="default-scheduler")
        self.sync()
        return True

    def pulling(self, ref: str) -> None:
        c = self.container(ref)
        if c is None:
            return
        if c.pulled or any(o.pulled and o.image == c.image for o in self.init + self.main):
            c.pulled = True
            self.event("Normal", "Pulled", f'Container image "{c.image}" already present on machine', c)
            return
        self.event("Normal", "Pulling", f'Pulling image "{c.image}"', c)

    def pulled(self, ref: str, seconds: float) -> None:
        c = self.container(ref)
        if c is None or c.pulled:
            return
        c.pulled = True
        self.event("Normal", "Pulled", f'Successfully pulled image "{c.image}" in {seconds:.3f}s '
                                       f"({seconds:.3f}s including waiting). Image size: 4831838208 bytes.", c)

    def pull_failed(self, ref: str, message: str | None) -> None:
        c = self.container(ref)
        if c is None:
            return
        message = message or (f'rpc error: code = NotFound desc = failed to pull and unpack image "{c.image}": '
                              f'failed to resolve reference "{c.image}": {c.image}: not found')
        c.state = {"waiting": {"reason": "ErrImagePull", "message": message}}
        self.event("Warning", "Failed", f'Failed to pull image "{c.image}": {message}', c)
        self.event("Warning", "Failed", "Error: ErrImagePull", c)
        self.sync()

    def pull_backoff(self, ref: str) -> None:
        c = self.container(ref)
        if c is None:
            return
        c.state = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{c.image}"'}}
        self.event("Normal", "BackOff", f'Back-off pulling image "{c.image}"', c)
        self.event("Warning", "Failed", "Error: ImagePullBackOff", c)
        self.sync()

    def start(self, ref: str) -> None:
        c = self.container(ref)
        if c is None:
            return
        if not c.init:
            for other in self.main:  # containers waiting on init move to ContainerCreating
                if other.state.get("waiting", {}).get("reason") == "PodInitializing":
                    other.state = {"waiting": {"reason": "ContainerCreating"}}
        self.cluster.logs.new_instance(self.namespace, self.name, c.name)
        self.event("Normal", "Created", f"Created container: {c.name}", c)
        self.event("Normal", "Started", f"Started container {c.name}", c)
        c.state = {"running": {"startedAt": now_rfc3339()}}
        c.started = c.init  # init containers report started; main ones wait for their startup probe
        self.sync()

    def log(self, ref: str, line: str) -> None:
        c = self.container(ref)
        if c is not None:
            self.cluster.logs.append(self.namespace, self.name, c.name, line)

    def terminate(self, ref: str, exit_code: int, reason: str | None) -> None:
        c = self.container(ref)
        if c is None:
            return
        started = c.state.get("running", {}).get("startedAt", now_rfc3339())
        c.state = {"terminated": {"exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0
                                                                             else "Error"),
                                  "startedAt": started, "finishedAt": now_rfc3339()}}
        c.ready = False
        c.started = False
        self.cluster.logs.finish(self.namespace, self.name, c.name)
        self.sync()

    def crash_backoff(self, ref: str) -> None:
        c = self.container(ref)
        if c is None or "terminated" not in c.state:
            return
        c.last_state = {"terminated": c.state["terminated"]}
        c.restart_count += 1
        message = f"back-off {10 * 2 ** (c.restart_count - 1)}s restarting failed container={c.name} " \
                  f"pod={self.name}_{self.namespace}({self.uid})"
        c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        self.event("Warning", "BackOff", f"Back-off restarting failed container {c.name} in pod "
                                         f"{self.name}_{self.namespace}({self.uid})", c)
        self.sync()

    def set_started(self, ref: str) -> None:
        c = self.container(ref)
        if c is not None:
            c.started = True
            self.sync()

    def set_ready(self, ref: str) -> None:
        c = self.container(ref)
        if c is not None:
            c.started = True
            c.ready = True
            self.sync()

    def unhealthy(self, ref: str, message: str) -> None:
        c = self.container(ref)
        if c is not None:
            self.event("Warning", "Unhealthy", message, c)


class LogStore:
    """Container logs per (namespace, pod, container), one list of lines per container instance."""

    def __init__(self, cond):
        self.cond = cond
        self.instances: dict[tuple[str, str, str], list[dict]] = {}

    def new_instance(self, ns: str, pod: str, container: str) -> None:
        self.instances.setdefault((ns, pod, container), []).append({"lines": [], "done": False})
        self.cond.notify_all()

    def append(self, ns: str, pod: str, container: str, line: str) -> None:
        runs = self.instances.setdefault((ns, pod, container), [{"lines": [], "done": False}])
        runs[-1]["lines"].append((time.time(), now_rfc3339(), line))
        self.cond.notify_all()

    def finish(self, ns: str, pod: str, container: str) -> None:
        for run in self.instances.get((ns, pod, container), [])[-1:]:
            run["done"] = True
        self.cond.notify_all()

    def drop_pod(self, ns: str, pod: str) -> None:
        for key in [k for k in self.instances if k[:2] == (ns, pod)]:
            for run in self.instances[key]:
                run["done"] = True
        self.cond.notify_all()

    def run(self, ns: str, pod: str, container: str, previous: bool) -> dict | None:
        runs = self.instances.get((ns, pod, container), [])
        if not runs:
            return None
        if previous:  # the last finished run: the one before a running container, or the one in back-off
            finished = [r for r in runs if r["done"]]
            return finished[-1] if finished else None
        return runs[-1]
