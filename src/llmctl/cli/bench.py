"""`llmctl bench`: load-test the endpoint with vLLM-compatible metrics (thin: options -> action -> ui)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from llmctl.cli.context import OutputOption, get_app
from llmctl.errors import EXIT_INTERRUPTED

Opt = typer.Option


def register(app: typer.Typer) -> None:
    app.command(
        "bench",
        help="Benchmark the endpoint (--url, else the local one, else the deployed one): "
        "TTFT, TPOT, ITL, latency percentiles, throughput, goodput; --sweep finds the SLO's edge.",
    )(bench)


def bench(
    ctx: typer.Context,
    url: Annotated[Optional[str], Opt("--url", help="Base URL (default: `llmctl local up`'s endpoint, else the deployed one).")] = None,
    api_key: Annotated[Optional[str], Opt("--api-key", envvar="LLMCTL_API_KEY", help="Bearer key (default: the endpoint's).")] = None,
    metrics_url: Annotated[Optional[str], Opt("--metrics-url", help="With --url: where the server's /metrics is (default: the --url itself; llmctl's server listens on METRICS_PORT).")] = None,
    tls_server_name: Annotated[Optional[str], Opt("--tls-server-name", help="With an https --url: the name on its certificate, sent as SNI and Host (e.g. an NLB's address, benched as your domain).")] = None,
    endpoint: Annotated[Optional[str], Opt("--endpoint", help="/generate, /v1/completions or /v1/chat/completions.")] = None,
    num_prompts: Annotated[Optional[int], Opt("--num-prompts", "-n", min=1, help="Requests to send.")] = None,
    concurrency: Annotated[Optional[int], Opt("--concurrency", min=1, help="Most requests in flight.")] = None,
    request_rate: Annotated[Optional[float], Opt("--request-rate", min=0.0, help="Poisson arrivals per second (default: as fast as concurrency allows).")] = None,
    burstiness: Annotated[float, Opt("--burstiness", help="Gamma shape of the arrivals: 1 Poisson, <1 burstier, >1 steadier.")] = 1.0,
    duration: Annotated[Optional[float], Opt("--duration", min=0.1, help="Stop sending after this many seconds (prompts reused).")] = None,
    warmup: Annotated[int, Opt("--warmup", min=0, help="Warm-up requests, not counted.")] = 1,
    seed: Annotated[int, Opt("--seed", help="Seed for prompts and arrivals.")] = 0,
    input_len: Annotated[Optional[int], Opt("--input-len", min=1, help="Random prompt length in tokens.")] = None,
    output_len: Annotated[Optional[int], Opt("--output-len", min=1, help="max_tokens per request.")] = None,
    range_ratio: Annotated[float, Opt("--range-ratio", min=0.0, max=0.99, help="Lengths vary uniformly by +-this fraction.")] = 0.0,
    ignore_eos: Annotated[bool, Opt("--ignore-eos/--no-ignore-eos", help="Generate exactly --output-len tokens.")] = True,
    dataset: Annotated[Optional[Path], Opt("--dataset", help="ShareGPT-format JSON file of conversations.")] = None,
    prompt: Annotated[Optional[str], Opt("--prompt", help="Send this fixed prompt every time.")] = None,
    tokenizer: Annotated[Optional[str], Opt("--tokenizer", help="Local model folder whose tokenizer gives exact prompt lengths.")] = None,
    model: Annotated[Optional[str], Opt("--model", help="Model name for the OpenAI endpoints (default: the first in /v1/models).")] = None,
    temperature: Annotated[Optional[float], Opt("--temperature", help="Sampling temperature (default: the server's).")] = None,
    percentiles: Annotated[Optional[str], Opt("--percentiles", help="Comma-separated, e.g. 50,90,95,99.")] = None,
    slo: Annotated[Optional[str], Opt("--slo", help="Goodput SLO, e.g. ttft:200,tpot:60,e2el:2300 (ms).")] = None,
    timeout: Annotated[float, Opt("--timeout", min=0.1, help="Seconds before one request counts as a timeout.")] = 300.0,
    crosscheck: Annotated[bool, Opt("--crosscheck/--no-crosscheck", help="Compare with the server's /metrics.")] = True,
    output_json: Annotated[Optional[Path], Opt("--output-json", help="Write vLLM-compatible result JSON here.")] = None,
    save_detailed: Annotated[bool, Opt("--save-detailed", help="Per-request lists in the JSON (ttfts, itls, ...).")] = False,
    sweep: Annotated[Optional[str], Opt("--sweep", help="Sweep 'rate' or 'concurrency' upward, then bisect for the SLO.")] = None,
    sweep_start: Annotated[Optional[float], Opt("--sweep-start", help="First sweep level (req/s or concurrency).")] = None,
    sweep_factor: Annotated[float, Opt("--sweep-factor", help="Multiply the level by this each step.")] = 2.0,
    sweep_steps: Annotated[int, Opt("--sweep-steps", min=1, help="Most rising steps.")] = 6,
    bisect_steps: Annotated[int, Opt("--bisect-steps", min=0, help="Bisection runs after the rise.")] = 3,
    slo_attainment: Annotated[float, Opt("--slo-attainment", help="Share of requests that must meet the SLO.")] = 0.9,
    html: Annotated[bool, Opt("--html", help="With --sweep: also write an HTML report beside the JSON.")] = False,
    instance_type: Annotated[Optional[str], Opt("--instance-type", help="Price the run as this EC2 type.")] = None,
    hourly_price: Annotated[Optional[float], Opt("--hourly-price", min=0.0, help="$/hour of one replica's node.")] = None,
    replicas: Annotated[Optional[int], Opt("--replicas", min=1, help="Replicas serving the endpoint (for cost).")] = None,
    compare: Annotated[Optional[str], Opt("--compare", help="base,NAME: the base model and an adapter in one run, with ratios.")] = None,
    output: OutputOption = None,
) -> None:
    from llmctl.actions.bench import BenchOptions, Hooks, run_bench
    from llmctl.actions.bench_target import resolve_target
    from llmctl.bench.metrics import parse_slo
    from llmctl.errors import ConfigError, LlmctlError
    from llmctl.ui.bench import BenchProgress, render_summary

    app = get_app(ctx, output)
    try:
        cfg = app.config.bench
    except LlmctlError:
        if url is None:
            raise
        from llmctl.config.model import BenchConfig

        cfg = BenchConfig()
    try:
        slo_ms = parse_slo(slo) if slo else {k: v for k, v in (("ttft", cfg.slo_ttft_ms), ("tpot", cfg.slo_tpot_ms)) if v}
        pcts = [float(p) for p in percentiles.split(",") if p.strip()] if percentiles else list(cfg.percentiles)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="--slo ttft:200,tpot:60 --percentiles 50,90,99") from None
    if any(not 0 < p < 100 for p in pcts):
        raise ConfigError("--percentiles must be between 0 and 100")
    rate = request_rate if request_rate is not None else cfg.request_rate
    opts = BenchOptions(
        endpoint=endpoint or cfg.endpoint,
        num_prompts=num_prompts or cfg.num_prompts,
        concurrency=concurrency or cfg.concurrency,
        request_rate=math.inf if not rate else rate,
        burstiness=burstiness,
        duration_s=duration,
        warmup=warmup,
        seed=seed,
        input_len=input_len or cfg.input_len,
        output_len=output_len or cfg.output_len,
        range_ratio=range_ratio,
        ignore_eos=ignore_eos,
        dataset=dataset,
        prompt=prompt,
        tokenizer=tokenizer,
        model=model,
        temperature=temperature,
        percentiles=pcts,
        slo=slo_ms,
        timeout_s=timeout,
        crosscheck=crosscheck,
        output_json=output_json,
        save_detailed=save_detailed,
        sweep=sweep,
        sweep_start=sweep_start,
        sweep_factor=sweep_factor,
        sweep_steps=sweep_steps,
        bisect_steps=bisect_steps,
        slo_attainment=slo_attainment,
        html=html,
        instance_type=instance_type,
        hourly_price=hourly_price,
        replicas=replicas,
    )
    target = resolve_target(
        url, api_key, local=None if url else app.state.get("local"),
        config_loader=lambda: app.config, names_loader=lambda: app.names, kube_factory=app.kube,
        metrics_url=metrics_url, tls_server_name=tls_server_name, cold_start_s=app.state.get("cold_start_s"),
    )
    if target.zero:
        app.output.warn(f"{app.names.namespace}/{app.names.app} is scaled to zero: the first request wakes it (about "
                        f"{target.zero['wake_s']} s); its time is the wake time, kept apart from the steady-state figures")
    app.output.info(f"benchmarking {target.base_url}{opts.endpoint} ({target.source})")
    progress = BenchProgress(app.output)
    hooks = Hooks(on_info=progress.info, on_run_start=progress.run_start, on_result=progress.result,
                  on_run_end=progress.run_end, on_point=progress.point)
    try:
        if compare:
            from llmctl.actions.bench_compare import run_compare
            from llmctl.ui.bench import render_compare

            doc = run_compare(opts, target, hooks, compare)
        else:
            doc = run_bench(opts, target, hooks)
    finally:
        target.close()
    app.output.result(doc, lambda d: render_compare(app.output, d) if compare else render_summary(app.output, d))
    if doc["llmctl"].get("interrupted"):
        raise typer.Exit(EXIT_INTERRUPTED)
    if not doc.get("completed"):
        raise typer.Exit(1)
