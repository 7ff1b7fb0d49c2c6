"""The rollout phase display: Scheduling -> Pulling image -> Downloading model -> Loading engine -> Ready
(or the phases a source has: `local up` neither schedules a pod nor pulls an image).

Fed with the plain `RolloutEvent`s of `llmctl.actions.rollout.events` from any source (Kubernetes
watches for `deploy`, local processes for `local up`). On a terminal it is a live panel with a
ticking clock on the current phase and a download bar; otherwise one line per change, progress
at most every few seconds, so logs and CI output stay short. Goes to stderr.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Self

from llmctl.actions.rollout.events import (
    DOWNLOADING,
    PHASES,
    READY,
    DownloadProgress,
    Notice,
    PhaseStarted,
    RolloutEvent,
    Timeline,
)
from llmctl.ui.console import Output
from llmctl.units import human_bytes, human_seconds

PLAIN_PROGRESS_EVERY_S = 5.0


def progress_text(p: DownloadProgress) -> str:
    files = f", {p.files_done}/{p.files_total} files" if p.files_total else ""
    eta = f", ETA {human_seconds(p.eta_s)}" if p.eta_s is not None and p.bytes_done < p.bytes_total else ""
    return (f"{human_bytes(p.bytes_done)} / {human_bytes(p.bytes_total)} ({p.fraction:.0%}) "
            f"at {p.rate_bps / 1e6:.1f} MB/s{eta}{files}")


class RolloutDisplay:
    """`display.start()`, `display(event)` per event, `display.stop()` (or `with RolloutDisplay(output) as show`);
    `.timeline` holds what was seen. `start()` may come late: `deploy` starts it once the objects are applied."""

    def __init__(self, output: Output, title: str = "rollout", clock: Callable[[], float] = time.monotonic,
                 phases: tuple[str, ...] = PHASES):
        self.output = output
        self.title = title
        self.clock = clock
        self.phases = phases
        self.stopped_by: str | None = None  # "interrupted" or "failed": how the last frame marks the current phase
        self.stopped_at: float | None = None
        self.timeline = Timeline()
        self.notices: list[Notice] = []
        self.live = None
        self.lock = threading.Lock()
        self.origin: float | None = None  # clock() at event time 0, for the ticking elapsed time
        self.last_plain_progress = -PLAIN_PROGRESS_EVERY_S

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """The live panel on a terminal (plain lines otherwise); starting twice is a no-op."""
        if self.live is None and self.output.interactive and not self.output.json:
            from rich.live import Live

            self.live = Live(get_renderable=self._renderable, console=self.output.err, refresh_per_second=4,
                             transient=False)
            self.live.start()

    def stop(self) -> None:
        """End the live panel (its last frame stays on screen); safe when never started."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """On an exception the last frame marks where it stopped, instead of freezing a running clock."""
        if exc_type is not None:
            from llmctl.errors import EXIT_INTERRUPTED

            interrupted = issubclass(exc_type, KeyboardInterrupt) or getattr(exc, "exit_code", None) == EXIT_INTERRUPTED
            with self.lock:
                self.stopped_by = "interrupted" if interrupted else "failed"
                self.stopped_at = (self.clock() - self.origin) if self.origin is not None else None
        self.stop()

    # -- events -------------------------------------------------------------------------------------

    def __call__(self, event: RolloutEvent) -> None:
        with self.lock:
            if self.origin is None:
                self.origin = self.clock() - getattr(event, "at", 0.0)
            self.timeline.apply(event)
            if isinstance(event, Notice):
                self.notices = (self.notices + [event])[-3:]
            if self.live is None:
                self._plain(event)

    def _plain(self, event: RolloutEvent) -> None:
        out = self.output
        if isinstance(event, PhaseStarted):
            detail = f" ({event.detail})" if event.detail else ""
            if event.phase == READY:
                out.info(f"  [{human_seconds(event.at):>7}] Ready{detail}")
            else:
                out.info(f"  [{human_seconds(event.at):>7}] {event.phase}...{detail}")
        elif isinstance(event, DownloadProgress):
            done = event.bytes_total and event.bytes_done >= event.bytes_total
            if done or event.at - self.last_plain_progress >= PLAIN_PROGRESS_EVERY_S:
                self.last_plain_progress = event.at
                out.info(f"  [{human_seconds(event.at):>7}]   {progress_text(event)}")
        elif isinstance(event, Notice):
            if event.level == "warn":
                out.warn(event.message)
            else:
                out.info(f"  [{human_seconds(event.at):>7}]   {event.message}")

    # -- live rendering -----------------------------------------------------------------------------

    def _renderable(self):
        from rich.table import Table
        from rich.text import Text

        with self.lock:
            now = (self.clock() - self.origin) if self.origin is not None else 0.0
            if self.stopped_by is not None and self.stopped_at is not None:
                now = self.stopped_at
            durations = dict(self.timeline.durations(now))
            table = Table.grid(padding=(0, 2))
            table.add_column(width=2)
            table.add_column()
            table.add_column(justify="right")
            table.add_column()
            current = self.timeline.current
            for phase in self.phases:
                if phase not in self.timeline.starts:
                    if phase == READY or current != READY:
                        table.add_row(Text("·", style="dim"), Text(phase, style="dim"), "", "")
                    continue
                finished = phase != current or phase == READY
                mark = Text("✓", style="green") if finished else Text("…", style="yellow")
                detail = ""
                if not finished and self.stopped_by is not None:
                    mark, detail = Text("✗", style="red"), self.stopped_by
                if phase == DOWNLOADING and self.timeline.download:
                    detail = " ".join(filter(None, [detail, progress_text(self.timeline.download)]))
                elapsed = "" if phase == READY else human_seconds(durations.get(phase))
                if phase == READY:
                    elapsed = human_seconds(self.timeline.starts[READY])
                table.add_row(mark, Text(phase, style="bold" if not finished else ""), elapsed, detail)
            from rich.console import Group

            notes = [Text(f"    {n.message}", style="yellow" if n.level == "warn" else "dim", overflow="ellipsis",
                          no_wrap=True) for n in self.notices]
            return Group(table, *notes)


def render_timeline(output: Output, timeline: Timeline) -> None:
    """The cold-start timeline: each phase's duration with a bar, and the total."""
    durations = timeline.durations()
    total = timeline.total_s or sum(s for _, s in durations) or 1.0
    width = 30
    rows = []
    for phase, seconds in durations:
        bar = "█" * max(1, round(width * seconds / total)) if seconds > 0 else ""
        rows.append((phase, human_seconds(seconds), bar))
    rows.append(("total (to Ready)", human_seconds(timeline.total_s), ""))
    output.table("cold-start timeline", ["phase", "time", ""], rows)

