"""The gate against the real server (the session's `live_server`: vLLM CPU engine, tiny random-weight model),
reached as a deploy reaches a new pod: through the Kubernetes double's port-forward to the pod's port."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from llmctl.actions.gate import gate_pod
from llmctl.config.gate import GateConfig
from llmctl.k8s.client import Kube

pytestmark = pytest.mark.engine

NS = "vllm"
POD = "vllm-tiny-new"
# Enums: constrained JSON from random weights closes in a few tokens (free strings never would).
SCHEMA = {"type": "object", "properties": {"mood": {"enum": ["happy", "sad"]}, "level": {"enum": [1, 2, 3]}},
          "required": ["mood", "level"], "additionalProperties": False}


@pytest.fixture
def new_pod(kube, live_server):
    """A running pod whose port 8000 is the live server; a `Kube` for the double."""
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD, "namespace": NS, "labels": {"app": POD}},
                 "spec": {"containers": [{"name": "vllm", "image": "vllm@sha256:1",
                                          "ports": [{"name": "http", "containerPort": 8000}]}]}})
    kube.wait_for(lambda: ((kube.get("v1", "Pod", POD, NS) or {}).get("status") or {}).get("phase") == "Running")
    kube.expose(POD, 8000, ("127.0.0.1", urlsplit(live_server.url).port))
    return Kube.from_kubeconfig(str(kube.kubeconfig_path))


def gate_with(tmp_path, lines: list[dict], **fields) -> GateConfig:
    (tmp_path / "goldens.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return GateConfig.model_validate({"prompts": "goldens.jsonl", **fields}, context={"config_dir": tmp_path})


def judge(new_pod, live_server, gate, baseline=None):
    return gate_pod(new_pod, NS, POD, 8000, api_key=live_server.api_key, model=live_server.model_name, gate=gate,
                    baseline=baseline)


def test_golden_prompts_pass_and_fail_for_real(new_pod, live_server, tmp_path):
    # greedy decoding is deterministic: what the model says to this prompt is a substring it will say again
    said = live_server.openai().chat.completions.create(
        model=live_server.model_name, messages=[{"role": "user", "content": "Tell me a story"}], max_tokens=12,
        temperature=0).choices[0].message.content
    assert said.strip(), said
    gate = gate_with(tmp_path, [
        {"prompt": "How do you feel? Answer in JSON.", "json_schema": SCHEMA},
        {"prompt": "Tell me a story", "expect": said.strip()[:6], "max_tokens": 12},
        {"prompt": "What is the invoice number?", "regex": r"^INV-\d{12}$", "max_tokens": 16},
        {"prompt": "Tell me a story", "expect": "THIS IS NOT WHAT A RANDOM MODEL SAYS", "max_tokens": 12},
    ])
    report = judge(new_pod, live_server, gate)
    assert [(c.name, c.status) for c in report.checks] == [
        ("readiness", "pass"), ("smoke request", "pass"), ("golden line 1", "pass"), ("golden line 2", "pass"),
        ("golden line 3", "fail"), ("golden line 4", "fail")], report.to_dict()
    assert not report.passed
    answer = json.loads(report.checks[2].detail.removeprefix("json_schema matched: ")[1:-1])
    assert answer["mood"] in ("happy", "sad") and answer["level"] in (1, 2, 3)
    assert r"does not match /^INV-\d{12}$/" in report.checks[4].detail
    assert "lacks 'THIS IS NOT WHAT A RANDOM MODEL SAYS'" in report.checks[5].detail


def test_the_bench_is_judged_on_the_slos_and_its_figures_are_the_next_baseline(new_pod, live_server, tmp_path):
    lines = [{"prompt": "How do you feel? Answer in JSON.", "json_schema": SCHEMA}]
    bench = {"bench_requests": 4, "bench_concurrency": 2, "bench_input_len": 16, "bench_output_len": 8}
    first = judge(new_pod, live_server, gate_with(tmp_path, lines, **bench, slo={
        "p95_ttft_s": 60, "max_error_rate": 0, "min_throughput_ratio": 0.5}))
    assert [(c.name, c.status) for c in first.checks][3:] == [
        ("bench", "pass"), ("slo p95 TTFT", "pass"), ("slo error rate", "pass"), ("slo throughput ratio", "skip")
    ], first.to_dict()
    assert first.passed
    assert first.bench["completed"] == 4 and first.bench["failed"] == 0 and first.bench["error_rate"] == 0
    assert first.bench["output_throughput"] > 0 and first.bench["p95_ttft_ms"] > 0
    # A revision ten times faster served before, and a TTFT no server meets: the gate fails on both.
    baseline = {**first.bench, "output_throughput": first.bench["output_throughput"] * 10}
    second = judge(new_pod, live_server, gate_with(tmp_path, lines, **bench, slo={
        "p95_ttft_s": 1e-6, "max_error_rate": 0, "min_throughput_ratio": 0.5}), baseline=baseline)
    verdicts = {c.name: c for c in second.checks}
    assert not second.passed and [c.name for c in second.failures] == ["slo p95 TTFT", "slo throughput ratio"]
    assert "(limit 1e-06 s)" in verdicts["slo p95 TTFT"].detail
    assert "(minimum 0.5x)" in verdicts["slo throughput ratio"].detail and verdicts["slo error rate"].passed
    json.dumps(second.to_dict())
