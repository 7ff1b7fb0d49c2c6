"""`llmctl bench`: run the load against a resolved endpoint, compute vLLM's metrics, cross-check, cost.

Which endpoint is `bench_target.py`'s to say. The run itself returns data; the CLI renders it.
"""

from __future__ import annotations

import asyncio
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmctl.actions.bench_target import ResolvedTarget
from llmctl.errors import ConfigError, LlmctlError


@dataclass
class BenchOptions:
    endpoint: str = "/v1/completions"
    num_prompts: int = 50
    concurrency: int | None = 4
    request_rate: float = math.inf
    burstiness: float = 1.0
    duration_s: float | None = None
    warmup: int = 1
    seed: int = 0
    input_len: int = 128
    output_len: int = 100
    range_ratio: float = 0.0
    ignore_eos: bool = True
    dataset: Path | None = None
    prompt: str | None = None
    tokenizer: str | None = None
    model: str | None = None
    temperature: float | None = None
    percentiles: list[float] = field(default_factory=lambda: [50.0, 90.0, 95.0, 99.0])
    slo: dict[str, float] = field(default_factory=dict)
    timeout_s: float = 300.0
    crosscheck: bool = True
    output_json: Path | None = None
    save_detailed: bool = False
    sweep: str | None = None  # rate | concurrency
    sweep_start: float | None = None
    sweep_factor: float = 2.0
    sweep_steps: int = 6
    bisect_steps: int = 3
    slo_attainment: float = 0.9
    html: bool = False
    instance_type: str | None = None
    hourly_price: float | None = None
    replicas: int | None = None


@dataclass
class Hooks:
    """Progress callbacks the CLI turns into a bar; all optional."""

    on_info: Callable[[str], None] = lambda msg: None
    on_run_start: Callable[[int | None, str], None] = lambda total, label: None
    on_result: Callable[[Any], None] = lambda result: None
    on_run_end: Callable[[], None] = lambda: None
    on_point: Callable[[Any], None] = lambda point: None


def validate(opts: BenchOptions) -> None:
    from llmctl.bench.client import ENDPOINTS

    if opts.endpoint not in ENDPOINTS:
        raise ConfigError(f"--endpoint {opts.endpoint!r} is not one of {', '.join(ENDPOINTS)}")
    if opts.dataset and opts.prompt:
        raise ConfigError("--dataset and --prompt are alternatives; give one")
    if opts.burstiness <= 0:
        raise ConfigError("--burstiness must be positive")
    if opts.sweep not in (None, "rate", "concurrency"):
        raise ConfigError(f"--sweep {opts.sweep!r} is not 'rate' or 'concurrency'")
    if opts.sweep == "rate" and not opts.sweep_start and math.isinf(opts.request_rate):
        raise ConfigError("--sweep rate needs a starting rate", hint="add --sweep-start 1 (req/s)")
    if opts.sweep_factor <= 1:
        raise ConfigError("--sweep-factor must be greater than 1")
    if not 0 < opts.slo_attainment <= 1:
        raise ConfigError("--slo-attainment must be in (0, 1]")


def build_dataset(opts: BenchOptions, tokenizer_path: str | None):
    from llmctl.bench import data

    tokenizer = data.load_tokenizer(opts.tokenizer or tokenizer_path)
    if opts.tokenizer and tokenizer is None:
        raise ConfigError(f"--tokenizer {opts.tokenizer}: no tokenizer.json there", hint="point it at a Hugging Face model folder")
    if opts.prompt:
        return data.fixed_dataset(opts.num_prompts, opts.prompt, opts.output_len, tokenizer), tokenizer
    if opts.dataset:
        return data.sharegpt_dataset(opts.dataset, opts.num_prompts, tokenizer=tokenizer, seed=opts.seed), tokenizer
    ds = data.random_dataset(
        opts.num_prompts, opts.input_len, opts.output_len, range_ratio=opts.range_ratio, tokenizer=tokenizer, seed=opts.seed
    )
    return ds, tokenizer


_UNREACHABLE_HINT = {
    "flag": "check --url: is a server listening there?",
    "local": "`llmctl local status` shows it; `llmctl local up` starts it",
    "cluster": "`llmctl status` shows the deployment; or pass --url",
}


_CERTIFICATE_HINT = {
    "flag": "name the host on the certificate with --tls-server-name (an NLB's address never is), or trust a "
            "private CA with SSL_CERT_FILE",
    "local": "the local endpoint is plain HTTP; is the recorded URL stale? (`llmctl local status`)",
    "cluster": "set deploy.tls.host_name to the DNS name on the certificate, or trust a private CA with SSL_CERT_FILE",
}


async def _probe(resolved: ResolvedTarget, tls) -> str | None:
    """Fail at once, in one line, when nothing answers at the URL (not after a table of failures);
    return the first model `/v1/models` lists (what vLLM's benchmark picks), or None."""
    import aiohttp

    from llmctl.bench.client import classify, request_options

    headers = {"Authorization": f"Bearer {resolved.api_key}"} if resolved.api_key else {}
    if resolved.host:
        headers["Host"] = resolved.host
    url = f"{resolved.base_url}/v1/models"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=10),
                                   **request_options(tls, url, headers)) as resp:
                if resp.status != 200:
                    return None
                body = await resp.json()
                return (body.get("data") or [{}])[0].get("id")
    except aiohttp.ClientConnectorCertificateError as exc:
        raise LlmctlError(f"{resolved.base_url} ({resolved.source}): its TLS certificate does not verify: "
                          f"{exc.certificate_error}", hint=_CERTIFICATE_HINT[resolved.source]) from None
    except (aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
        raise LlmctlError(f"cannot reach {resolved.base_url} ({resolved.source}): {classify(exc)}",
                          hint=_UNREACHABLE_HINT.get(resolved.source)) from None
    except (aiohttp.ClientError, ValueError, AttributeError, IndexError):
        return None


def _reference(model: str | None, instance_type: str | None) -> dict:
    """Whether the seed's targets grade this endpoint: only the setup they were measured on."""
    from llmctl import pricing
    from llmctl.bench.metrics import REFERENCE_SETUP, reference_applies

    gpu = pricing.INSTANCES[instance_type].gpu_model if instance_type in pricing.INSTANCES else None
    return {"setup": REFERENCE_SETUP, "model": model, "gpu": gpu, "applies": reference_applies(model, gpu)}


class _Scraper:
    """Scrapes `/metrics` before and after one run (no-op when disabled or unavailable)."""

    def __init__(self, base_url: str | None, enabled: bool, tls=None):
        self.base_url, self.enabled, self.before, self.tls = base_url, enabled and bool(base_url), None, tls
        self.asked = enabled

    async def start(self) -> None:
        if self.enabled:
            self.before = await self._get()

    async def _get(self) -> str | None:
        import aiohttp

        from llmctl.bench.crosscheck import scrape

        async with aiohttp.ClientSession() as session:
            return await scrape(session, self.base_url, tls=self.tls)

    async def finish(self, metrics: dict, endpoint: str) -> dict:
        from llmctl.bench.crosscheck import compare

        if not self.asked:
            return {"status": "disabled"}
        if not self.base_url:
            return {"status": "unavailable", "reason": "no metrics listener found (no ready pod's metrics port)"}
        after = await self._get() if self.before is not None else None
        if self.before is None or after is None:
            return {"status": "unavailable", "reason": f"{self.base_url}/metrics could not be read"}
        return {"status": "ok", **compare(self.before, after, metrics, endpoint).to_dict()}


async def _one_run(opts, target, requests, spec, hooks: Hooks, stop: asyncio.Event, label: str, count_tokens) -> tuple[dict, Any]:
    from llmctl.bench.load import run_load
    from llmctl.bench.metrics import REFERENCE_PERCENTILES, compute_metrics

    same_host = target.metrics_url == target.base_url
    scraper = _Scraper(target.metrics_url, opts.crosscheck, target.tls if same_host else None)
    hooks.on_run_start(None if spec.duration_s else len(requests), label)
    try:
        run = await run_load(requests, target, spec, on_result=hooks.on_result, stop=stop, on_start=scraper.start)
    finally:
        hooks.on_run_end()
    percentiles = sorted(set(opts.percentiles) | set(REFERENCE_PERCENTILES))
    metrics = compute_metrics(
        run.results, run.duration, percentiles=percentiles, slo=opts.slo, count_tokens=count_tokens,
        concurrency_limited=spec.concurrency is not None,
    )
    metrics["crosscheck"] = await scraper.finish(metrics, opts.endpoint)
    metrics["client_cpu_wait_s"], metrics["client_starved"] = run.cpu_wait_s, run.starved
    metrics["warmup_failed"] = sum(1 for r in run.warmup if not r.success)
    metrics["interrupted"] = run.interrupted
    return metrics, run


def run_bench(opts: BenchOptions, resolved: ResolvedTarget, hooks: Hooks | None = None) -> dict:
    """Run the benchmark (or the sweep); Ctrl-C stops it and the partial result is returned."""
    validate(opts)
    hooks = hooks or Hooks()
    dataset, tokenizer = build_dataset(opts, resolved.tokenizer_path)
    if dataset.note:
        hooks.on_info(dataset.note)
    return asyncio.run(_run(opts, resolved, dataset, tokenizer, hooks))


async def _run(opts: BenchOptions, resolved: ResolvedTarget, dataset, tokenizer, hooks: Hooks) -> dict:
    from llmctl.bench import cost as costs
    from llmctl.bench.client import Target, Tls
    from llmctl.bench.load import LoadSpec
    from llmctl.bench.metrics import reference_checks, result_document

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        handled = True
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
        handled = False
    try:
        tls = Tls(resolved.tls_server_name, resolved.tls_check_hostname)
        if resolved.base_url.startswith("https://") and not tls.context.check_hostname:
            hooks.on_info("TLS: the certificate chain is checked, not its name (set deploy.tls.host_name to the "
                          "DNS name on the certificate to check it too)")
        model = opts.model or resolved.model
        target = Target(
            resolved.base_url, opts.endpoint, resolved.api_key, model, opts.ignore_eos, opts.temperature, opts.timeout_s,
            tls=tls, metrics_url=resolved.metrics_url, host=resolved.host,
        )
        wake = await _wake(target, dataset.requests[0], resolved.zero) if resolved.zero else None
        resolved.zero = None  # awake now (a second run, as --compare makes, is not a wake)
        served = await _probe(resolved, tls)
        if model is None and opts.endpoint != "/generate":
            model = target.model = served
        count_tokens = tokenizer.count if tokenizer is not None else None
        base_spec = LoadSpec(opts.request_rate, opts.burstiness, opts.concurrency, opts.duration_s, opts.warmup, opts.seed)
        params = {
            "backend": "llmctl",
            "model_id": model,
            "tokenizer_id": opts.tokenizer or resolved.tokenizer_path,
            "num_prompts": opts.num_prompts,
            "request_rate": opts.request_rate,
            "burstiness": opts.burstiness,
            "max_concurrency": opts.concurrency,
            "url": resolved.base_url,
            "target_source": resolved.source,
            "endpoint": opts.endpoint,
            "dataset": dataset.kind,
            "exact_prompt_lengths": dataset.exact_lengths,
            "input_len": opts.input_len,
            "output_len": opts.output_len,
            "range_ratio": opts.range_ratio,
            "ignore_eos": opts.ignore_eos,
            "duration_limit_s": opts.duration_s,
            "warmup": opts.warmup,
            "seed": opts.seed,
            "percentiles": opts.percentiles,
            "slo": opts.slo,
        }
        sweep_doc = None
        if opts.sweep:
            sweep_doc, metrics, results = await _sweep(opts, target, dataset.requests, base_spec, hooks, stop, count_tokens)
            if sweep_doc.best is not None and opts.sweep == "rate":
                params["request_rate"] = sweep_doc.best
            elif sweep_doc.best is not None:
                params.update(max_concurrency=int(sweep_doc.best), request_rate=math.inf)
        else:
            metrics, run = await _one_run(opts, target, dataset.requests, base_spec, hooks, stop, "benchmark", count_tokens)
            results = run.results
        doc = result_document(metrics, results, params, detailed=opts.save_detailed)
        extras = doc["llmctl"]
        extras["dataset_note"] = dataset.note
        extras["reference"] = _reference(model or served, opts.instance_type or resolved.instance_type)
        extras["reference_checks"] = reference_checks(metrics) if extras["reference"]["applies"] else []
        extras["crosscheck"] = doc.pop("crosscheck")
        extras["client_cpu_wait_s"], extras["client_starved"] = doc.pop("client_cpu_wait_s"), doc.pop("client_starved")
        extras["warmup_failed"] = doc.pop("warmup_failed")
        extras["interrupted"] = doc.pop("interrupted") or stop.is_set()
        extras["errors_by_type"] = doc.pop("errors_by_type")
        extras["error_samples"] = _error_samples(results)
        estimate = costs.estimate(
            metrics["output_throughput"],
            replicas=opts.replicas or resolved.replicas,
            instance_type=opts.instance_type or resolved.instance_type,
            hourly_usd=opts.hourly_price,
            region=resolved.region,
            spot=resolved.spot,
        )
        extras["cost"] = estimate.to_dict() if estimate else None
        extras["wake"] = wake
        if sweep_doc is not None:
            extras["sweep"] = sweep_doc.to_dict()
        extras["files"] = _write_outputs(doc, sweep_doc, opts)
        return doc
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)


async def _wake(target, request, zero: dict) -> dict:
    """The first request to a scaled-to-zero endpoint, timed on its own: it waits for a replica to start (the
    interceptor holds it), so it is the wake time, kept out of the steady-state latencies."""
    from dataclasses import replace

    import aiohttp

    from llmctl.bench.client import send_request

    held = replace(target, timeout_s=target.timeout_s + (zero.get("hold_s") or 0))  # the interceptor's hold first
    async with aiohttp.ClientSession() as session:
        result = await send_request(session, held, request)
    if not result.success:
        raise LlmctlError(f"the request that wakes the scaled-to-zero endpoint failed: {result.error} "
                          f"{result.detail}".rstrip(), hint="`llmctl status` shows whether a replica started")
    return {"wake_s": round(result.latency, 3), "expected_s": zero["wake_s"], "expected_measured": zero["wake_measured"]}


def _error_samples(results) -> dict[str, str]:
    samples: dict[str, str] = {}
    for r in results:
        if not r.success and r.error not in samples:
            samples[r.error] = r.detail
    return samples


async def _sweep(opts, target, requests, base_spec, hooks: Hooks, stop, count_tokens):
    from dataclasses import replace

    from llmctl.bench.sweep import run_sweep

    kind = opts.sweep
    start = opts.sweep_start or (opts.request_rate if kind == "rate" else float(opts.concurrency or 1))
    runs: dict[float, tuple[dict, list]] = {}
    first = True

    async def measure(level: float) -> dict:
        nonlocal first
        if kind == "rate":
            spec = replace(base_spec, request_rate=level, warmup=base_spec.warmup if first else 0)
        else:
            spec = replace(base_spec, concurrency=int(level), request_rate=math.inf, warmup=base_spec.warmup if first else 0)
        first = False
        metrics, run = await _one_run(opts, target, requests, spec, hooks, stop, f"{kind} {level:g}", count_tokens)
        runs[level] = (metrics, run.results)
        return metrics

    result = await run_sweep(
        measure,
        kind=kind,
        start=start,
        factor=opts.sweep_factor,
        max_steps=opts.sweep_steps,
        bisect_steps=opts.bisect_steps,
        slo=opts.slo,
        min_attainment=opts.slo_attainment,
        on_point=hooks.on_point,
        should_stop=stop.is_set,
    )
    if not runs:
        raise LlmctlError("the sweep was interrupted before its first level finished")
    # The summary shows the best level's run, or the last one measured when none met the objective.
    metrics, results = runs.get(result.best) or runs[result.points[-1].level if result.points else next(reversed(runs))]
    return result, metrics, results


def _write_outputs(doc: dict, sweep_doc, opts: BenchOptions) -> list[str]:
    import json
    from datetime import datetime

    path = opts.output_json
    if path is None and sweep_doc is not None:
        path = Path(f"llmctl-bench-sweep-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json")
    if path is None:
        return []
    from llmctl.bench.sweep import write_html, write_plots

    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path]
    if sweep_doc is not None:
        pngs = write_plots(sweep_doc, path)
        written += pngs
        if opts.html:
            written.append(write_html(sweep_doc, pngs, path.with_suffix(".html")))
    doc["llmctl"]["files"] = [str(p) for p in written]
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return [str(p) for p in written]
