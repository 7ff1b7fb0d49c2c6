"""The rollout's phases and events: plain data shared by every source of progress.

`deploy` derives these events from Kubernetes watches (pods, events, the init container's log),
`llmctl local up` emits the same events from local processes; `ui/rollout.py` renders them and
`Timeline` folds them into the cold-start timeline.

    Scheduling -> Pulling image -> Downloading model -> Loading engine -> Ready
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

SCHEDULING = "Scheduling"
PULLING = "Pulling image"
DOWNLOADING = "Downloading model"
LOADING = "Loading engine"
READY = "Ready"
PHASES = (SCHEDULING, PULLING, DOWNLOADING, LOADING, READY)


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


def json_line(line: str) -> dict | None:
    """A log line that is a JSON object (the downloader's structured lines), else None."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_progress_line(line: str, at: float = 0.0) -> DownloadProgress | None:
    """A downloader JSON line `{"event": "progress", ...}` as a `DownloadProgress`; else None."""
    data = json_line(line)
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
