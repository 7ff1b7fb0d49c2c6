"""Grafana dashboards, generated with grafana-foundation-sdk (never hand-edited JSON).

Queries use Grafana's `$__rate_interval`; everything else is plain PromQL over the series the
server exposes (the tests scrape a real server and check every metric name).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from llmctl.monitoring.rules import serves_adapters
from llmctl.monitoring.target import Scope

DATASOURCE_UID = "prometheus"  # the provisioned datasource; kube-prometheus-stack uses it too
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # or "stat"
    description: str = ""


def _quantiles(metric: str, sel: str) -> tuple[Query, ...]:
    return tuple(
        Query(f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{sel}}}[{RATE}])))", f"p{int(q * 100)}")
        for q in (0.5, 0.95, 0.99)
    )


def _adapter_panels(s: str) -> list[PanelSpec]:
    """Per adapter (the `model` label: the base's served name or the adapter's), and what each replica has loaded."""
    return [
        PanelSpec("Requests per adapter", "reqps",
                  (Query(f'sum by (model) (rate(vllm_requests_total{{{s}, model!=""}}[{RATE}]))', "{{model}}"),)),
        PanelSpec("Generated tokens per adapter", "short",
                  (Query(f"sum by (model) (rate(vllm_tokens_generated_total{{{s}}}[{RATE}]))", "{{model}}"),)),
        PanelSpec("TTFT p95 per adapter", "s", (Query(
            f"histogram_quantile(0.95, sum by (le, model) (rate(vllm_time_to_first_token_seconds_bucket{{{s}}}[{RATE}])))",
            "{{model}}"),)),
        PanelSpec("Adapters loaded per replica", "short",
                  (Query(f"vllm_lora_adapter_loaded{{{s}}}", "{{adapter}} on {{instance}}"),),
                  description="1 where the replica serves the adapter; 0 where it should and does not (alerted)."),
    ]


def panel_rows(scope: Scope) -> list[tuple[str, list[PanelSpec]]]:
    """The dashboard as data: (row title, panels) in display order."""
    t = scope.target
    s = t.sel
    rows = [
        (
            "Traffic",
            [
                PanelSpec(
                    "Request rate by status",
                    "reqps",
                    (Query(f"sum by (status) (rate(vllm_requests_total{{{s}}}[{RATE}]))", "{{status}}"),),
                ),
                PanelSpec(
                    "Error ratio",
                    "percentunit",
                    (
                        Query(
                            f'(sum(rate(vllm_requests_total{{{t.error_sel}}}[{RATE}])) or vector(0))'
                            f" / sum(rate(vllm_requests_total{{{s}}}[{RATE}]))",
                            "errors",
                        ),
                    ),
                ),
                PanelSpec(
                    "Tokens per second",
                    "short",
                    (
                        Query(f"sum(rate(vllm_tokens_generated_total{{{s}}}[{RATE}]))", "generated"),
                        Query(f"sum(rate(vllm_prompt_tokens_total{{{s}}}[{RATE}]))", "prompt"),
                    ),
                ),
            ],
        ),
        (
            "Latency",
            [
                PanelSpec("Request latency", "s", _quantiles("vllm_request_latency_seconds", s)),
                PanelSpec("Time to first token", "s", _quantiles("vllm_time_to_first_token_seconds", s)),
                PanelSpec("Inter-token latency", "s", _quantiles("vllm:inter_token_latency_seconds", s)),
            ],
        ),
        (
            "Engine",
            [
                PanelSpec(
                    "Requests: active, queued, running, waiting",
                    "short",
                    (
                        Query(f"sum(vllm_active_requests{{{s}}})", "active (server)"),
                        Query(f"sum(vllm_queued_requests{{{s}}})", "queued (server)"),
                        Query(f"sum(vllm:num_requests_running{{{s}}})", "running (engine)"),
                        Query(f"sum(vllm:num_requests_waiting{{{s}}})", "waiting (engine)"),
                    ),
                ),
                PanelSpec(
                    "KV cache usage",
                    "percentunit",
                    (Query(f"max by (instance) (vllm:kv_cache_usage_perc{{{s}}})", "{{instance}}"),),
                ),
            ],
        ),
        (
            "Health",
            [
                PanelSpec(
                    "Model loaded",
                    "short",
                    (Query(f"min(vllm_model_loaded{{{s}}})", "loaded"),),
                    kind="stat",
                    description="1 when every scraped pod has its model loaded.",
                ),
                PanelSpec(
                    "Ready pods",
                    "short",
                    (Query(f'sum(up{{{s}, pod_ready="true"}}) or vector(0)', "ready"),),
                    kind="stat",
                ),
                PanelSpec(
                    "Pod restarts (1h)",
                    "short",
                    (Query(f"sum(changes(process_start_time_seconds{{{s}}}[1h]))", "restarts"),),
                    kind="stat",
                    description="Server process restarts: crashes and OOM kills.",
                ),
            ],
        ),
    ]
    if serves_adapters(scope.cfg):
        rows.append(("LoRA adapters", _adapter_panels(s)))
    if t.dcgm:
        g = t.gpu_sel
        rows.append(
            (
                "GPU (DCGM)",
                [
                    PanelSpec("GPU utilisation", "percent", (Query(f"DCGM_FI_DEV_GPU_UTIL{{{g}}}", "{{pod}} gpu {{gpu}}"),)),
                    PanelSpec(
                        "GPU memory used",
                        "percentunit",
                        (
                            Query(
                                f"DCGM_FI_DEV_FB_USED{{{g}}} / (DCGM_FI_DEV_FB_USED{{{g}}} + DCGM_FI_DEV_FB_FREE{{{g}}})",
                                "{{pod}} gpu {{gpu}}",
                            ),
                        ),
                    ),
                ],
            )
        )
    return rows


def all_queries(scope: Scope) -> list[str]:
    return [q.expr for _, panels in panel_rows(scope) for p in panels for q in p.queries]


def endpoint_dashboard(scope: Scope) -> dict:
    """The Grafana dashboard JSON model for one deployment."""
    from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

    t = scope.target
    datasource = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
    board = (
        dashboard.Dashboard(f"llmctl {t.deployment}: vLLM endpoint")
        .uid(dashboard_uid(scope))
        .tags(["llmctl", "vllm"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
    )
    panel_id = 0
    for row_title, panels in panel_rows(scope):
        panel_id += 1
        board = board.with_row(dashboard.Row(row_title).id(panel_id))
        for spec in panels:
            panel_id += 1
            builder = stat.Panel() if spec.kind == "stat" else timeseries.Panel()
            builder = builder.id(panel_id).title(spec.title).unit(spec.unit).datasource(datasource)
            builder = builder.span(24 // len(panels)).height(4 if spec.kind == "stat" else 8)
            if spec.description:
                builder = builder.description(spec.description)
            for ref, query in zip("ABCDEFGH", spec.queries):
                builder = builder.with_target(
                    prometheus.Dataquery().ref_id(ref).expr(query.expr).legend_format(query.legend).datasource(datasource)
                )
            board = board.with_panel(builder)
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def dashboard_uid(scope: Scope) -> str:
    return f"llmctl-{scope.target.deployment}"


def dashboards(scope: Scope) -> dict[str, str]:
    """File name -> dashboard JSON text, for ConfigMaps and Grafana provisioning."""
    return {f"{dashboard_uid(scope)}.json": json.dumps(endpoint_dashboard(scope), indent=2, sort_keys=True)}
