"""Rendered monitoring objects: valid against Kubernetes and CRD schemas, configs pass the real
tools' checks, and nothing is exposed or leaked by default."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from llmctl.config import LlmctlConfig
from llmctl.monitoring.manifests import config_files, operator_manifests, self_contained_manifests
from llmctl.monitoring.rules import rule_groups
from llmctl.monitoring.target import Scope
from tests.monitoring.conftest import require_tool, run_tool

FULL = {
    "project": {"name": "demo"},
    "monitoring": {
        "dcgm": True,
        "persistent_volume_size": "20Gi",
        "alertmanager": {"slack_webhook_secret": "slack-hook", "pagerduty_routing_key_secret": "pd-key"},
    },
}


def config(**overrides) -> LlmctlConfig:
    data = json.loads(json.dumps(FULL))
    data["monitoring"].update(overrides)
    return LlmctlConfig.model_validate(data)


def scope(**overrides) -> Scope:
    return Scope.of(config(**overrides))


def by_kind_name(docs):
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.mark.parametrize("overrides", [{}, {"dcgm": False, "persistent_volume_size": None, "alertmanager": {}}])
def test_self_contained_objects_validate_strictly(overrides):
    cfg = config(**overrides)
    version = cfg.cluster.kubernetes_version + ".0"
    for doc in self_contained_manifests(Scope.of(cfg)):
        kubernetes_validate.validate(doc, version, strict=True)


def test_operator_objects_validate_against_crds(crd_validator):
    cfg = config()
    version = cfg.cluster.kubernetes_version + ".0"
    docs = by_kind_name(operator_manifests(Scope.of(cfg), {"release": "kube-prometheus-stack"}))
    crd_validator(docs["ServiceMonitor", "vllm-demo"])
    crd_validator(docs["PrometheusRule", "vllm-demo"])
    kubernetes_validate.validate(docs["ConfigMap", "vllm-demo-dashboards"], version, strict=True)


def test_crd_check_is_strict(crd_validator):
    import jsonschema

    monitor = by_kind_name(operator_manifests(scope()))["ServiceMonitor", "vllm-demo"]
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        crd_validator(monitor)


def test_operator_mode_contract():
    docs = by_kind_name(operator_manifests(scope(), {"release": "kps"}))
    monitor = docs["ServiceMonitor", "vllm-demo"]
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"
    # the pods' named metrics port (deploy renders it; the Service, and so the NLB, does not carry it)
    assert (monitor["spec"]["endpoints"][0]["targetPort"], monitor["spec"]["endpoints"][0]["path"]) == ("metrics", "/metrics")
    [job] = [j for j in yaml.safe_load(config_files(scope())["prometheus"])["scrape_configs"] if j["job_name"] == "vllm-demo"]
    assert {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "metrics",
            "action": "keep"} in job["relabel_configs"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["vllm"]}
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "llmctl",
        "app.kubernetes.io/instance": "demo",
    }
    assert docs["PrometheusRule", "vllm-demo"]["spec"]["groups"] == rule_groups(scope())
    board = docs["ConfigMap", "vllm-demo-dashboards"]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["llmctl-demo.json"])["uid"] == "llmctl-demo"


def test_every_object_is_labelled_for_down():
    for doc in self_contained_manifests(scope()) + operator_manifests(scope()):
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "llmctl"
        if doc["kind"] != "Namespace":
            assert labels["app.kubernetes.io/instance"] == "demo", doc["metadata"]["name"]


def test_cluster_ip_by_default_and_grafana_locked_down():
    docs = by_kind_name(self_contained_manifests(scope()))
    services = [d for d in docs.values() if d["kind"] == "Service"]
    assert {s["spec"]["type"] for s in services} == {"ClusterIP"}
    env = {e["name"]: e for e in docs["Deployment", "demo-grafana"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GF_AUTH_ANONYMOUS_ENABLED"]["value"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "demo-grafana-admin",
        "key": "admin-password",
    }
    assert not [d for d in docs.values() if d["kind"] == "Secret"]


def test_load_balancer_is_opt_in_and_source_limited():
    docs = self_contained_manifests(scope(expose="load-balancer", load_balancer_source_ranges=["203.0.113.0/24"]))
    services = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Service"}
    for name in ("demo-grafana", "demo-prometheus"):
        assert services[name]["type"] == "LoadBalancer"
        assert services[name]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert services["demo-alertmanager"]["type"] == "ClusterIP"
    with pytest.raises(ValidationError, match="load_balancer_source_ranges"):  # refused by the config itself
        config(expose="load-balancer")


@pytest.mark.parametrize("scheme", [None, "internet-facing"])
def test_load_balancers_carry_the_endpoint_services_nlb_annotations(scheme):
    """One derivation (llmctl.load_balancer) for the endpoint's NLB and the stack's: a controller-owned NLB,
    IP targets, the scheme asked for (internal unless internet-facing is spelled out), llmctl's tags."""
    from llmctl.actions.exposure import service_annotations
    from llmctl.config import Names

    asked = {"load_balancer_scheme": scheme} if scheme else {}
    cfg = config(expose="load-balancer", load_balancer_source_ranges=["203.0.113.0/24"], **asked)
    docs = by_kind_name(self_contained_manifests(Scope.of(cfg)))
    prefix = "service.beta.kubernetes.io/aws-load-balancer-"
    endpoint_cfg = cfg.model_copy(update={"deploy": cfg.deploy.model_copy(update={"exposure": "internal"})})
    endpoint = service_annotations(endpoint_cfg, Names.from_config(cfg), 60)
    for name in ("demo-grafana", "demo-prometheus"):
        annotations = docs["Service", name]["metadata"]["annotations"]
        assert annotations[prefix + "type"] == "external" and annotations[prefix + "nlb-target-type"] == "ip"
        assert annotations[prefix + "scheme"] == (scheme or "internal")
        assert annotations[prefix + "additional-resource-tags"] == endpoint[prefix + "additional-resource-tags"]
        shared = {k: v for k, v in endpoint.items() if k != prefix + "target-group-attributes"}
        assert {**shared, prefix + "scheme": scheme or "internal"} == annotations
    assert "annotations" not in docs["Service", "demo-alertmanager"]["metadata"]
    assert "annotations" not in by_kind_name(self_contained_manifests(scope()))["Service", "demo-grafana"]["metadata"]


def test_prometheus_scrape_and_retention():
    cfg = config()
    prom = yaml.safe_load(config_files(Scope.of(cfg))["prometheus"])
    assert prom["global"]["scrape_interval"] == "30s"
    job = prom["scrape_configs"][0]
    assert job["job_name"] == "vllm-demo"
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["vllm"]
    sts = by_kind_name(self_contained_manifests(Scope.of(cfg)))["StatefulSet", "demo-prometheus"]
    assert "--storage.tsdb.retention.time=15d" in sts["spec"]["template"]["spec"]["containers"][0]["args"]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    role = by_kind_name(self_contained_manifests(Scope.of(cfg)))["Role", "demo-prometheus-discovery"]
    assert role["metadata"]["namespace"] == "vllm"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


def test_prometheus_config_passes_promtool(tmp_path):
    """promtool checks everything but the Kubernetes SD blocks, which Debian's build leaves out
    (it has no Kubernetes discovery); those are swapped for file SD and asserted on above."""
    promtool = require_tool("promtool")
    prom = yaml.safe_load(config_files(scope())["prometheus"])
    for job in prom["scrape_configs"]:
        sd = job.pop("kubernetes_sd_configs")
        assert [s["role"] for s in sd] == ["pod"]
        job["file_sd_configs"] = [{"files": [str(tmp_path / "targets.json")]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(prom))
    result = run_tool(promtool, "check", "config", "--syntax-only", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_config_passes_amtool_and_reads_secrets_from_files(tmp_path):
    amtool = require_tool("amtool")
    text = config_files(scope())["alertmanager"]
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    result = run_tool(amtool, "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    am = yaml.safe_load(text)
    receivers = {r["name"]: r for r in am["receivers"]}
    assert receivers["slack"]["slack_configs"][0]["api_url_file"] == "/etc/alertmanager/secrets/slack/url"
    assert receivers["pagerduty"]["pagerduty_configs"][0]["routing_key_file"].endswith("/routing_key")
    routes = {r["receiver"]: r for r in am["route"]["routes"]}
    assert routes["pagerduty"]["matchers"] == ['severity="critical"']
    deploy = by_kind_name(self_contained_manifests(scope()))["Deployment", "demo-alertmanager"]
    secrets = {v["secret"]["secretName"] for v in deploy["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert secrets == {"slack-hook", "pd-key"}


def test_email_without_smtp_relay_is_a_config_error():
    with pytest.raises(ValidationError, match="SMTP"):
        config(alertmanager={"email_to": "oncall@example.com"})
    with pytest.raises(ValidationError, match="smtp_auth_password_secret"):
        config(alertmanager={"email_to": "oncall@example.com", "smtp_smarthost": "smtp:587",
                             "smtp_auth_username": "alerts"})


def _policies(docs) -> dict[str, dict]:
    return {d["metadata"]["name"].removeprefix("demo-"): d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}


def _peers(rule) -> list:
    return rule["from"]


def test_network_policies_fence_every_component():
    docs = self_contained_manifests(scope())
    policies = _policies(docs)
    assert set(policies) == {"prometheus", "alertmanager", "grafana", "dcgm-exporter"}
    pods = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]: d["spec"]["selector"]["matchLabels"]
            for d in docs if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet")}
    for name, spec in policies.items():
        assert spec["podSelector"]["matchLabels"] == pods[name]  # each policy selects its component's pods
        assert spec["policyTypes"] == ["Ingress", "Egress"]

    def from_(component):
        return {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "demo", "app.kubernetes.io/name": component}}}

    # cluster-ip: nobody outside the stack; Grafana only through `llmctl dashboard`'s port-forward
    assert policies["grafana"]["ingress"] == []
    assert policies["prometheus"]["ingress"] == [{"from": [from_("grafana")], "ports": [{"protocol": "TCP", "port": 9090}]}]
    assert policies["alertmanager"]["ingress"][0]["from"] == [from_("prometheus")]
    assert policies["dcgm-exporter"]["ingress"][0]["from"] == [from_("prometheus")]
    assert policies["dcgm-exporter"]["egress"] == []  # nothing out
    # Prometheus scrapes the endpoint's metrics port in its namespace, and nothing else there
    dns, https, scrape, alertmanager, dcgm = policies["prometheus"]["egress"]
    assert https["ports"] == [{"protocol": "TCP", "port": 443}]  # the Kubernetes API (service discovery)
    assert scrape == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "vllm"}}}],
                      "ports": [{"protocol": "TCP", "port": 9100}]}
    assert (alertmanager["to"], dcgm["to"]) == ([from_("alertmanager")], [from_("dcgm-exporter")])
    grafana_out = [r["ports"] for r in policies["grafana"]["egress"]]
    assert grafana_out == [[{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                           [{"protocol": "TCP", "port": 9090}]]


def test_network_policies_follow_the_load_balancer_autoscaler_and_smtp():
    cfg = LlmctlConfig.model_validate({
        **FULL, "cluster": {"nodes_max": 2},
        "deploy": {"autoscaling": {"enabled": True, "max_replicas": 2}},
        "monitoring": {**FULL["monitoring"], "expose": "load-balancer", "load_balancer_source_ranges": ["203.0.113.0/24"],
                       "alertmanager": {"email_to": "ops@example.com", "smtp_smarthost": "smtp.example.com:587",
                                        "smtp_from": "llmctl@example.com"}}})
    policies = _policies(self_contained_manifests(Scope.of(cfg)))
    lb = [{"ipBlock": {"cidr": "192.168.0.0/16"}}, {"ipBlock": {"cidr": "203.0.113.0/24"}}]
    assert policies["grafana"]["ingress"][0]["from"] == lb
    prometheus_from = policies["prometheus"]["ingress"][0]["from"]
    assert prometheus_from[1:] == [*lb, {"namespaceSelector": {}}]  # KEDA queries it from its own namespace
    assert {"ports": [{"protocol": "TCP", "port": 587}]} in policies["alertmanager"]["egress"]
