"""The alert rules: one definition, rendered both as a Prometheus rule file and a PrometheusRule.

Each rule is a `signal` (a query that always has a value while the endpoint is scraped) compared
with a threshold from the config. Tests evaluate the signals against a real Prometheus, so a
rule whose metric name is wrong cannot pass as "not firing".
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.monitoring.target import Scope

GROUP_NAME = "llmctl-endpoint"


@dataclass(frozen=True)
class AlertRule:
    name: str
    signal: str
    condition: str
    duration: str
    severity: str
    summary: str
    description: str

    @property
    def expr(self) -> str:
        # Parenthesised: comparisons bind tighter than `or`, and some signals end in `or vector(0)`.
        return f"({self.signal}) {self.condition}"


def serves_adapters(cfg) -> bool:
    """LoRA on: the per-adapter alert and panels have series (vllm_lora_adapter_loaded, the `model` label)."""
    return bool(cfg.server.enable_lora or cfg.model.adapters)


def alert_rules(scope: Scope) -> list[AlertRule]:
    t = scope.target
    mon = scope.cfg.monitoring
    s = t.sel
    rules = [
        AlertRule(
            "LlmctlEndpointDown",
            f'sum(up{{{s}, pod_ready="true"}}) or vector(0)',
            "< 1",
            "5m",
            "critical",
            f"No ready pod of {t.job} answers",
            "No pod of the endpoint is both Ready and scrapeable: requests fail.",
        ),
        AlertRule(
            "LlmctlModelNotLoaded",
            f"vllm_model_loaded{{{s}}}",
            "< 1",
            "10m",
            "critical",
            "Model not loaded on {{ $labels.instance }}",
            "The pod has run for 10 minutes without a loaded model (download or engine start stuck).",
        ),
        AlertRule(
            "LlmctlHighErrorRatio",
            f'(sum(rate(vllm_requests_total{{{t.error_sel}}}[5m])) or vector(0))'
            f" / sum(rate(vllm_requests_total{{{s}}}[5m]))",
            "> 0.05",
            "5m",
            "critical",
            f"More than 5% of {t.job} requests fail",
            "Error ratio is {{ $value | humanizePercentage }} over the last 5 minutes.",
        ),
        AlertRule(
            "LlmctlLatencyP95AboveSLO",
            f"histogram_quantile(0.95, sum by (le) (rate(vllm_request_latency_seconds_bucket{{{s}}}[5m])))",
            f"> {mon.slo_p95_latency_s:g}",
            "10m",
            "warning",
            f"p95 request latency of {t.job} above {mon.slo_p95_latency_s:g}s",
            "p95 latency is {{ $value | humanizeDuration }}.",
        ),
        AlertRule(
            "LlmctlTTFTP95AboveSLO",
            f"histogram_quantile(0.95, sum by (le) (rate(vllm_time_to_first_token_seconds_bucket{{{s}}}[5m])))",
            f"> {mon.slo_p95_ttft_s:g}",
            "10m",
            "warning",
            f"p95 time to first token of {t.job} above {mon.slo_p95_ttft_s:g}s",
            "p95 TTFT is {{ $value | humanizeDuration }}.",
        ),
        AlertRule(
            "LlmctlQueueBuilding",
            f"vllm:num_requests_waiting{{{s}}}",
            f"> {mon.queue_alert_threshold}",
            "5m",
            "warning",
            "Requests queue up on {{ $labels.instance }}",
            "{{ $value }} requests wait for the engine: add replicas or lower the load.",
        ),
        AlertRule(
            "LlmctlKVCacheNearlyFull",
            f"vllm:kv_cache_usage_perc{{{s}}}",
            "> 0.95",
            "5m",
            "warning",
            "KV cache almost full on {{ $labels.instance }}",
            "KV cache usage is {{ $value | humanizePercentage }}: requests get preempted.",
        ),
        AlertRule(
            "LlmctlPodRestarted",
            f"changes(process_start_time_seconds{{{s}}}[15m])",
            "> 0",
            "0m",
            "warning",
            "Server process on {{ $labels.instance }} restarted",
            "The server process restarted {{ $value }} times in 15 minutes (crash or OOM kill).",
        ),
    ]
    if serves_adapters(scope.cfg):
        rules.append(AlertRule(
            "LlmctlAdapterMissing",
            f"vllm_lora_adapter_loaded{{{s}}}",
            "< 1",
            "5m",
            "critical",
            "Adapter {{ $labels.adapter }} missing on {{ $labels.instance }}",
            "The replica was started to serve LoRA adapter {{ $labels.adapter }} but does not: requests naming it get 404.",
        ))
    if t.dcgm:
        # vLLM reserves gpu_memory_utilization of the card up front; alert only beyond that.
        limit = min(0.99, round(scope.cfg.server.gpu_memory_utilization + 0.03, 2))
        g = t.gpu_sel
        rules.append(
            AlertRule(
                "LlmctlGpuMemoryHigh",
                f"DCGM_FI_DEV_FB_USED{{{g}}} / (DCGM_FI_DEV_FB_USED{{{g}}} + DCGM_FI_DEV_FB_FREE{{{g}}})",
                f"> {limit:g}",
                "5m",
                "warning",
                "GPU memory of {{ $labels.pod }} nearly exhausted",
                "GPU frame buffer is {{ $value | humanizePercentage }} used: CUDA out-of-memory is close.",
            )
        )
    return rules


def rule_groups(scope: Scope) -> list[dict]:
    """The `groups` list shared by the rule file and the PrometheusRule spec."""
    deployment = scope.target.deployment
    rules = [
        {
            "alert": r.name,
            "expr": r.expr,
            "for": r.duration,
            "labels": {"severity": r.severity, "llmctl_deployment": deployment},
            "annotations": {"summary": r.summary, "description": r.description},
        }
        for r in alert_rules(scope)
    ]
    return [{"name": GROUP_NAME, "rules": rules}]


def rule_file(scope: Scope) -> dict:
    """A Prometheus rule file (`promtool check rules` format)."""
    return {"groups": rule_groups(scope)}
