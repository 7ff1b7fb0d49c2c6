"""Why a rollout does not reach Ready: typed failures read from pods, events and logs (pure).

Each failure carries what the cluster said as fields (`exit_code`, `oom`, `reason`, the
container, the scheduler's message); `explain()` is the one place that turns a failure into
the message and the fix the user reads. Nothing parses those words back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from llmctl.actions.rollout.events import DOWNLOADING, LOADING, SCHEDULING, DownloadProgress, json_line
from llmctl.actions.rollout.pods import (
    INIT_CONTAINER,
    MAIN_CONTAINER,
    statuses,
    terminated,
    unschedulable_message,
    waiting,
)
from llmctl.units import human_bytes

LOG_TAIL_LINES = 8
IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")
CREATE_REASONS = ("CreateContainerConfigError", "CreateContainerError")


class Failure:
    """A diagnosed failure. Subclasses hold the facts; `message` and `hint` are `explain()`'s words."""

    @property
    def message(self) -> str:
        return explain(self)[0]

    @property
    def hint(self) -> str:
        return explain(self)[1]


@dataclass(frozen=True)
class Unschedulable(Failure):
    scheduler_message: str
    cause: Literal["no-nodes", "taint", "no-gpu-node", "gpus-busy", "node-selector", "too-small", "other"]
    taint: str = ""
    insufficient: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImagePullFailed(Failure):
    image: str
    registry_message: str
    cause: Literal["not-found", "denied", "other"]


@dataclass(frozen=True)
class ContainerNotCreated(Failure):
    container: str
    reason: str  # CreateContainerConfigError | CreateContainerError
    detail: str


@dataclass(frozen=True)
class ContainerFailed(Failure):
    """A container exited: OOM-killed, crash-looping, or the init container's download failed."""

    container: str
    exit_code: int | None
    oom: bool = False
    restarts: int = 0
    previous: bool = False  # the previous instance's log explains it (the current one restarted)
    memory_limit: str | None = None
    log_lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class DownloadSource:
    """Where the init container downloads from, and as whom (for the fix of a denied download)."""

    bucket: str | None = None
    prefix: str | None = None
    role_arn: str | None = None
    service_account: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class DownloadFailed(Failure):
    source: DownloadSource
    error: str  # the downloader's error line, else its last log line
    cause: Literal["denied", "no-bucket", "no-model", "disk", "other"]
    log_lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotReadyInTime(Failure):
    timeout_s: float
    ready: int
    replicas: int
    phase: str
    last_probe: str | None = None
    log_lines: tuple[str, ...] = ()
    download: DownloadProgress | None = None


# --- diagnosis (facts from the cluster's own words) -----------------------------------------------


def diagnose_scheduling(message: str, gpu_nodes: int | None) -> Unschedulable:
    """The scheduler's FailedScheduling message, classified; `gpu_nodes` counts nodes offering a GPU."""
    if "no nodes available" in message or message.startswith("0/0 nodes"):
        return Unschedulable(message, "no-nodes")
    taint = re.search(r"untolerated taint \{([^}]*)\}", message)
    if taint:
        return Unschedulable(message, "taint", taint=taint.group(1))
    if "Insufficient nvidia.com/gpu" in message:
        return Unschedulable(message, "no-gpu-node" if gpu_nodes == 0 else "gpus-busy")
    if "didn't match Pod's node affinity/selector" in message:
        return Unschedulable(message, "node-selector")
    insufficient = re.findall(r"Insufficient ([a-z0-9./-]+)", message)
    if insufficient:
        return Unschedulable(message, "too-small", insufficient=tuple(insufficient))
    return Unschedulable(message, "other")


def diagnose_image(image: str, message: str) -> ImagePullFailed:
    low = message.lower()
    if "not found" in low or "manifest unknown" in low or "notfound" in low:
        return ImagePullFailed(image, message, "not-found")
    if any(s in low for s in ("403", "forbidden", "unauthorized", "denied", "no basic auth", "401")):
        return ImagePullFailed(image, message, "denied")
    return ImagePullFailed(image, message, "other")


def diagnose_download(lines: list[str], exit_code: int | None, source: DownloadSource) -> DownloadFailed:
    """The init container failed: find the downloader's error line and classify it."""
    error = ""
    for line in reversed(lines):
        data = json_line(line)
        if data and data.get("event") == "error":
            error = str(data.get("error") or data.get("message") or "")
            detail = data.get("message") or data.get("detail")
            error = f"{error}: {detail}" if detail and detail != error else error
            break
    text = error or (lines[-1] if lines else f"exit code {exit_code}")
    low = text.lower()
    cause = "other"
    if "AccessDenied" in text or "Forbidden" in text or "403" in text:
        cause = "denied"
    elif "NoSuchBucket" in text:
        cause = "no-bucket"
    elif "NoSuchKey" in text or "no objects" in low or "prefix" in low:
        cause = "no-model"
    elif "No space" in text or "disk" in low:
        cause = "disk"
    return DownloadFailed(source, text, cause, tuple(lines[-LOG_TAIL_LINES:]))


def diagnose_pod(pod: dict, image: str) -> Failure | None:
    """A failure visible in the pod's status, or None while it may still come up."""
    message = unschedulable_message(pod)
    if message is not None:
        return diagnose_scheduling(message, None)
    inits = statuses(pod, "initContainerStatuses")
    mains = statuses(pod, "containerStatuses")
    for status in list(inits.values()) + list(mains.values()):
        state = waiting(status)
        if state.get("reason") in IMAGE_PULL_REASONS:
            return diagnose_image(status.get("image") or image, state.get("message") or state["reason"])
        if state.get("reason") in CREATE_REASONS:
            return ContainerNotCreated(status["name"], state["reason"], state.get("message", state["reason"]))
    main = mains.get(MAIN_CONTAINER, {})
    for last in (False, True):
        term = terminated(main, last)
        if term.get("reason") == "OOMKilled":
            return ContainerFailed(MAIN_CONTAINER, term.get("exitCode"), oom=True,
                                   restarts=main.get("restartCount", 0), previous=last)
    init = inits.get(INIT_CONTAINER, {})
    term = terminated(init)
    if (term and term.get("exitCode") != 0) or waiting(init).get("reason") == "CrashLoopBackOff":
        code = term.get("exitCode") if term else terminated(init, True).get("exitCode")
        return ContainerFailed(INIT_CONTAINER, code, restarts=init.get("restartCount", 0), previous=not term)
    if waiting(main).get("reason") == "CrashLoopBackOff":
        return ContainerFailed(MAIN_CONTAINER, terminated(main, True).get("exitCode"),
                               restarts=main.get("restartCount", 0), previous=True)
    return None


# --- words (the one place) -----------------------------------------------------------------------


def _tail(lines: tuple[str, ...], lead: str = "its last log lines") -> str:
    return f"; {lead}:\n" + "\n".join(f"  {line}" for line in lines) if lines else ""


_SCHEDULING_HINTS = {
    "no-nodes": "create or scale the GPU node group: `llmctl cluster up`",
    "taint": "remove the taint from the GPU nodes or set cluster.gpu_taint to match it, then deploy again",
    "no-gpu-node": "add a GPU node group (`llmctl cluster up`) and check the NVIDIA device plugin runs "
                   "(`kubectl -n kube-system get daemonset`)",
    "gpus-busy": "raise cluster.nodes_max/nodes_desired and run `llmctl cluster up`, or lower deploy.replicas",
    "node-selector": "label the GPU nodes with cluster.node_labels or remove them from the config",
    "too-small": "lower deploy.requests or choose a larger instance type (cluster.instance_types)",
    "other": "`kubectl describe pod` shows the scheduler's reasons",
}
_DOWNLOAD_HINTS = {
    "no-bucket": "check model.bucket, then `llmctl model upload`",
    "no-model": "run `llmctl model upload DIR` or fix model.prefix",
    "disk": "raise deploy.model_volume_size",
    "other": "`llmctl logs --container model-download` shows the full log",
}


def _unschedulable(f: Unschedulable) -> str:
    said = f.scheduler_message
    return {
        "no-nodes": f"the cluster has no nodes to run the endpoint ({said})",
        "taint": f"every node carries a taint the endpoint does not tolerate: {f.taint} ({said})",
        "no-gpu-node": f"no node in the cluster offers an nvidia.com/gpu ({said})",
        "gpus-busy": f"no free GPU for the endpoint's pod: every GPU is in use ({said})",
        "node-selector": f"no node has the labels the endpoint selects (cluster.node_labels) ({said})",
        "too-small": f"the GPU nodes are too small: insufficient {', '.join(f.insufficient)} ({said})",
        "other": f"the endpoint's pod cannot be scheduled: {said}",
    }[f.cause]


def _image(f: ImagePullFailed) -> tuple[str, str]:
    if f.cause == "not-found":
        return (f"image {f.image} does not exist in the registry ({f.registry_message})",
                "run `llmctl build`, or pass an existing image with `--image`")
    if f.cause == "denied":
        return (f"the nodes may not pull {f.image}: access denied ({f.registry_message})",
                "attach AmazonEC2ContainerRegistryReadOnly to the node group's instance role "
                "(`llmctl cluster up` does) or use an image in this account's ECR")
    return f"pulling image {f.image} failed ({f.registry_message})", "`kubectl describe pod` shows the full error"


def _container(f: ContainerFailed) -> tuple[str, str]:
    if f.oom:
        limit = f" at its {f.memory_limit} limit" if f.memory_limit else ""
        return (f"the {f.container} container was killed for running out of memory (OOMKilled{limit})",
                "raise deploy.limits.memory (and requests), or lower model.max_model_len / server.max_num_seqs")
    if f.container == INIT_CONTAINER:
        return (f"the {f.container} container failed (exit code {f.exit_code})" + _tail(f.log_lines),
                "`llmctl logs --container model-download` shows the full log")
    return (f"the {f.container} container keeps crashing (exit code {f.exit_code}, {f.restarts} restarts)"
            + _tail(f.log_lines),
            "fix the error in its log, then `llmctl deploy` again; `llmctl logs --previous` shows it all")


def _download(f: DownloadFailed) -> tuple[str, str]:
    source, text = f.source, f.error
    if f.cause == "denied":
        return (f"the model download was denied access to {source.uri} ({text})",
                f"check the IRSA role {source.role_arn} exists, trusts the cluster's OIDC provider for "
                f"{source.service_account}, and may read the bucket (`llmctl cluster up` sets it up)")
    message = {
        "no-bucket": f"the model bucket does not exist ({text})",
        "no-model": f"no model found at {source.uri} ({text})",
        "disk": f"the model does not fit in /models ({text})",
        "other": f"the model download failed ({text})" + _tail(f.log_lines),
    }[f.cause]
    return message, _DOWNLOAD_HINTS[f.cause]


def _not_ready(f: NotReadyInTime) -> tuple[str, str]:
    message = (f"the endpoint was not ready after {f.timeout_s:g}s: {f.ready}/{f.replicas} pods ready, "
               f"stuck at '{f.phase}'")
    if f.phase == LOADING:
        if f.last_probe:
            message += f"; last probe: {f.last_probe}"
        return (message + _tail(f.log_lines, "the server's last log lines"),
                "the engine did not pass /ready in time: check the log above; a large model may need a longer "
                "--timeout or deploy.startup_timeout_s")
    if f.phase == DOWNLOADING and f.download:
        message += f"; downloaded {human_bytes(f.download.bytes_done)} of {human_bytes(f.download.bytes_total)}"
        return message, "the download is slow: raise --timeout, or enable deploy.node_cache to keep the model on the node"
    if f.phase == SCHEDULING:
        return message, "no node took the pod: `llmctl status` and `kubectl describe pod` show why"
    return message, "raise --timeout, or see `llmctl status` and `llmctl logs`"


def explain(failure: Failure) -> tuple[str, str]:
    """(message, hint): the failure in the user's words, with the fix."""
    match failure:
        case Unschedulable():
            return _unschedulable(failure), _SCHEDULING_HINTS[failure.cause]
        case ImagePullFailed():
            return _image(failure)
        case ContainerNotCreated():
            return (f"container {failure.container} cannot be created: {failure.detail}",
                    "re-run `llmctl deploy` (it recreates the Secret and ConfigMap the pod refers to)")
        case ContainerFailed():
            return _container(failure)
        case DownloadFailed():
            return _download(failure)
        case NotReadyInTime():
            return _not_ready(failure)
    raise TypeError(f"no words for {type(failure).__name__}")
