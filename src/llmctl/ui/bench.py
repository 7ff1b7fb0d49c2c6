"""How `llmctl bench` looks: a progress bar during the run, then the summary tables.

The summary follows `vllm bench serve`'s printout, with a column comparing each figure to the
reference architecture's target (pass/fail) only when the endpoint is the setup those targets
were measured on, then the error breakdown, the server cross-check (and a warning when client and
server TTFT are more than 2x apart), the cost and, for a sweep, one row per level.
"""

from __future__ import annotations

from typing import Any

from llmctl.ui.console import Output


class BenchProgress:
    """Hooks for `actions.bench.run_bench`: one bar per run, on stderr, only on a terminal."""

    def __init__(self, output: Output):
        self.output = output
        self._progress = None
        self._task = None

    def info(self, message: str) -> None:
        self.output.warn(message) if "approximated" in message else self.output.info(message)

    def run_start(self, total: int | None, label: str) -> None:
        if not self.output.interactive:
            self.output.info(f"{label}: {total if total is not None else 'timed'} requests")
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(), console=self.output.err, transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=total, failed=0)

    def result(self, result: Any) -> None:
        if self._progress is not None:
            task = self._progress.tasks[0]
            self._progress.update(self._task, advance=1, failed=task.fields["failed"] + (0 if result.success else 1))

    def run_end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def point(self, point: Any) -> None:
        m = point.metrics
        self.output.step(
            "pass" if point.meets else "fail",
            f"{point.phase} {point.level:g}: {m.get('request_throughput', 0):.2f} req/s, "
            f"median TTFT {m.get('median_ttft_ms', 0):.1f} ms, {point.attainment:.0%} good",
        )


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and not unit:
        text = f"{int(value):,}"  # counts read from Prometheus come back as floats
    elif isinstance(value, float):
        text = f"{value:,.2f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text} {unit}".strip()


def _pkey(p: float) -> str:
    return str(int(p)) if int(p) == p else str(p)


def render_summary(output: Output, doc: dict) -> None:
    extras = doc.get("llmctl", {})
    checks = {c["key"]: c for c in extras.get("reference_checks", [])}
    reference = extras.get("reference") or {}
    percentiles = extras.get("percentiles") or [50, 90, 95, 99]
    no_tpot = not doc.get("tpot_requests")

    def row(label: str, key: str, unit: str = "") -> tuple:
        check = checks.get(key)
        value = None if no_tpot and key.endswith("_tpot_ms") else doc.get(key)
        return (label, _fmt(value, unit), check["target"] if check else "", check["status"] if check else "")

    wake = extras.get("wake")
    expected = wake and f"{'the last deploy measured' if wake['expected_measured'] else 'assumed'} {wake['expected_s']} s"
    rows = [("Wake from zero (first request, not counted below)", f"{_fmt(wake['wake_s'], 's')} ({expected})", "", "")
            ] if wake else []
    rows += [
        ("Successful requests", _fmt(doc.get("completed")), "", ""),
        ("Failed requests", _fmt(doc.get("failed")), "", ""),
        ("Maximum request concurrency", _fmt(doc.get("max_concurrency")), "", ""),
        ("Request rate configured", _fmt(doc.get("request_rate"), "req/s"), "", ""),
        ("Benchmark duration", _fmt(doc.get("duration"), "s"), "", ""),
        ("Client waiting for a CPU", _cpu_wait(doc), "", ""),
        ("Total input tokens", _fmt(doc.get("total_input_tokens")), "", ""),
        ("Total generated tokens", _fmt(doc.get("total_output_tokens")), "", ""),
        row("Request throughput", "request_throughput", "req/s"),
    ]
    if doc.get("request_goodput") is not None:
        rows.append(("Request goodput", _fmt(doc["request_goodput"], "req/s"), ", ".join(f"{k}<={v:g}ms" for k, v in (extras.get("slo") or {}).items()), ""))
    rows += [
        ("Output token throughput", _fmt(doc.get("output_throughput"), "tok/s"), "", ""),
        ("Peak output token throughput", _fmt(doc.get("max_output_tokens_per_s"), "tok/s"), "", ""),
        ("Peak concurrent requests", _fmt(doc.get("max_concurrent_requests")), "", ""),
        ("Total token throughput", _fmt(doc.get("total_token_throughput"), "tok/s"), "", ""),
    ]
    for name, label in (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2el", "E2E latency")):
        rows.append(row(f"Mean {label}", f"mean_{name}_ms", "ms"))
        rows.append(row(f"Median {label}", f"median_{name}_ms", "ms"))
        for p in sorted(set(percentiles) | ({95.0} if name == "e2el" else set())):
            if p != 50:
                rows.append(row(f"P{_pkey(p)} {label}", f"p{_pkey(p)}_{name}_ms", "ms"))
        if name == "tpot":
            rows.append(row("Tokens/s per request", "per_request_tokens_per_s", "tok/s"))
            rows.append(("TPOT from (2+ reads)", f"{doc.get('tpot_requests') or 0} of {doc.get('completed') or 0} requests",
                         "", ""))
    title = "Serving benchmark" + (" (interrupted: partial results)" if extras.get("interrupted") else "")
    if reference.get("applies"):
        output.table(title, ["figure", "value", f"reference ({reference['setup']})", "status"], rows,
                     status_column="status")
    else:
        output.table(title, ["figure", "value"], [r[:2] for r in rows])
        if reference:
            served = reference.get("model") or "an unnamed model"
            gpu = f"a {reference['gpu']}" if reference.get("gpu") else "an unknown GPU (--instance-type names it)"
            output.print(f"Reference targets ({reference['setup']}) not shown: this endpoint serves {served} on {gpu}.")
    if no_tpot and doc.get("completed"):
        output.warn("no request streamed its tokens in two or more reads, so TPOT and tokens/s per request "
                    f"cannot be measured: {_one_read_cause(doc)}")
    elif extras.get("client_starved") and not _ttft_says_starved(extras.get("crosscheck") or {}):
        output.warn(f"{_starved(doc)}: it read the streams late, so its latencies overstate the server's; {_STARVED_FIX}")

    errors = extras.get("errors_by_type") or {}
    if errors:
        samples = extras.get("error_samples") or {}
        output.table("Failed requests by error", ["error", "count", "example"], [(k, v, samples.get(k, "")[:80]) for k, v in errors.items()])
    _render_crosscheck(output, doc, extras.get("crosscheck") or {})
    cost = extras.get("cost")
    if cost and cost.get("usd_per_million_output_tokens") is not None:
        output.print(
            f"Cost: ${cost['usd_per_million_output_tokens']:,.2f} per million output tokens "
            f"({cost['replicas']} x {cost['instance_type'] or 'node'} at ${cost['hourly_usd']:.3f}/h, "
            f"{cost['output_throughput_per_replica']:.1f} tok/s per replica; {cost['source']})"
        )
    if extras.get("sweep"):
        _render_sweep(output, extras["sweep"])
    if extras.get("dataset_note"):
        output.print(f"Prompts: {extras['dataset_note']}")
    for path in extras.get("files") or []:
        output.print(f"Wrote {path}")


def _render_crosscheck(output: Output, doc: dict, check: dict) -> None:
    if check.get("status") != "ok":
        if check.get("status") == "unavailable":
            output.print(f"Server cross-check: {check.get('reason')}")
        return

    def hist(h: dict | None, key: str) -> str:
        return _fmt(h.get(key), "ms") if h else "-"

    ttft, latency, queue = check.get("server_ttft"), check.get("server_latency"), check.get("server_queue_time")
    rows = [
        ("Completed requests", _fmt(doc.get("completed")), _fmt(check.get("server_completed"))),
        ("Output tokens", _fmt(doc.get("total_output_tokens")), _fmt(check.get("server_output_tokens"))),
        ("Prompt tokens", _fmt(doc.get("total_input_tokens")), _fmt(check.get("server_prompt_tokens"))),
        ("Mean TTFT", _fmt(doc.get("mean_ttft_ms"), "ms"), hist(ttft, "mean_ms")),
        ("Median TTFT (server: histogram estimate)", _fmt(doc.get("median_ttft_ms"), "ms"), hist(ttft, "median_ms")),
        ("Mean E2E latency", _fmt(doc.get("mean_e2el_ms"), "ms"), hist(latency, "mean_ms")),
        ("Mean queue time (client: for a concurrency slot; server: in vLLM)", _fmt(doc.get("mean_client_queue_time_ms"), "ms"), hist(queue, "mean_ms")),
    ]
    output.table("Client vs server (/metrics)", ["figure", "client", "server"], rows)
    for line in check.get("disagreements") or []:
        output.warn(f"client and server disagree: {line}")
    ratio = check.get("ttft_ratio")
    if _ttft_says_starved(check):
        output.warn(f"the client's mean TTFT is {ratio:.1f}x the server's: the client is starved (it reads the "
                    f"streams late, so its latencies overstate the server's); {_STARVED_FIX}")
    elif check.get("ttft_disagrees"):
        output.warn(f"the client's mean TTFT is {ratio:.2f}x the server's (more than 2x apart): "
                    "is /metrics this endpoint's?")


def _ttft_says_starved(check: dict) -> bool:
    return bool(check.get("status") == "ok" and check.get("ttft_disagrees") and check["ttft_ratio"] > 1)


def _render_sweep(output: Output, sweep: dict) -> None:
    rows = [
        (
            _fmt(p["level"]), p["phase"], _fmt(p["request_throughput"]), _fmt(p["output_throughput"]),
            _fmt(p["median_ttft_ms"]), _fmt(p["p99_ttft_ms"]), _fmt(p["median_e2el_ms"]), _fmt(p["queue_ms"]),
            f"{p['attainment']:.0%}", "pass" if p["meets"] else "fail",
        )
        for p in sorted(sweep["points"], key=lambda p: p["level"])
    ]
    kind = sweep["kind"]
    output.table(
        f"Sweep by {kind}",
        [kind, "phase", "req/s", "out tok/s", "TTFT p50 ms", "TTFT p99 ms", "E2EL p50 ms", "queue ms", "good", "status"],
        rows,
        status_column="status",
    )
    best = "none met it" if sweep["best"] is None else f"{sweep['best']:g}"
    saturated = "" if sweep["saturated_at"] is None else f"; over-saturated at {sweep['saturated_at']:g}"
    output.print(f"Objective: {sweep['objective']}. Highest {kind} meeting it: {best}{saturated}.")


def render_compare(output: Output, doc: dict) -> None:
    """`bench --compare`: both runs side by side, then the ratios (second / first)."""
    c = doc["compare"]
    first, second = c["models"]
    rows = [(label, _fmt(c["runs"][first][key]), _fmt(c["runs"][second][key]), _fmt(c["ratios"][key]))
            for label, key in (("TTFT p50 ms", "median_ttft_ms"), ("TPOT p50 ms", "median_tpot_ms"),
                               ("E2EL p50 ms", "median_e2el_ms"), ("output tok/s", "output_throughput"),
                               ("$ per 1M output tokens", "usd_per_million_output_tokens"))]
    output.table(f"{second} against {first}", ["", first, second, "ratio"], rows)
    output.print(c["note"])
    for name in c["models"]:
        run = doc["llmctl"]["runs"][name]
        if name in c.get("tpot_unmeasured", []):
            output.warn(f"{name}: no request streamed its tokens in two or more reads, so its TPOT and the TPOT ratio "
                        f"cannot be measured: {_one_read_cause(run)}")
        elif c["runs"][name].get("client_starved"):
            output.warn(f"{name}: {_starved(run)}: it read the streams late, so its latencies and the ratios "
                        f"overstate the server's; {_STARVED_FIX}")


_STARVED_FIX = ("send fewer concurrent requests (--concurrency) or run the benchmark on a less loaded or separate "
                "machine")


def _cpu_wait(doc: dict) -> str:
    wait, duration = doc.get("llmctl", {}).get("client_cpu_wait_s"), doc.get("duration")
    if wait is None:
        return "unknown (the kernel does not say)"
    return f"{wait:.2f} s ({wait / duration:.0%} of the run)" if duration else f"{wait:.2f} s"


def _starved(doc: dict) -> str:
    return f"the bench client waited {_cpu_wait(doc)} for a CPU"


def _one_read_cause(doc: dict) -> str:
    """Why a run's streams each came in one read, from what the client measured of itself."""
    starved = doc.get("llmctl", {}).get("client_starved")
    if starved:
        return f"{_starved(doc)}, so it read each stream late (its lateness, not the server's pace); {_STARVED_FIX}"
    if starved is False:
        return (f"the bench client had its CPU (waited {_cpu_wait(doc)}), so something between the engine and it "
                "delivers each response in one piece (a buffering proxy, or a server that writes it at once)")
    return "the client read each stream late (it is starved, or a proxy buffers)"
