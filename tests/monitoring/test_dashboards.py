"""Dashboards generated with grafana-foundation-sdk: panels, parseable queries, valid JSON model."""

from __future__ import annotations

import json

from llmctl.monitoring.dashboards import all_queries, dashboards, endpoint_dashboard
from llmctl.monitoring.rules import alert_rules
from tests.monitoring.conftest import rules_test_scope
from tests.monitoring.promql import check_parse, metric_names

EXPECTED_PANELS = {
    "Request rate by status",
    "Error ratio",
    "Tokens per second",
    "Request latency",
    "Time to first token",
    "Inter-token latency",
    "Requests: active, queued, running, waiting",
    "KV cache usage",
    "Model loaded",
    "Ready pods",
    "Pod restarts (1h)",
}
GPU_PANELS = {"GPU utilisation", "GPU memory used"}


def panels(board: dict) -> dict[str, dict]:
    return {p["title"]: p for p in board["panels"] if p["type"] != "row"}


def test_panels_per_issue_and_gpu_only_with_dcgm():
    assert set(panels(endpoint_dashboard(rules_test_scope(dcgm=False)))) == EXPECTED_PANELS
    assert set(panels(endpoint_dashboard(rules_test_scope(dcgm=True)))) == EXPECTED_PANELS | GPU_PANELS


def test_every_panel_has_queries_with_ref_ids_and_the_datasource():
    board = endpoint_dashboard(rules_test_scope())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for title, panel in panels(board).items():
        assert panel["targets"], title
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) and all(refs), title
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert all('job="vllm-demo"' in t["expr"] or "DCGM_" in t["expr"] for t in panel["targets"]), title


def test_dashboard_file_is_the_json_model():
    files = dashboards(rules_test_scope())
    assert list(files) == ["llmctl-demo.json"]
    board = json.loads(files["llmctl-demo.json"])
    assert board["uid"] == "llmctl-demo" and board["refresh"] == "30s"


def test_every_panel_query_and_alert_expression_parses(tmp_path, promtool):
    scope = rules_test_scope(dcgm=True)
    exprs = all_queries(scope) + [r.expr for r in alert_rules(scope)] + [r.signal for r in alert_rules(scope)]
    check_parse(promtool, exprs, tmp_path)


def test_gpu_queries_are_the_only_dcgm_metrics():
    with_gpu = set().union(*map(metric_names, all_queries(rules_test_scope(dcgm=True))))
    without = set().union(*map(metric_names, all_queries(rules_test_scope(dcgm=False))))
    assert with_gpu - without == {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"}


def test_metric_name_extraction():
    expr = 'histogram_quantile(0.95, sum by (le) (rate(a:b_bucket{job="x", le=~"1|2"}[5m]))) or vector(0) / up'
    assert metric_names(expr) == {"a:b_bucket", "up"}
