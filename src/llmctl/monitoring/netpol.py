"""Who may talk to whom in the self-contained monitoring stack: the NetworkPolicies' rules (pure).

In: Prometheus from Grafana (and from every namespace while an autoscaler queries it: KEDA or
prometheus-adapter live elsewhere); Alertmanager and the DCGM exporter from Prometheus; Grafana and
Prometheus from the load balancer (the VPC, whose addresses an NLB's IP targets see, and the source
ranges) only when `monitoring.expose` is load-balancer. `llmctl dashboard`'s port-forward enters the pod's
own network namespace, which no policy filters. Out: DNS to kube-dns, then only what each needs:
Prometheus the Kubernetes API (service discovery, TCP 443) and what it scrapes, Alertmanager its HTTPS
receivers and the SMTP relay, Grafana Prometheus, the DCGM exporter nothing.
"""

from __future__ import annotations

from llmctl.config import LlmctlConfig

PROMETHEUS_PORT, ALERTMANAGER_PORT, GRAFANA_PORT, DCGM_PORT = 9090, 9093, 3000, 9400
DNS = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
               "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
       "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
HTTPS_OUT = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}],
             "ports": [{"protocol": "TCP", "port": 443}]}


def _tcp(*ports: int) -> list[dict]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def policies(cfg: LlmctlConfig, deployment: str, app_namespace: str, app_port: int, dcgm: bool) -> list[dict]:
    mon = cfg.monitoring

    def pods(component: str) -> dict:
        return {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": deployment,
                                                "app.kubernetes.io/name": component}}}

    lb = ([{"ipBlock": {"cidr": c}} for c in dict.fromkeys([cfg.cluster.vpc_cidr, *mon.load_balancer_source_ranges])]
          if mon.expose == "load-balancer" else [])
    autoscaler = [{"namespaceSelector": {}}] if cfg.deploy.autoscaling.enabled else []
    smarthost = mon.alertmanager.smtp_smarthost
    smtp = [{"ports": _tcp(int(smarthost.rsplit(":", 1)[1]))}] if smarthost and ":" in smarthost else []
    scraped = [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": app_namespace}}}],
                "ports": _tcp(app_port)},
               {"to": [pods("alertmanager")], "ports": _tcp(ALERTMANAGER_PORT)}]
    if dcgm:
        scraped.append({"to": [pods("dcgm-exporter")], "ports": _tcp(DCGM_PORT)})
    found = [
        {"component": "prometheus",
         "ingress": [{"from": [pods("grafana"), *lb, *autoscaler], "ports": _tcp(PROMETHEUS_PORT)}],
         "egress": [DNS, HTTPS_OUT, *scraped]},
        {"component": "alertmanager",
         "ingress": [{"from": [pods("prometheus")], "ports": _tcp(ALERTMANAGER_PORT)}],
         "egress": [DNS, HTTPS_OUT, *smtp]},
        {"component": "grafana",
         "ingress": [{"from": lb, "ports": _tcp(GRAFANA_PORT)}] if lb else [],
         "egress": [DNS, {"to": [pods("prometheus")], "ports": _tcp(PROMETHEUS_PORT)}]},
    ]
    if dcgm:
        found.append({"component": "dcgm-exporter",
                      "ingress": [{"from": [pods("prometheus")], "ports": _tcp(DCGM_PORT)}], "egress": []})
    return found
