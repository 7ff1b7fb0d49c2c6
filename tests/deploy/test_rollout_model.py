"""The rollout's plain-data model and pure diagnosis (no cluster): phases from pod status,
progress lines, the timeline, failure messages, and the plain-text display."""

from __future__ import annotations

import io

import pytest

from llmctl.actions.rollout.diagnosis import (
    ContainerFailed,
    DownloadSource,
    NotReadyInTime,
    diagnose_download,
    diagnose_image,
    diagnose_pod,
    diagnose_scheduling,
    explain,
)
from llmctl.actions.rollout.endpoint import service_address
from llmctl.actions.rollout.events import (
    DOWNLOADING,
    LOADING,
    PULLING,
    READY,
    SCHEDULING,
    DownloadProgress,
    Notice,
    PhaseStarted,
    RolloutFinished,
    Timeline,
    parse_progress_line,
)
from llmctl.actions.rollout.pods import Revision, pod_phase
from llmctl.ui.console import Output
from llmctl.ui.rollout import RolloutDisplay, progress_text, render_timeline


def pod(node=None, init=None, main=None, conditions=(), streamed=False) -> dict:
    spec = {"containers": [{"name": "vllm"}]}
    if not streamed:
        spec["initContainers"] = [{"name": "model-download"}]
    if node:
        spec["nodeName"] = node
    status: dict = {"conditions": [dict(c) for c in conditions]}
    if init is not None:
        status["initContainerStatuses"] = [{"name": "model-download", **init}]
    if main is not None:
        status["containerStatuses"] = [{"name": "vllm", **main}]
    return {"metadata": {"name": "p"}, "spec": spec, "status": status}


RUNNING = {"state": {"running": {}}}
DONE = {"state": {"terminated": {"exitCode": 0}}}
WAITING = {"state": {"waiting": {"reason": "PodInitializing"}}}


def test_pod_phase_walks_the_phases() -> None:
    assert pod_phase(pod()) == SCHEDULING
    assert pod_phase(pod("n", init={"state": {"waiting": {"reason": "ContainerCreating"}}}, main=WAITING)) == PULLING
    assert pod_phase(pod("n", init=RUNNING, main=WAITING)) == DOWNLOADING
    assert pod_phase(pod("n", init=DONE, main={"state": {"waiting": {"reason": "ContainerCreating"}}})) == LOADING
    assert pod_phase(pod("n", init=DONE, main=RUNNING)) == LOADING
    ready = pod("n", init=DONE, main=RUNNING, conditions=[{"type": "Ready", "status": "True"}])
    assert pod_phase(ready) == READY
    assert pod_phase(pod("n", main=RUNNING, streamed=True)) == LOADING


def test_progress_lines() -> None:
    line = '{"event": "progress", "bytes_done": 500000000, "bytes_total": 1000000000, "files_done": 1, ' \
           '"files_total": 3, "rate_bps": 100000000}'
    p = parse_progress_line(line, at=3.0)
    assert p == DownloadProgress(500_000_000, 1_000_000_000, 1, 3, 1e8, 3.0)
    assert p.fraction == 0.5 and p.eta_s == 5.0
    assert progress_text(p) == "500.0 MB / 1.0 GB (50%) at 100.0 MB/s, ETA 5.0s, 1/3 files"
    assert parse_progress_line('{"event": "done"}') is None
    assert parse_progress_line("INFO starting") is None
    assert parse_progress_line('{"event": "progress", "bytes_done": "x"}') is None


def test_timeline_durations() -> None:
    t = Timeline()
    for event in (PhaseStarted(SCHEDULING, 0.0), PhaseStarted(PULLING, 1.0), PhaseStarted(DOWNLOADING, 4.0),
                  PhaseStarted(LOADING, 10.0), PhaseStarted(READY, 12.5), RolloutFinished(12.6, True)):
        t.apply(event)
    assert t.durations() == [(SCHEDULING, 1.0), (PULLING, 3.0), (DOWNLOADING, 6.0), (LOADING, 2.5)]
    assert t.to_dict()["total_s"] == 12.5


@pytest.mark.parametrize(("message", "gpus", "expected", "fix"), [
    ("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.", 1, "no free GPU", "nodes_max"),
    ("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.", 0, "no node in the cluster offers", "device plugin"),
    ("0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}.", None, "taint", "taint"),
    ("no nodes available to schedule pods", None, "no nodes", "llmctl cluster up"),
    ("0/1 nodes are available: 1 Insufficient memory.", None, "too small", "deploy.requests"),
])
def test_scheduling_diagnosis(message, gpus, expected, fix) -> None:
    failure = diagnose_scheduling(message, gpus)
    assert expected in failure.message and fix in failure.hint


def test_image_diagnosis() -> None:
    assert "does not exist" in diagnose_image("r@sha256:1", "failed to resolve reference: not found").message
    denied = diagnose_image("r@sha256:1", "pull access denied, 403 Forbidden")
    assert "access denied" in denied.message and "AmazonEC2ContainerRegistryReadOnly" in denied.hint


def test_download_diagnosis() -> None:
    hint = DownloadSource("b", "p", "arn:aws:iam::1:role/r", "vllm-sa")
    denied = diagnose_download(['{"event": "error", "error": "AccessDenied", "message": "s3:ListBucket denied"}'], 1, hint)
    assert "denied access to s3://b/p" in denied.message and "arn:aws:iam::1:role/r" in denied.hint
    assert denied.cause == "denied"
    other = diagnose_download(["boom", "Traceback", "KeyError: x"], 1, hint)
    assert "KeyError: x" in other.message and other.cause == "other"


def test_pod_diagnosis() -> None:
    oom = pod("n", init=DONE, main={"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 1,
                                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}})
    killed = diagnose_pod(oom, "img")
    assert "OOMKilled" in killed.message and killed.oom and killed.exit_code == 137
    crash = pod("n", init=DONE, main={"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 2,
                                      "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}})
    failure = diagnose_pod(crash, "img")
    assert "keeps crashing (exit code 1, 2 restarts)" in failure.message
    assert (failure.container, failure.previous, failure.exit_code, failure.oom) == ("vllm", True, 1, False)
    init_failed = pod("n", init={"state": {"terminated": {"exitCode": 1}}}, main=WAITING)
    assert diagnose_pod(init_failed, "img") == ContainerFailed("model-download", 1, previous=False)
    pull = pod("n", init={"state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling"}},
                          "image": "img"}, main=WAITING)
    assert "pulling image img failed" in diagnose_pod(pull, "img").message
    assert diagnose_pod(pod("n", init=RUNNING, main=WAITING), "img") is None


def test_service_address() -> None:
    assert service_address({"status": {"loadBalancer": {"ingress": [{"hostname": "a.elb.amazonaws.com"}]}}}) == \
        "a.elb.amazonaws.com"
    assert service_address({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}}) == "127.0.0.1"
    assert service_address({"status": {}}) is None


def test_plain_display_and_timeline(monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    output = Output()
    err, out = io.StringIO(), io.StringIO()
    output.err.file, output.out.file = err, out
    with RolloutDisplay(output) as show:
        show(PhaseStarted(SCHEDULING, 0.0, "pod-1"))
        show(PhaseStarted(DOWNLOADING, 2.0))
        show(DownloadProgress(10, 100, 0, 2, 10.0, 2.5))
        show(DownloadProgress(20, 100, 0, 2, 10.0, 3.0))  # within 5 s of the last: not printed
        show(DownloadProgress(100, 100, 2, 2, 10.0, 9.0))  # complete: printed
        show(Notice('Successfully pulled image "x"', 9.5))
        show(PhaseStarted(LOADING, 10.0))
        show(PhaseStarted(READY, 12.0))
    text = err.getvalue()
    assert "Scheduling... (pod-1)" in text and "Downloading model..." in text and "Ready" in text
    assert "10 B / 100 B (10%)" in text and "20 B / 100 B" not in text and "100 B / 100 B (100%)" in text
    render_timeline(output, show.timeline)
    table = out.getvalue()
    assert "cold-start timeline" in table and "Loading engine" in table and "12.0s" in table


def test_live_display_on_a_terminal() -> None:
    from rich.console import Console

    output = Output()
    buffer = io.StringIO()
    output.err = Console(file=buffer, force_terminal=True, no_color=True, width=120)
    assert output.interactive
    with RolloutDisplay(output) as show:
        assert show.live is not None
        show(PhaseStarted(SCHEDULING, 0.0))
        show(PhaseStarted(PULLING, 0.5))
        show(PhaseStarted(DOWNLOADING, 1.0))
        show(DownloadProgress(2_000_000_000, 4_000_000_000, 1, 4, 200_000_000, 2.0))
        show(Notice("Readiness probe failed: HTTP probe failed with statuscode: 503", 2.5, "warn"))
        show.live.refresh()
        middle = buffer.getvalue()
        show(PhaseStarted(LOADING, 3.0))
        show(PhaseStarted(READY, 4.0))
    final = buffer.getvalue()
    assert "2.0 GB / 4.0 GB (50%) at 200.0 MB/s, ETA 10.0s, 1/4 files" in middle
    assert "Readiness probe failed" in middle
    for phase in ("Scheduling", "Pulling image", "Downloading model", "Loading engine", "Ready"):
        assert phase in final
    assert "4.0s" in final  # Ready at 4 s


def test_failures_are_words_only_in_explain() -> None:
    """The memory limit and log lines a watcher adds are fields; `explain` alone words them."""
    oom = ContainerFailed("vllm", 137, oom=True, memory_limit="14Gi")
    assert explain(oom)[0] == "the vllm container was killed for running out of memory (OOMKilled at its 14Gi limit)"
    crash = ContainerFailed("vllm", 1, restarts=3, previous=True, log_lines=("Traceback", "ValueError: x"))
    assert explain(crash)[0].endswith("(exit code 1, 3 restarts); its last log lines:\n  Traceback\n  ValueError: x")
    slow = NotReadyInTime(60, 0, 1, DOWNLOADING, download=DownloadProgress(1_500_000_000, 3_000_000_000, 1, 2, 1e6))
    message, hint = explain(slow)
    assert "stuck at 'Downloading model'; downloaded 1.5 GB of 3.0 GB" in message and "node_cache" in hint


def test_a_revision_owns_only_its_live_pods() -> None:
    rev = Revision("vllm", "app=vllm", {"llmctl.io/config-hash": "abc"})
    mine = {"metadata": {"name": "a", "annotations": {"llmctl.io/config-hash": "abc"}}}
    assert rev.owns(mine)
    assert not rev.owns({"metadata": {"name": "b", "annotations": {"llmctl.io/config-hash": "old"}}})
    assert not rev.owns({"metadata": {**mine["metadata"], "deletionTimestamp": "2024-01-01T00:00:00Z"}})
