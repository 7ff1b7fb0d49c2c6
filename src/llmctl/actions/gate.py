"""The promotion gate: judge a new revision on its own answers and speed before it gets traffic.

Stages, in order, stopping after the first that fails: readiness (`/ready` answers 200), a smoke
request (a short completion), the golden prompts of `deploy.gate.prompts` (every one is run and
reported, so one rollout shows all the regressions), then the optional short bench (llmctl's own,
`actions.bench`) judged against `deploy.gate.slo`. A `json_schema` golden asks for the answer with
`response_format: json_schema`, so the server's structured output produces it, and then validates
what came back: the gate checks the server, it does not trust it.

`gate_pod` reaches one pod directly through a port-forward (as `kubectl port-forward pod/...`),
never through the Service: the new revision has no traffic yet.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmctl.config.gate import Golden
from llmctl.errors import LlmctlError

SMOKE_PROMPT = "Hello"
# What the gate keeps of its bench: recorded on the revision, and the next revision's baseline.
BENCH_KEYS = ("completed", "failed", "duration", "request_throughput", "output_throughput", "median_ttft_ms",
              "p95_ttft_ms", "median_tpot_ms", "p95_tpot_ms", "tpot_requests")


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    detail: str
    seconds: float
    skipped: bool = False  # not judged (e.g. no baseline to compare with); counts as passed

    @property
    def status(self) -> str:
        return "skip" if self.skipped else "pass" if self.passed else "fail"

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "passed": self.passed, "detail": self.detail,
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class GateReport:
    checks: tuple[GateCheck, ...]
    bench: dict | None = None  # the short bench's figures (BENCH_KEYS + error_rate), when it ran

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        return tuple(check for check in self.checks if not check.passed)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checks": [check.to_dict() for check in self.checks], "bench": self.bench}


@dataclass
class _Run:
    """The checks so far; `on_check` sees each as it is decided (the CLI's progress lines)."""

    on_check: Callable[[GateCheck], None]
    checks: list[GateCheck] = field(default_factory=list)
    bench: dict | None = None

    def add(self, check: GateCheck) -> bool:
        self.checks.append(check)
        self.on_check(check)
        return check.passed

    def report(self) -> GateReport:
        return GateReport(tuple(self.checks), self.bench)


def run_gate(base_url: str, *, api_key: str | None, model: str, gate, baseline: dict | None = None,
             on_check: Callable[[GateCheck], None] | None = None) -> GateReport:
    """Judge the server at `base_url` by `gate` (a `config.gate.GateConfig`); `baseline`: the serving
    revision's recorded bench (`GateReport.bench`), for `slo.min_throughput_ratio`."""
    run = _Run(on_check or (lambda check: None))
    if not gate.enabled:
        run.add(GateCheck("gate", True, "disabled (deploy.gate.enabled: false)", 0.0, skipped=True))
        return run.report()
    http = _Http(base_url.rstrip("/"), api_key, gate.request_timeout_s)
    if not run.add(_readiness(http, gate.ready_timeout_s)) or not run.add(_smoke(http, model)):
        return run.report()
    golden_results = [run.add(_golden(http, model, golden)) for golden in gate.goldens]
    if not all(golden_results) or gate.bench_requests == 0:
        return run.report()
    _bench(run, base_url, api_key, model, gate, baseline)
    return run.report()


def gate_pod(kube, namespace: str, pod: str, port: int, *, api_key: str | None, model: str, gate,
             baseline: dict | None = None, on_check: Callable[[GateCheck], None] | None = None) -> GateReport:
    """`run_gate` on one pod, reached through a port-forward to its `port` (not through the Service)."""
    from llmctl.k8s.portforward import PortForward

    started = time.monotonic()
    forward = PortForward(kube, namespace, pod, port)
    try:
        forward.start()
    except LlmctlError as exc:
        check = GateCheck("port-forward", False, f"to {namespace}/{pod}:{port}: {exc.message}", time.monotonic() - started)
        (on_check or (lambda c: None))(check)
        return GateReport((check,))
    try:
        return run_gate(forward.url, api_key=api_key, model=model, gate=gate, baseline=baseline, on_check=on_check)
    finally:
        forward.stop()


# --- the stages -------------------------------------------------------------------------------------


@dataclass
class _Http:
    base_url: str
    api_key: str | None
    timeout_s: float

    def call(self, method: str, path: str, body: dict | None = None, timeout_s: float | None = None) -> tuple[int, Any]:
        """(status, parsed JSON or text); status 0 when nothing answered (the reason as the body)."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s) as response:
                return response.status, _parsed(response.read())
        except urllib.error.HTTPError as err:
            return err.code, _parsed(err.read())
        except (OSError, ValueError) as exc:
            return 0, f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"


def _parsed(raw: bytes) -> Any:
    text = raw.decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _error_text(status: int, body: Any) -> str:
    """The server's own words: OpenAI-style `{"error": {"message"}}`, FastAPI's `detail`, or the text."""
    message = body
    if isinstance(body, dict):
        error = body.get("error")
        message = (error.get("message") if isinstance(error, dict) else error) or body.get("detail") or body
    said = str(message)[:200]
    return f"HTTP {status}: {said}" if status else f"no answer ({said})"


def _readiness(http: _Http, timeout_s: float) -> GateCheck:
    started = time.monotonic()
    while True:
        status, body = http.call("GET", "/ready", timeout_s=min(10.0, timeout_s))
        waited = time.monotonic() - started
        if status == 200:
            return GateCheck("readiness", True, f"/ready 200 after {waited:.1f} s", waited)
        if waited >= timeout_s:
            return GateCheck("readiness", False, f"/ready not 200 after {timeout_s:g} s: {_error_text(status, body)}",
                             waited)
        time.sleep(min(0.5, max(0.0, timeout_s - waited)))


def _smoke(http: _Http, model: str) -> GateCheck:
    started = time.monotonic()
    status, body = http.call("POST", "/v1/completions", {"model": model, "prompt": SMOKE_PROMPT, "max_tokens": 4})
    seconds = time.monotonic() - started
    if status != 200:
        return GateCheck("smoke request", False, f"POST /v1/completions: {_error_text(status, body)}", seconds)
    try:
        text = body["choices"][0]["text"]
        tokens = body["usage"]["completion_tokens"]
    except (KeyError, IndexError, TypeError):
        return GateCheck("smoke request", False, f"not a completion: {str(body)[:200]}", seconds)
    if not isinstance(text, str) or not tokens:
        return GateCheck("smoke request", False, f"no tokens generated ({body['usage']})", seconds)
    return GateCheck("smoke request", True, f"{tokens} token(s) in {seconds:.2f} s", seconds)


def _golden(http: _Http, model: str, golden: Golden) -> GateCheck:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": golden.prompt}],
                            "max_tokens": golden.max_tokens, "temperature": 0}
    if golden.kind == "json_schema":
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "golden", "schema": golden.expected, "strict": True}}
    started = time.monotonic()
    status, reply = http.call("POST", "/v1/chat/completions", body)
    seconds = time.monotonic() - started
    name = golden.name
    if status != 200:
        return GateCheck(name, False, f"POST /v1/chat/completions: {_error_text(status, reply)}", seconds)
    try:
        choice = reply["choices"][0]
        answer = choice["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return GateCheck(name, False, f"not a chat completion: {str(reply)[:200]}", seconds)
    problem = _judge(golden, answer)
    if problem and choice.get("finish_reason") == "length":
        problem += f" (the answer was cut at max_tokens {golden.max_tokens})"
    return GateCheck(name, problem is None, problem or f"{golden.kind} matched: {_shown(answer)}", seconds)


def _judge(golden: Golden, answer: str) -> str | None:
    """Why `answer` fails `golden`, or None."""
    if golden.kind == "expect":
        return None if golden.expected in answer else f"answer {_shown(answer)} lacks {golden.expected!r}"
    if golden.kind == "regex":
        return None if re.search(golden.expected, answer) else f"answer {_shown(answer)} does not match /{golden.expected}/"
    import jsonschema

    try:
        document = json.loads(answer)
    except ValueError as exc:
        return f"answer {_shown(answer)} is not JSON ({exc})"
    try:
        jsonschema.validate(document, golden.expected)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(top)"
        return f"answer {_shown(answer)} breaks the schema at {where}: {exc.message}"
    return None


def _shown(answer: str, width: int = 80) -> str:
    return repr(answer if len(answer) <= width else answer[:width] + "...")


def _bench(run: _Run, base_url: str, api_key: str | None, model: str, gate, baseline: dict | None) -> None:
    """The short bench through llmctl's own bench code, then one check per configured SLO."""
    from llmctl.actions.bench import BenchOptions, run_bench
    from llmctl.actions.bench_target import ResolvedTarget

    opts = BenchOptions(num_prompts=gate.bench_requests, concurrency=gate.bench_concurrency,
                        duration_s=gate.bench_seconds, input_len=gate.bench_input_len,
                        output_len=gate.bench_output_len, model=model, timeout_s=gate.request_timeout_s,
                        crosscheck=False)
    started = time.monotonic()
    try:
        doc = run_bench(opts, ResolvedTarget(base_url, api_key, "gate", model=model))
    except LlmctlError as exc:
        run.add(GateCheck("bench", False, exc.message, time.monotonic() - started))
        return
    seconds = time.monotonic() - started
    figures = {key: doc.get(key) for key in BENCH_KEYS}
    total = (figures["completed"] or 0) + (figures["failed"] or 0)
    figures["error_rate"] = (figures["failed"] or 0) / total if total else 1.0
    figures.update(input_len=gate.bench_input_len, output_len=gate.bench_output_len,
                   concurrency=gate.bench_concurrency, errors_by_type=doc["llmctl"].get("errors_by_type", {}))
    run.bench = figures
    summary = (f"{figures['completed']} of {total} requests in {figures['duration']:.1f} s, "
               f"{figures['output_throughput']:.1f} output tok/s")
    if not run.add(GateCheck("bench", bool(figures["completed"]), summary, seconds)):
        return
    for check in _slo_checks(gate.slo, figures, baseline):
        run.add(check)


def _slo_checks(slo, figures: dict, baseline: dict | None) -> list[GateCheck]:
    checks = []
    for name, key, limit in (("p95 TTFT", "p95_ttft_ms", slo.p95_ttft_s), ("p95 TPOT", "p95_tpot_ms", slo.p95_tpot_s)):
        if limit is None:
            continue
        if key == "p95_tpot_ms" and not figures["tpot_requests"]:
            checks.append(GateCheck(f"slo {name}", False, "cannot be measured: no request streamed its tokens in "
                                    "2 or more reads", 0.0))
            continue
        measured = figures[key] / 1000.0
        checks.append(GateCheck(f"slo {name}", measured <= limit, f"{measured:.3f} s (limit {limit:g} s)", 0.0))
    if slo.max_error_rate is not None:
        rate = figures["error_rate"]
        errors = ", ".join(f"{kind} x{count}" for kind, count in figures["errors_by_type"].items())
        checks.append(GateCheck("slo error rate", rate <= slo.max_error_rate,
                                f"{rate:.1%} (limit {slo.max_error_rate:.1%}){': ' + errors if errors else ''}", 0.0))
    if slo.min_throughput_ratio is not None:
        before = (baseline or {}).get("output_throughput")
        if not before:
            checks.append(GateCheck("slo throughput ratio", True, "skipped: the serving revision has no recorded "
                                    "bench to compare with", 0.0, skipped=True))
        else:
            ratio = figures["output_throughput"] / before
            checks.append(GateCheck("slo throughput ratio", ratio >= slo.min_throughput_ratio,
                                    f"{ratio:.2f}x of {before:.1f} tok/s (minimum {slo.min_throughput_ratio:g}x)", 0.0))
    return checks
