"""The monitoring objects for both modes, rendered from templates/monitoring/ (pure).

Self-contained mode: Prometheus (Kubernetes SD of the endpoint's pods), Alertmanager and Grafana
in the monitoring namespace. Operator mode: a ServiceMonitor, a PrometheusRule and a dashboard
ConfigMap for kube-prometheus-stack's Grafana sidecar. Both take their rules from
`rules.rule_groups` and their dashboards from `dashboards.dashboards`. Every renderer is handed one
`Scope` (names derived once); the config's cross-field checks (an SMTP relay for email alerts, source
ranges for a public load balancer) are validators in `config/model.py`.
"""

from __future__ import annotations

import hashlib

from llmctl.config import LlmctlConfig, Names
from llmctl.config.names import LABEL_INSTANCE, LABEL_MANAGED_BY
from llmctl.monitoring.dashboards import DATASOURCE_UID, dashboard_uid, dashboards
from llmctl.monitoring.netpol import policies as network_policies
from llmctl.monitoring.rules import rule_file, rule_groups
from llmctl.monitoring.target import Scope

IMAGES = {
    "prometheus": "quay.io/prometheus/prometheus:v3.5.0",
    "alertmanager": "quay.io/prometheus/alertmanager:v0.28.1",
    "grafana": "docker.io/grafana/grafana:12.1.1",
    "dcgm_exporter": "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3-ubuntu22.04",
}
SECRETS_DIR = "/etc/alertmanager/secrets"
PART_OF = "llmctl-monitoring"


def _yaml(value) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=False)


def _receivers(cfg: LlmctlConfig) -> tuple[list[dict], list[dict], dict | None]:
    """Alertmanager receivers, the Secret volumes they read, and the SMTP settings."""
    am = cfg.monitoring.alertmanager
    receivers: list[dict] = []
    secrets: list[dict] = []

    def mount(kind: str, secret: str, key: str) -> str:
        path = f"{SECRETS_DIR}/{kind}"
        secrets.append({"volume": f"{kind}-secret", "secret": secret, "mount": path})
        return f"{path}/{key}"

    if am.slack_webhook_secret:
        receivers.append(
            {"name": "slack", "kind": "slack", "critical_only": False,
             "secret_file": mount("slack", am.slack_webhook_secret, "url")}
        )
    smtp = None
    if am.email_to:
        smarthost = am.smtp_smarthost  # the config requires it with email_to
        smtp = {
            "smarthost": smarthost,
            "sender": am.smtp_from or f"llmctl@{smarthost.rsplit(':', 1)[0]}",
            "username": am.smtp_auth_username,
            "password_file": None,
        }
        if smtp["username"]:  # the config requires smtp_auth_password_secret with it
            smtp["password_file"] = mount("smtp", am.smtp_auth_password_secret, "password")
        receivers.append({"name": "email", "kind": "email", "critical_only": False, "to": am.email_to})
    if am.pagerduty_routing_key_secret:
        receivers.append(
            {"name": "pagerduty", "kind": "pagerduty", "critical_only": True,
             "secret_file": mount("pagerduty", am.pagerduty_routing_key_secret, "routing_key")}
        )
    return receivers, secrets, smtp


def config_files(scope: Scope) -> dict[str, str]:
    """The rendered Prometheus, Alertmanager and Grafana configuration files."""
    from llmctl.render import render_text

    cfg, t, n = scope.cfg, scope.target, scope.stack
    receivers, _, smtp = _receivers(cfg)
    return {
        "prometheus": render_text(
            "monitoring/prometheus.yml.j2",
            deployment=t.deployment,
            scrape_interval=cfg.monitoring.scrape_interval,
            alertmanager_address=f"{n.alertmanager}.{n.namespace}.svc:9093",
            job=t.job,
            app_namespace=t.namespace,
            namespace=n.namespace,
            pod_selector=scope.names.k8s_selector,
            port=t.port,
            dcgm=t.dcgm,
            dcgm_selector=f"{LABEL_INSTANCE}={t.deployment},app.kubernetes.io/name=dcgm-exporter",
        ),
        "rules": _yaml(rule_file(scope)),
        "alertmanager": render_text(
            "monitoring/alertmanager.yml.j2", deployment=t.deployment, receivers=receivers, smtp=smtp
        ),
        "grafana_datasources": render_text(
            "monitoring/grafana-datasources.yaml.j2",
            datasource_uid=DATASOURCE_UID,
            prometheus_url=f"http://{n.prometheus}.{n.namespace}.svc:9090",
            scrape_interval=cfg.monitoring.scrape_interval,
        ),
        "grafana_dashboards": render_text("monitoring/grafana-dashboards.yaml.j2"),
    }


def stack_labels(names: Names) -> dict[str, str]:
    """Labels on every monitoring object of a deployment: what `monitoring down` deletes by."""
    return {**names.k8s_labels, "app.kubernetes.io/part-of": PART_OF}


def stack_selector(names: Names) -> str:
    return ",".join(f"{k}={v}" for k, v in stack_labels(names).items())


def _hash(*texts: str) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
    return digest.hexdigest()[:16]


def _component_labels(labels: dict[str, str]) -> dict[str, dict[str, str]]:
    return {
        c: {**labels, "app.kubernetes.io/name": c, "app.kubernetes.io/part-of": PART_OF}
        for c in ("prometheus", "alertmanager", "grafana", "dcgm-exporter")
    }


def self_contained_manifests(scope: Scope) -> list[dict]:
    """Every object of the self-contained stack (the Grafana admin Secret is made by the action)."""
    from llmctl.load_balancer import nlb_annotations
    from llmctl.render import render_documents

    cfg, t, n = scope.cfg, scope.target, scope.stack
    mon = cfg.monitoring
    labels = scope.names.k8s_labels
    files = config_files(scope)
    boards = dashboards(scope)
    _, alert_secrets, _ = _receivers(cfg)
    fences = render_documents("monitoring/networkpolicies.yaml.j2", namespace=n.namespace, deployment=t.deployment,
                              component_labels=_component_labels(labels),
                              policies=network_policies(cfg, t.deployment, t.namespace, t.port, t.dcgm))
    stack = render_documents(
        "monitoring/stack.yaml.j2",
        namespace=n.namespace,
        app_namespace=t.namespace,
        deployment=t.deployment,
        labels=labels,
        namespace_labels={LABEL_MANAGED_BY: labels[LABEL_MANAGED_BY], "app.kubernetes.io/part-of": PART_OF},
        component_labels=_component_labels(labels),
        prometheus=n.prometheus,
        alertmanager=n.alertmanager,
        grafana=n.grafana,
        grafana_secret=n.grafana_secret,
        dcgm_name=n.dcgm,
        files=files,
        dashboards=boards,
        home_dashboard=f"{dashboard_uid(scope)}.json",
        hashes={
            "prometheus": _hash(files["prometheus"], files["rules"]),
            "alertmanager": _hash(files["alertmanager"]),
            "grafana": _hash(files["grafana_datasources"], files["grafana_dashboards"], *boards.values()),
        },
        images=IMAGES,
        retention=mon.retention,
        volume_size=mon.persistent_volume_size,
        load_balancer=mon.expose == "load-balancer",
        source_ranges=mon.load_balancer_source_ranges,
        load_balancer_annotations=nlb_annotations(mon.load_balancer_scheme, scope.names.aws_tags),
        alert_secrets=alert_secrets,
        dcgm=t.dcgm,
        gpu_instance_types=cfg.cluster.instance_types,
    )
    return stack + fences


def operator_manifests(scope: Scope, selector_labels: dict[str, str] | None = None) -> list[dict]:
    """ServiceMonitor, PrometheusRule and dashboard ConfigMap for kube-prometheus-stack.

    `selector_labels` are the labels the cluster's Prometheus selects ServiceMonitors and rules by
    (kube-prometheus-stack: `release: <helm release>`).
    """
    from llmctl.render import render_documents

    t = scope.target
    labels = stack_labels(scope.names)
    return render_documents(
        "monitoring/operator.yaml.j2",
        job=t.job,
        namespace=scope.stack.namespace,
        app_namespace=t.namespace,
        app_labels=scope.names.k8s_labels,
        port=t.port,
        scrape_interval=scope.cfg.monitoring.scrape_interval,
        monitor_labels={**(selector_labels or {}), **labels},
        dashboard_labels={**labels, "grafana_dashboard": "1"},
        rule_groups=rule_groups(scope),
        dashboards=dashboards(scope),
    )
