"""Follow an endpoint from applied manifests to Ready, and say why when it does not get there.

The phase model is plain data shared by every source of progress: `deploy` derives events from
Kubernetes watches (pods, events, the init container's log), `llmctl local up` emits the same
events from local processes. `ui/rollout.py` renders them; `Timeline` turns them into the
cold-start timeline.

    Scheduling -> Pulling image -> Downloading model -> Loading engine -> Ready
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmctl.errors import LlmctlError

SCHEDULING = "Scheduling"
PULLING = "Pulling image"
DOWNLOADING = "Downloading model"
LOADING = "Loading engine"
READY = "Ready"
PHASES = (SCHEDULING, PULLING, DOWNLOADING, LOADING, READY)

INIT_CONTAINER = "model-download"
MAIN_CONTAINER = "vllm"
LOG_TAIL_LINES = 8


# --- events (plain data) -------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseStarted:
    """The rollout entered `phase` at `at` seconds after it began."""

    phase: str
    at: float
    detail: str = ""


@dataclass(frozen=True)
class DownloadProgress:
    """One progress line of `python -m server.download_model`."""

    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    rate_bps: float
    at: float = 0.0

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.rate_bps <= 0 or not self.bytes_total:
            return None
        return max(0.0, (self.bytes_total - self.bytes_done) / self.rate_bps)


@dataclass(frozen=True)
class Notice:
    """Something worth a line while waiting (an image pulled, a probe failing, a pod restarting)."""

    message: str
    at: float
    level: str = "info"  # info | warn


@dataclass(frozen=True)
class RolloutFinished:
    at: float
    ok: bool


RolloutEvent = PhaseStarted | DownloadProgress | Notice | RolloutFinished


def parse_progress_line(line: str, at: float = 0.0) -> DownloadProgress | None:
    """A downloader JSON line `{"event": "progress", ...}` as a `DownloadProgress`; else None."""
    data = _json_line(line)
    if not data or data.get("event") != "progress":
        return None
    try:
        return DownloadProgress(
            bytes_done=int(data.get("bytes_done", 0)),
            bytes_total=int(data.get("bytes_total", 0)),
            files_done=int(data.get("files_done", 0)),
            files_total=int(data.get("files_total", 0)),
            rate_bps=float(data.get("rate_bps", 0.0)),
            at=at,
        )
    except (TypeError, ValueError):
        return None


def _json_line(line: str) -> dict | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@dataclass
class Timeline:
    """Phase start times, folded from events; durations are what the cold-start timeline shows."""

    starts: dict[str, float] = field(default_factory=dict)
    finished_at: float | None = None
    download: DownloadProgress | None = None

    def apply(self, event: RolloutEvent) -> None:
        if isinstance(event, PhaseStarted) and event.phase not in self.starts:
            self.starts[event.phase] = event.at
            if event.phase == READY:
                self.finished_at = event.at
        elif isinstance(event, DownloadProgress):
            self.download = event
        elif isinstance(event, RolloutFinished) and self.finished_at is None:
            self.finished_at = event.at

    @property
    def current(self) -> str | None:
        return next(reversed(self.starts), None) if self.starts else None

    def durations(self, now: float | None = None) -> list[tuple[str, float]]:
        """(phase, seconds) for every phase entered, Ready excluded (it has no length)."""
        items = list(self.starts.items())
        out = []
        for i, (phase, start) in enumerate(items):
            if phase == READY:
                continue
            end = items[i + 1][1] if i + 1 < len(items) else (self.finished_at if self.finished_at is not None else now)
            if end is not None:
                out.append((phase, max(0.0, end - start)))
        return out

    @property
    def total_s(self) -> float | None:
        return self.finished_at

    def to_dict(self) -> dict:
        return {
            "phases": [{"phase": p, "seconds": round(s, 3)} for p, s in self.durations()],
            "total_s": None if self.total_s is None else round(self.total_s, 3),
        }


# --- reading a pod (pure) ------------------------------------------------------------------------


def _statuses(pod: dict, key: str) -> dict[str, dict]:
    return {s["name"]: s for s in (pod.get("status") or {}).get(key) or []}


def _condition(pod: dict, kind: str) -> dict:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def is_ready(pod: dict) -> bool:
    return _condition(pod, "Ready").get("status") == "True"


def has_init(pod: dict) -> bool:
    return any(c["name"] == INIT_CONTAINER for c in (pod.get("spec") or {}).get("initContainers") or [])


def pod_phase(pod: dict) -> str:
    """Where one pod is in the rollout, from its status alone."""
    if is_ready(pod):
        return READY
    if not (pod.get("spec") or {}).get("nodeName") and _condition(pod, "PodScheduled").get("status") != "True":
        return SCHEDULING
    main = _statuses(pod, "containerStatuses").get(MAIN_CONTAINER, {})
    if "running" in (main.get("state") or {}) or main.get("restartCount"):
        return LOADING
    if has_init(pod):
        init = _statuses(pod, "initContainerStatuses").get(INIT_CONTAINER, {})
        state = init.get("state") or {}
        if "running" in state or init.get("restartCount"):
            return DOWNLOADING
        if state.get("terminated", {}).get("exitCode") == 0:
            return LOADING
    return PULLING


@dataclass(frozen=True)
class Failure:
    """A diagnosed failure; `logs` names the container whose last lines complete the message."""

    message: str
    hint: str
    logs: tuple[str, bool] | None = None  # (container, previous)
    image: str | None = None  # an image pull failure: the pod's "Failed to pull image" event says why


def _waiting(status: dict) -> dict:
    return (status.get("state") or {}).get("waiting") or {}


def _terminated(status: dict, last: bool = False) -> dict:
    return (status.get("lastState" if last else "state") or {}).get("terminated") or {}


def diagnose_scheduling(message: str, gpu_nodes: int | None) -> Failure:
    """The scheduler's FailedScheduling message in plain words, with the fix."""
    if "no nodes available" in message or message.startswith("0/0 nodes"):
        return Failure(f"the cluster has no nodes to run the endpoint ({message})",
                       "create or scale the GPU node group: `llmctl cluster up`")
    taint = re.search(r"untolerated taint \{([^}]*)\}", message)
    if taint:
        return Failure(f"every node carries a taint the endpoint does not tolerate: {taint.group(1)} ({message})",
                       "remove the taint from the GPU nodes or set cluster.gpu_taint to match it, then deploy again")
    if "Insufficient nvidia.com/gpu" in message:
        if gpu_nodes == 0:
            return Failure(f"no node in the cluster offers an nvidia.com/gpu ({message})",
                           "add a GPU node group (`llmctl cluster up`) and check the NVIDIA device plugin runs "
                           "(`kubectl -n kube-system get daemonset`)")
        return Failure(f"no free GPU for the endpoint's pod: every GPU is in use ({message})",
                       "raise cluster.nodes_max/nodes_desired and run `llmctl cluster up`, or lower deploy.replicas")
    if "didn't match Pod's node affinity/selector" in message:
        return Failure(f"no node has the labels the endpoint selects (cluster.node_labels) ({message})",
                       "label the GPU nodes with cluster.node_labels or remove them from the config")
    insufficient = re.findall(r"Insufficient ([a-z0-9./-]+)", message)
    if insufficient:
        return Failure(f"the GPU nodes are too small: insufficient {', '.join(insufficient)} ({message})",
                       "lower deploy.requests or choose a larger instance type (cluster.instance_types)")
    return Failure(f"the endpoint's pod cannot be scheduled: {message}",
                   "`kubectl describe pod` shows the scheduler's reasons")


def diagnose_image(image: str, message: str) -> Failure:
    low = message.lower()
    if "not found" in low or "manifest unknown" in low or "notfound" in low:
        return Failure(f"image {image} does not exist in the registry ({message})",
                       "run `llmctl build`, or pass an existing image with `--image`")
    if any(s in low for s in ("403", "forbidden", "unauthorized", "denied", "no basic auth", "401")):
        return Failure(f"the nodes may not pull {image}: access denied ({message})",
                       "attach AmazonEC2ContainerRegistryReadOnly to the node group's instance role "
                       "(`llmctl cluster up` does) or use an image in this account's ECR")
    return Failure(f"pulling image {image} failed ({message})", "`kubectl describe pod` shows the full error")


def diagnose_download(lines: list[str], exit_code: int | None, cfg_hint: dict) -> Failure:
    """The init container failed: find the downloader's error line and name the fix."""
    error = ""
    for line in reversed(lines):
        data = _json_line(line)
        if data and data.get("event") == "error":
            error = str(data.get("error") or data.get("message") or "")
            detail = data.get("message") or data.get("detail")
            error = f"{error}: {detail}" if detail and detail != error else error
            break
    text = error or (lines[-1] if lines else f"exit code {exit_code}")
    source = f"s3://{cfg_hint.get('bucket')}/{cfg_hint.get('prefix')}"
    if "AccessDenied" in text or "Forbidden" in text or "403" in text:
        return Failure(f"the model download was denied access to {source} ({text})",
                       f"check the IRSA role {cfg_hint.get('role_arn')} exists, trusts the cluster's OIDC provider "
                       f"for {cfg_hint.get('service_account')}, and may read the bucket (`llmctl cluster up` sets it up)")
    if "NoSuchBucket" in text:
        return Failure(f"the model bucket does not exist ({text})", "check model.bucket, then `llmctl model upload`")
    if "NoSuchKey" in text or "no objects" in text.lower() or "prefix" in text.lower():
        return Failure(f"no model found at {source} ({text})", "run `llmctl model upload DIR` or fix model.prefix")
    if "No space" in text or "disk" in text.lower():
        return Failure(f"the model does not fit in /models ({text})", "raise deploy.model_volume_size")
    tail = "\n".join(f"  {line}" for line in lines[-LOG_TAIL_LINES:])
    return Failure(f"the model download failed ({text})" + (f"; its last log lines:\n{tail}" if tail else ""),
                   "`llmctl logs --container model-download` shows the full log")


def unschedulable_message(pod: dict) -> str | None:
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return scheduled.get("message", "")
    return None


def diagnose_pod(pod: dict, image: str) -> Failure | None:
    """A failure visible in the pod's status, or None while it may still come up."""
    message = unschedulable_message(pod)
    if message is not None:
        return diagnose_scheduling(message, None)
    inits = _statuses(pod, "initContainerStatuses")
    mains = _statuses(pod, "containerStatuses")
    for status in list(inits.values()) + list(mains.values()):
        waiting = _waiting(status)
        if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
            pulled = status.get("image") or image
            failure = diagnose_image(pulled, waiting.get("message") or waiting["reason"])
            return Failure(failure.message, failure.hint, image=pulled)
        if waiting.get("reason") in ("CreateContainerConfigError", "CreateContainerError"):
            return Failure(f"container {status['name']} cannot be created: {waiting.get('message', waiting['reason'])}",
                           "re-run `llmctl deploy` (it recreates the Secret and ConfigMap the pod refers to)")
    main = mains.get(MAIN_CONTAINER, {})
    for last in (False, True):
        term = _terminated(main, last)
        if term.get("reason") == "OOMKilled":
            return Failure("the vllm container was killed for running out of memory (OOMKilled)",
                           "raise deploy.limits.memory (and requests), or lower model.max_model_len / "
                           "server.max_num_seqs")
    init = inits.get(INIT_CONTAINER, {})
    term = _terminated(init)
    if (term and term.get("exitCode") != 0) or _waiting(init).get("reason") == "CrashLoopBackOff":
        code = term.get("exitCode") if term else _terminated(init, True).get("exitCode")
        return Failure(f"exit {code}", "", (INIT_CONTAINER, not term))
    if _waiting(main).get("reason") == "CrashLoopBackOff":
        code = _terminated(main, True).get("exitCode")
        return Failure(f"the vllm container keeps crashing (exit code {code}, {main.get('restartCount', 0)} restarts)",
                       "fix the error in its log, then `llmctl deploy` again; `llmctl logs --previous` shows it all",
                       (MAIN_CONTAINER, True))
    return None


# --- following a rollout through the Kubernetes API ----------------------------------------------


@dataclass
class RolloutTarget:
    """What to follow: the pods of `selector` in `namespace` whose config-hash annotation is `config_hash`."""

    namespace: str
    selector: str
    config_hash: str
    replicas: int
    image: str
    timeout_s: float
    download_hint: dict = field(default_factory=dict)  # bucket, prefix, role_arn, service_account
    requested_timeout_s: float | None = None  # what the user asked for (timeout_s is what is left of it)


@dataclass
class RolloutResult:
    pod: str | None
    timeline: Timeline
    ready_replicas: int
    already_ready: bool = False  # the pods were Ready when first seen: nothing rolled out


class RolloutWatcher:
    """Watches pods and events (no sleep-polling), tails the init container's progress, and
    emits `RolloutEvent`s until enough new pods are Ready; a diagnosed failure or the timeout
    raises `LlmctlError`."""

    def __init__(self, kube, target: RolloutTarget, emit: Callable[[RolloutEvent], None],
                 clock: Callable[[], float] = time.monotonic):
        self.kube = kube
        self.t = target
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
        for event_type, obj in self.kube.watch(api_version, kind, namespace=self.t.namespace,
                                               label_selector=label_selector, timeout_s=timeout):
            if self.stop.is_set():
                return
            self.queue.put((kind, event_type, obj))

    def _tail(self, pod: str) -> None:
        for line in self.kube.pod_logs(pod, self.t.namespace, container=INIT_CONTAINER, follow=True):
            if self.stop.is_set():
                return
            self.queue.put(("log", pod, line))

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> RolloutResult:
        self.emit(PhaseStarted(SCHEDULING, 0.0))
        self._spawn(lambda: self._watch("v1", "Pod", self.t.selector))
        self._spawn(lambda: self._watch("v1", "Event", None))
        deadline = self.t0 + self.t.timeout_s
        try:
            while True:
                remaining = deadline - self.clock()
                if remaining <= 0:
                    raise self._timeout()
                try:
                    item = self.queue.get(timeout=min(remaining, 1.0))
                except queue.Empty:
                    continue
                done = self._handle(item)
                if done is not None:
                    return done
        finally:
            self.stop.set()

    def _mine(self, pod: dict) -> bool:
        meta = pod["metadata"]
        return (meta.get("annotations") or {}).get("llmctl.io/config-hash") == self.t.config_hash \
            and not meta.get("deletionTimestamp")

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
        if event_type == "DELETED" or not self._mine(pod):
            self.pods.pop(name, None)
            return None
        self.pods[name] = pod
        return self._on_pod(pod)

    def _on_pod(self, pod: dict) -> RolloutResult | None:
        unschedulable = unschedulable_message(pod)
        if unschedulable is not None:
            raise self._scheduling(unschedulable)
        failure = diagnose_pod(pod, self.t.image)
        if failure:
            raise self._error(pod, failure)
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
        """The most advanced of the new pods: the display follows it."""
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
            if not (self.pods[involved["name"]].get("spec") or {}).get("nodeName"):  # not an old event
                raise self._scheduling(message)
            return
        if reason == "Pulled":
            self.emit(Notice(message, self.now()))
        elif reason == "Unhealthy":
            self.last_unhealthy = message
            self.emit(Notice(message, self.now(), "warn"))
        elif reason == "BackOff" or event.get("type") == "Warning":
            self.emit(Notice(f"{reason}: {message}", self.now(), "warn"))

    def _scheduling(self, message: str) -> LlmctlError:
        gpu_nodes = None
        if "Insufficient nvidia.com/gpu" in message:
            nodes = self.kube.list("v1", "Node")
            gpu_nodes = sum(1 for n in nodes if _gpus(n) > 0)
        failure = diagnose_scheduling(message, gpu_nodes)
        return LlmctlError(failure.message, hint=failure.hint)

    def _logs(self, pod: str, container: str, previous: bool) -> list[str]:
        try:
            lines = self.kube.pod_logs(pod, self.t.namespace, container=container, previous=previous,
                                       tail_lines=50)
            return [line for line in lines]
        except LlmctlError:
            return []

    def _events(self, pod: str) -> list[dict]:
        try:
            return self.kube.events(self.t.namespace, involved_name=pod)
        except LlmctlError:
            return []

    def _error(self, pod: dict, failure: Failure) -> LlmctlError:
        name = pod["metadata"]["name"]
        if failure.logs and failure.logs[0] == INIT_CONTAINER:
            lines = self._logs(name, INIT_CONTAINER, failure.logs[1]) or self._logs(name, INIT_CONTAINER, False)
            code = failure.message.removeprefix("exit ")
            download = diagnose_download(lines, None if code == "None" else int(code), self.t.download_hint)
            return LlmctlError(download.message, hint=download.hint)
        if failure.image:  # ImagePullBackOff only says "Back-off pulling image": the event has the cause
            pulls = [e.get("message", "") for e in self._events(name) if e.get("reason") == "Failed"
                     and e.get("message", "").startswith("Failed to pull image")]
            if pulls:
                failure = diagnose_image(failure.image, pulls[-1].split(": ", 1)[-1])
        message = failure.message
        if failure.logs:
            lines = self._logs(name, *failure.logs)[-LOG_TAIL_LINES:]
            if lines:
                message += "; its last log lines:\n" + "\n".join(f"  {line}" for line in lines)
        if failure.message.startswith("the vllm container was killed"):
            limit = next((c.get("resources", {}).get("limits", {}).get("memory") for c in pod["spec"]["containers"]
                          if c["name"] == MAIN_CONTAINER), None)
            if limit:
                message = message.replace("(OOMKilled)", f"(OOMKilled at its {limit} limit)")
        return LlmctlError(message, hint=failure.hint)

    def _timeout(self) -> LlmctlError:
        phase = self.timeline.current or SCHEDULING
        pods = list(self.pods.values())
        ready = sum(1 for p in pods if is_ready(p))
        message = (f"the endpoint was not ready after {self.t.requested_timeout_s or self.t.timeout_s:g}s: {ready}/{self.t.replicas} pods ready, "
                   f"stuck at '{phase}'")
        if phase == LOADING and pods:
            lead = self._lead()
            if self.last_unhealthy:
                message += f"; last probe: {self.last_unhealthy}"
            lines = self._logs(lead["metadata"]["name"], MAIN_CONTAINER, False)[-LOG_TAIL_LINES:]
            if lines:
                message += "; the server's last log lines:\n" + "\n".join(f"  {line}" for line in lines)
            hint = ("the engine did not pass /ready in time: check the log above; a large model may need a longer "
                    "--timeout or deploy.startup_timeout_s")
        elif phase == DOWNLOADING and self.timeline.download:
            d = self.timeline.download
            message += f"; downloaded {_size(d.bytes_done)} of {_size(d.bytes_total)}"
            hint = "the download is slow: raise --timeout, or enable deploy.node_cache to keep the model on the node"
        elif phase == SCHEDULING:
            hint = "no node took the pod: `llmctl status` and `kubectl describe pod` show why"
        else:
            hint = "raise --timeout, or see `llmctl status` and `llmctl logs`"
        return LlmctlError(message, hint=hint)


def _gpus(node: dict) -> int:
    value = ((node.get("status") or {}).get("allocatable") or {}).get("nvidia.com/gpu", "0")
    try:
        return int(str(value))
    except ValueError:
        return 0


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


# --- the endpoint ---------------------------------------------------------------------------------


def service_address(service: dict) -> str | None:
    """The load balancer's hostname (or IP) once the cloud published it."""
    for ingress in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        address = ingress.get("hostname") or ingress.get("ip")
        if address:
            return address
    return None


def wait_for_address(kube, namespace: str, name: str, timeout_s: float) -> str:
    """Watch the Service until its load balancer has an address."""
    service = kube.get("v1", "Service", name, namespace)
    if service and service_address(service):
        return service_address(service)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        remaining = max(1, int(deadline - time.monotonic()))
        for _, obj in kube.watch("v1", "Service", namespace=namespace, field_selector=f"metadata.name={name}",
                                 timeout_s=remaining):
            address = service_address(obj)
            if address:
                return address
            if time.monotonic() >= deadline:
                break
    raise LlmctlError(
        f"the load balancer of Service {namespace}/{name} got no address within {timeout_s:g}s",
        hint="check the cloud controller / AWS Load Balancer Controller events: `kubectl -n "
             f"{namespace} describe service {name}`",
    )


@dataclass
class SmokeResult:
    url: str
    status: int
    latency_s: float
    text: str

    def to_dict(self) -> dict:
        return {"url": self.url, "status": self.status, "latency_s": round(self.latency_s, 3), "text": self.text}


def smoke_request(base_url: str, api_key: str, model: str, timeout_s: float,
                  sleep: Callable[[float], None] = time.sleep) -> SmokeResult:
    """One completion through the endpoint. Connection failures are retried until `timeout_s`
    (a new load balancer's DNS name takes a few minutes to resolve); an HTTP error is final."""
    import urllib.error
    import urllib.request

    url = base_url.rstrip("/") + "/v1/completions"
    body = json.dumps({"model": model, "prompt": "Hello, my name is", "max_tokens": 8, "temperature": 0}).encode()
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=max(5.0, min(60.0, deadline - started))) as response:
                data = json.loads(response.read() or b"{}")
                text = ((data.get("choices") or [{}])[0]).get("text", "")
                return SmokeResult(url, response.status, time.monotonic() - started, text)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise LlmctlError(f"the smoke request to {url} failed with HTTP {exc.code}: {detail}",
                              hint="`llmctl logs` shows the server's side") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() + 2 >= deadline:
            raise LlmctlError(f"the endpoint {base_url} did not answer within {timeout_s:g}s ({last})",
                              hint="a new load balancer's DNS can take minutes: retry `llmctl status`; check "
                                   "deploy.load_balancer_source_ranges includes your address")
        sleep(2)
