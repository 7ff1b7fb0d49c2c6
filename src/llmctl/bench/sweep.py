"""`--sweep`: raise the load until the server over-saturates, then bisect for the SLO's edge.

A sweep measures one full run per level (request rate, or concurrency), rising geometrically
from `start`. It stops rising when the server is over-saturated (median TTFT at least twice the
first level's and the queue growing), when the SLO fails, or after `max_steps`. Then it bisects
between the highest level that met the SLO and the lowest that did not.

A level meets the SLO when at least `attainment` of the requests sent were good (completed
within every `--slo` bound, vLLM's goodput definition). Without an SLO a rate sweep's objective
is "sustained": no failures and achieved throughput at least 90% of the offered rate.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

SUSTAINED_FRACTION = 0.9
SATURATION_TTFT_FACTOR = 2.0


@dataclass
class SweepPoint:
    level: float
    metrics: dict
    meets: bool
    attainment: float
    phase: str  # ramp | bisect

    def row(self) -> dict:
        m = self.metrics
        return {
            "level": self.level,
            "phase": self.phase,
            "meets": self.meets,
            "attainment": self.attainment,
            "request_throughput": m.get("request_throughput"),
            "output_throughput": m.get("output_throughput"),
            "median_ttft_ms": m.get("median_ttft_ms"),
            "p99_ttft_ms": m.get("p99_ttft_ms"),
            "median_tpot_ms": m.get("median_tpot_ms"),
            "median_e2el_ms": m.get("median_e2el_ms"),
            "p99_e2el_ms": m.get("p99_e2el_ms"),
            "queue_ms": queue_ms(m),
            "failed": m.get("failed"),
        }


@dataclass
class SweepResult:
    kind: str  # rate | concurrency
    points: list[SweepPoint] = field(default_factory=list)
    saturated_at: float | None = None
    best: float | None = None  # highest level meeting the objective
    objective: str = ""

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "objective": self.objective,
            "saturated_at": self.saturated_at,
            "best": self.best,
            "points": [p.row() for p in self.points],
        }


def queue_ms(metrics: dict) -> float | None:
    """The run's queueing signal: the server's queue time when scraped, else the client's wait."""
    server = (metrics.get("crosscheck") or {}).get("server_queue_time") or {}
    if server.get("mean_ms") is not None:
        return server["mean_ms"]
    return metrics.get("mean_client_queue_time_ms")


def attainment(metrics: dict, slo: dict[str, float] | None, offered_rate: float | None, min_attainment: float) -> tuple[bool, float]:
    """(meets the objective, fraction of the requests sent that were good)."""
    sent = (metrics.get("completed") or 0) + (metrics.get("failed") or 0)
    if not sent:
        return False, 0.0
    if slo:
        share = round((metrics.get("request_goodput") or 0.0) * metrics["duration"]) / sent
        return share >= min_attainment, share
    ok = metrics.get("failed", 0) == 0
    if offered_rate is not None and not math.isinf(offered_rate):
        ok = ok and metrics.get("request_throughput", 0.0) >= SUSTAINED_FRACTION * offered_rate
    return ok, (metrics.get("completed") or 0) / sent


def is_saturated(points: list[SweepPoint]) -> bool:
    """TTFT and queue both trending up: TTFT doubled since the first level and queue still rising."""
    if len(points) < 2:
        return False
    first, prev, last = points[0].metrics, points[-2].metrics, points[-1].metrics
    ttft_up = last.get("median_ttft_ms", 0.0) >= SATURATION_TTFT_FACTOR * max(first.get("median_ttft_ms", 0.0), 1e-6)
    q_prev, q_last = queue_ms(prev), queue_ms(last)
    if q_prev is None or q_last is None:  # no queue signal: throughput falling behind the offered load
        offered = points[-1].level
        queue_up = points[-1].metrics.get("request_throughput", 0.0) < SUSTAINED_FRACTION * offered
    else:
        queue_up = q_last > q_prev
    return ttft_up and queue_up


async def run_sweep(
    measure: Callable[[float], Awaitable[dict]],
    *,
    kind: str,
    start: float,
    factor: float = 2.0,
    max_steps: int = 6,
    bisect_steps: int = 3,
    slo: dict[str, float] | None = None,
    min_attainment: float = 0.9,
    on_point: Callable[[SweepPoint], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SweepResult:
    if kind not in ("rate", "concurrency"):
        raise ValueError(f"sweep kind {kind!r} is not rate or concurrency")
    result = SweepResult(kind)
    result.objective = (
        f"at least {min_attainment:.0%} of requests within " + ", ".join(f"{k} {v:g} ms" for k, v in slo.items())
        if slo
        else "no failures and throughput >= 90% of the offered rate"
    )
    can_bisect = bool(slo) or kind == "rate"

    async def point(level: float, phase: str) -> SweepPoint:
        metrics = await measure(level)
        meets, share = attainment(metrics, slo, level if kind == "rate" else None, min_attainment)
        p = SweepPoint(level, metrics, meets, share, phase)
        result.points.append(p)
        if on_point is not None:
            on_point(p)
        return p

    level = start
    ramp: list[SweepPoint] = []
    for _ in range(max_steps):
        if should_stop():
            return result
        p = await point(level, "ramp")
        ramp.append(p)
        if is_saturated(ramp):
            result.saturated_at = level
            break
        if can_bisect and not p.meets:
            break
        level = _next(level, factor, kind)

    passing = [p.level for p in ramp if p.meets]
    if not can_bisect or not passing:
        result.best = max(passing) if passing and can_bisect else None
        return result
    lo = max(passing)
    failing = [p.level for p in ramp if not p.meets and p.level > lo]
    if not failing:
        result.best = lo
        return result
    hi = min(failing)
    for _ in range(bisect_steps):
        if should_stop():
            break
        if kind == "concurrency":
            if hi - lo <= 1:
                break
            mid = float((int(lo) + int(hi)) // 2)
        else:
            mid = (lo + hi) / 2
        p = await point(mid, "bisect")
        lo, hi = (mid, hi) if p.meets else (lo, mid)
    result.best = lo
    return result


def _next(level: float, factor: float, kind: str) -> float:
    if kind == "concurrency":
        return float(max(int(level) + 1, int(round(level * factor))))
    return level * factor


def write_plots(result: SweepResult, json_path: Path) -> list[Path]:
    """PNG plots beside the JSON: latency percentiles vs throughput, TTFT vs load level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(result.points, key=lambda p: p.level)
    if not points:
        return []
    stem = json_path.with_suffix("")
    written = []
    label = "request rate (req/s)" if result.kind == "rate" else "concurrency"

    fig, ax = plt.subplots(figsize=(7, 4.5))
    throughput = [p.metrics.get("output_throughput", 0.0) for p in points]
    for key, name in (("median_e2el_ms", "P50"), ("p90_e2el_ms", "P90"), ("p99_e2el_ms", "P99")):
        values = [p.metrics.get(key) for p in points]
        if all(v is not None for v in values):
            ax.plot(throughput, values, marker="o", label=f"{name} E2E latency")
    written.append(_save(plt, fig, ax, "output throughput (tok/s)", "latency (ms)",
                         "Latency percentiles vs throughput", Path(f"{stem}.latency_vs_throughput.png")))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    levels = [p.level for p in points]
    ax.plot(levels, [p.metrics.get("median_ttft_ms", 0.0) for p in points], marker="o", label="median TTFT")
    if all("p99_ttft_ms" in p.metrics for p in points):
        ax.plot(levels, [p.metrics["p99_ttft_ms"] for p in points], marker="s", label="P99 TTFT")
    if result.best is not None:
        ax.axvline(result.best, color="green", linestyle="--", label=f"best {result.best:g}")
    if result.saturated_at is not None:
        ax.axvline(result.saturated_at, color="red", linestyle=":", label=f"saturated {result.saturated_at:g}")
    written.append(_save(plt, fig, ax, label, "TTFT (ms)", f"TTFT vs {label}",
                         Path(f"{stem}.ttft_vs_{result.kind}.png")))
    return written


def _save(plt, fig, ax, xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    """Label, grid and legend one plot the same way as the others, and write it as a PNG."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_html(result: SweepResult, pngs: list[Path], path: Path) -> Path:
    """A self-contained HTML report: the sweep table and the plots inlined."""
    import base64
    import html

    rows = [p.row() for p in sorted(result.points, key=lambda p: p.level)]
    columns = list(rows[0]) if rows else []

    def cell(v) -> str:
        return f"{v:.2f}" if isinstance(v, float) else html.escape(str(v))

    table = "".join("<tr>" + "".join(f"<td>{cell(r[c])}</td>" for c in columns) + "</tr>" for r in rows)
    images = "".join(
        f'<img alt="{html.escape(p.name)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">' for p in pngs
    )
    best = "none" if result.best is None else f"{result.best:g}"
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>llmctl bench sweep</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>llmctl bench sweep ({html.escape(result.kind)})</h1>"
        f"<p>Objective: {html.escape(result.objective)}. Best {html.escape(result.kind)}: <b>{best}</b>. "
        f"Over-saturated at: {'-' if result.saturated_at is None else f'{result.saturated_at:g}'}.</p>"
        f"<table><tr>{''.join(f'<th>{html.escape(c)}</th>' for c in columns)}</tr>{table}</table>{images}</body></html>"
    )
    path.write_text(body)
    return path
