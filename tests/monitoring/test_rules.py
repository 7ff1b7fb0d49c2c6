"""The alert rules pass `promtool check rules` and every rule's firing / not-firing test cases."""

from __future__ import annotations

import shutil

import yaml

from llmctl.monitoring.rules import alert_rules, rule_file
from tests.monitoring.conftest import HERE, rules_test_scope, run_tool


def write_rules(tmp_path, scope) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_file(scope), sort_keys=False))
    shutil.copy(HERE / "rules_test.yaml", tmp_path / "rules_test.yaml")


def test_rule_file_passes_promtool_check(tmp_path, promtool):
    write_rules(tmp_path, rules_test_scope())
    result = run_tool(promtool, "check", "rules", str(tmp_path / "rules.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_promtool_rule_unit_tests_pass(tmp_path, promtool):
    write_rules(tmp_path, rules_test_scope())
    result = run_tool(promtool, "test", "rules", str(tmp_path / "rules_test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_has_a_firing_and_a_not_firing_case():
    cases = yaml.safe_load((HERE / "rules_test.yaml").read_text())["tests"]
    firing, quiet = set(), set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule.name for rule in alert_rules(rules_test_scope())}
    assert firing == names
    assert quiet == names


def test_thresholds_come_from_config():
    scope = rules_test_scope(slo_p95_latency_s=7.5, slo_p95_ttft_s=0.25, queue_alert_threshold=3)
    exprs = {rule.name: rule.expr for rule in alert_rules(scope)}
    assert exprs["LlmctlLatencyP95AboveSLO"].endswith("> 7.5")
    assert exprs["LlmctlTTFTP95AboveSLO"].endswith("> 0.25")
    assert exprs["LlmctlQueueBuilding"] == '(vllm:num_requests_waiting{job="vllm-demo"}) > 3'


def test_gpu_rule_only_with_dcgm():
    names = {rule.name for rule in alert_rules(rules_test_scope(dcgm=False))}
    assert "LlmctlGpuMemoryHigh" not in names
    assert len(names) == 8


ADAPTER_CASES = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'vllm_lora_adapter_loaded{job="vllm-demo", instance="10.0.0.1:8000", adapter="sql"}'
        values: '1x10'
      - series: 'vllm_lora_adapter_loaded{job="vllm-demo", instance="10.0.0.2:8000", adapter="sql"}'
        values: '0x10'
    alert_rule_test:
      - eval_time: 4m
        alertname: LlmctlAdapterMissing
        exp_alerts: []
      - eval_time: 6m
        alertname: LlmctlAdapterMissing
        exp_alerts:
          - exp_labels: {severity: critical, llmctl_deployment: demo, adapter: sql, instance: "10.0.0.2:8000",
                         job: vllm-demo}
            exp_annotations:
              summary: Adapter sql missing on 10.0.0.2:8000
              description: "The replica was started to serve LoRA adapter sql but does not: requests naming it get 404."
"""


def test_missing_adapter_alert_fires_only_where_a_replica_lacks_it(tmp_path, promtool):
    from llmctl.config import LlmctlConfig
    from llmctl.monitoring.dashboards import all_queries, endpoint_dashboard
    from tests.monitoring.promql import check_parse
    from llmctl.monitoring.target import Scope

    assert "LlmctlAdapterMissing" not in {r.name for r in alert_rules(rules_test_scope())}  # no LoRA: no rule
    scope = Scope.of(LlmctlConfig.model_validate({"project": {"name": "demo"}, "model": {"adapters": {"sql": None}}}))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_file(scope), sort_keys=False))
    (tmp_path / "adapter_test.yaml").write_text(ADAPTER_CASES)
    result = run_tool(promtool, "test", "rules", str(tmp_path / "adapter_test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    titles = {p["title"] for p in endpoint_dashboard(scope)["panels"]}
    assert {"Requests per adapter", "TTFT p95 per adapter", "Adapters loaded per replica"} <= titles
    check_parse(promtool, all_queries(scope), tmp_path)
