"""`llmctl bench --compare base,NAME`: the base model and a LoRA adapter in one run, same prompts and load,
one after the other against the same engine, and what serving through the adapter costs (ratios).

`base` stands for the endpoint's base model (the `/v1/models` entry without a parent). Each side's cost
per 1M output tokens is its own throughput priced as `bench` prices one run.

A side whose requests each reached the client in one read has no TPOT (`tpot_requests` 0; on a loaded
machine, a client starved of CPU: see load.py). Its TPOT is null rather than vLLM's 0 for an empty list,
which made the ratio 0 ("the adapter costs nothing per token"); the ratio is null and `tpot_unmeasured`
names the side.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import replace

from llmctl.actions.bench import BenchOptions, Hooks, run_bench
from llmctl.actions.bench_target import ResolvedTarget
from llmctl.errors import ConfigError

KEYS = ("median_ttft_ms", "median_tpot_ms", "median_e2el_ms", "output_throughput")


def parse(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if len(names) != 2 or names[0] == names[1]:
        raise ConfigError(f"--compare {spec!r} must name two models", hint="e.g. --compare base,sql")
    return names


def base_model(target: ResolvedTarget) -> str:
    """The endpoint's base model: the /v1/models entry without a parent."""
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    request = urllib.request.Request(f"{target.base_url}/v1/models", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            models = json.loads(response.read()).get("data", [])
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--compare base: cannot list {target.base_url}/v1/models ({exc})",
                          hint="name the base model instead of `base`") from None
    base = next((m["id"] for m in models if not m.get("parent")), None)
    if base is None:
        raise ConfigError(f"--compare base: {target.base_url}/v1/models lists no base model")
    return base


def _ratio(a, b) -> float | None:
    return round(b / a, 4) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else None


def _side(doc: dict) -> dict:
    """One run's row of the comparison (its TPOT null when no request streamed in two reads or more)."""
    side = {k: doc.get(k) for k in KEYS}
    if not doc.get("tpot_requests"):
        side["median_tpot_ms"] = None
    return {**side, "tpot_requests": doc.get("tpot_requests") or 0, "completed": doc.get("completed"),
            "failed": doc.get("failed"), "client_starved": doc["llmctl"].get("client_starved"),
            "usd_per_million_output_tokens": (doc["llmctl"].get("cost") or {}).get("usd_per_million_output_tokens")}


def run_compare(opts: BenchOptions, target: ResolvedTarget, hooks: Hooks, spec: str) -> dict:
    if opts.sweep or opts.endpoint == "/generate":
        raise ConfigError("--compare needs an OpenAI endpoint and no --sweep",
                          hint="--endpoint /v1/completions (the model field names the adapter)")
    names = [base_model(target) if n == "base" else n for n in parse(spec)]
    runs = {}
    for name in names:
        hooks.on_info(f"--compare: {name}")
        runs[name] = run_bench(replace(opts, model=name, output_json=None), target, hooks)
    summary = {name: _side(doc) for name, doc in runs.items()}
    first, second = (summary[n] for n in names)
    ratios = {k: _ratio(first[k], second[k]) for k in (*KEYS, "usd_per_million_output_tokens")}
    return {"compare": {"models": names, "runs": summary, "ratios": ratios,
                        "tpot_unmeasured": [n for n in names if not summary[n]["tpot_requests"]],
                        "note": f"ratios are {names[1]} / {names[0]}: above 1 for latency and cost is what the adapter adds"},
            "completed": min(s["completed"] or 0 for s in summary.values()),
            "llmctl": {"interrupted": any(d["llmctl"].get("interrupted") for d in runs.values()),
                       "runs": runs}}
