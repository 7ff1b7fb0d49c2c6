"""Our metrics equal vLLM's own `calculate_metrics` on the same request records (vLLM 0.32)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from llmctl.bench.client import RequestResult
from llmctl.bench.metrics import compute_metrics

VLLM_SIDE = r"""
import json, sys
from vllm.benchmarks.lib.endpoint_request_func import RequestFuncOutput
from vllm.benchmarks.serve import calculate_metrics
records, dur, pcts, slo = json.load(sys.stdin)
outs = [RequestFuncOutput(**r) for r in records]
m, lens = calculate_metrics([], outs, dur, None, pcts, slo)
result = {k: getattr(m, k) for k in vars(m) if not k.startswith("percentiles_")}
for name in ("ttft", "tpot", "itl", "e2el"):
    for p, v in getattr(m, f"percentiles_{name}_ms"):
        result[f"p{int(p) if int(p) == p else p}_{name}_ms"] = v
sys.stdout.write("RESULT" + json.dumps({"metrics": result, "lens": lens}))
"""


def _records(n: int = 60) -> list[RequestResult]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        if i % 9 == 4:
            out.append(RequestResult(success=False, error="HTTP 500", start_time=rng.uniform(0, 3)))
            continue
        chunks = rng.randint(1, 12)
        itl = [rng.uniform(0.005, 0.08) for _ in range(chunks - 1)]
        ttft = rng.uniform(0.02, 0.4)
        out.append(RequestResult(
            success=True, start_time=rng.uniform(0, 3), ttft=ttft, itl=itl, latency=ttft + sum(itl),
            output_tokens=chunks * rng.randint(1, 3) if i % 5 else chunks, prompt_len=rng.randint(5, 50),
        ))
    return out


def test_same_numbers_as_vllm_calculate_metrics():
    pytest.importorskip("vllm")
    results, duration, pcts, slo = _records(), 4.2, [50.0, 90.0, 99.0, 99.9], {"ttft": 200.0, "tpot": 40.0}
    ours = compute_metrics(results, duration, percentiles=pcts, slo=slo)
    payload = [
        [{"success": r.success, "ttft": r.ttft, "itl": r.itl, "latency": r.latency, "output_tokens": r.output_tokens,
          "prompt_len": r.prompt_len, "start_time": r.start_time, "error": r.error} for r in results],
        duration, pcts, slo,
    ]
    done = subprocess.run(
        [sys.executable, "-c", VLLM_SIDE], input=json.dumps(payload), capture_output=True, text=True, timeout=280,
        env={**os.environ, "VLLM_TARGET_DEVICE": "cpu"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = json.loads(done.stdout.split("RESULT", 1)[1])
    assert ours["output_lens"] == theirs["lens"]
    renamed = {"total_input": "total_input_tokens", "total_output": "total_output_tokens"}
    compared = 0
    for key, value in theirs["metrics"].items():
        key = renamed.get(key, key)
        if key == "rtfx":
            continue
        assert ours[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
        compared += 1
    assert compared >= 30
