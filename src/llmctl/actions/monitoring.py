"""`llmctl monitoring up|down|render` and `llmctl dashboard`: the monitoring stack in the cluster.

Mode: with the Prometheus Operator's CRDs present (kube-prometheus-stack) only a ServiceMonitor,
a PrometheusRule and a dashboard ConfigMap are applied; otherwise the self-contained stack.
Everything is applied server-side and labelled (`Kube.apply_and_prune`), so a re-run prunes what
is no longer rendered and `down` finds what `up` created by label.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import Literal

from llmctl.config import LlmctlConfig, Names
from llmctl.errors import ConfigError, LlmctlError
from llmctl.k8s.apply import ApplyResult
from llmctl.k8s.portforward import PortForward, forward_service
from llmctl.monitoring import manifests
from llmctl.monitoring.target import Scope

Mode = Literal["operator", "self-contained"]
MONITORING_API = "monitoring.coreos.com/v1"
GRAFANA_PASSWORD_KEY = "admin-password"
# What `up` prunes and `down` deletes by label, in deletion order (workloads before what they mount).
SWEPT_KINDS = (
    (MONITORING_API, "ServiceMonitor"),
    (MONITORING_API, "PrometheusRule"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
)


def render(scope: Scope, mode: Mode, selector_labels: dict[str, str] | None = None) -> list[dict]:
    """The objects of one mode (pure; the Grafana admin Secret is not among them)."""
    if mode == "operator":
        return manifests.operator_manifests(scope, selector_labels)
    return manifests.self_contained_manifests(scope)


def grafana_secret(scope: Scope, password: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": scope.stack.grafana_secret,
            "namespace": scope.stack.namespace,
            "labels": {**manifests.stack_labels(scope.names), "app.kubernetes.io/name": "grafana"},
        },
        "type": "Opaque",
        "data": {GRAFANA_PASSWORD_KEY: base64.b64encode(password.encode()).decode()},
    }


class MonitoringManager:
    def __init__(self, kube, cfg: LlmctlConfig, names: Names):
        self.kube = kube
        self.cfg = cfg
        self.names = names
        self.scope = Scope.of(cfg, names)
        self.stack = self.scope.stack

    # -- mode -------------------------------------------------------------------------------------

    def detect_mode(self) -> Mode:
        operator = all(self.kube.has_kind(MONITORING_API, k) for k in ("ServiceMonitor", "PrometheusRule"))
        return "operator" if operator else "self-contained"

    def operator_selector_labels(self) -> dict[str, str]:
        """matchLabels the cluster's Prometheus selects ServiceMonitors and rules by (kube-prometheus-stack
        selects `release: <helm release>` unless told otherwise)."""
        if not self.kube.has_kind(MONITORING_API, "Prometheus"):
            return {}
        labels: dict[str, str] = {}
        for prom in self.kube.list(MONITORING_API, "Prometheus"):
            spec = prom.get("spec") or {}
            for key in ("serviceMonitorSelector", "ruleSelector"):
                labels.update(((spec.get(key) or {}).get("matchLabels")) or {})
        return labels

    # -- up / down --------------------------------------------------------------------------------

    def up(self, mode: Mode | None = None, dry_run: bool = False,
           report: Callable[[ApplyResult], None] = lambda r: None) -> tuple[Mode, list[ApplyResult]]:
        mode = mode or self.detect_mode()
        if mode == "operator":
            missing = [k for k in ("ServiceMonitor", "PrometheusRule") if not self.kube.has_kind(MONITORING_API, k)]
            if missing:
                raise ConfigError(f"the cluster does not serve {', '.join(missing)} ({MONITORING_API})",
                                  hint="install kube-prometheus-stack, or use --mode self-contained")
            docs = render(self.scope, mode, self.operator_selector_labels())
        else:
            docs = render(self.scope, mode)
            if self.kube.get("v1", "Namespace", self.names.namespace) is None:
                raise LlmctlError(f"namespace {self.names.namespace} of the endpoint does not exist yet",
                                  hint="run `llmctl deploy` first: Prometheus discovers the endpoint's pods there")
            self._check_alert_secrets()
            if self.kube.get("v1", "Secret", self.stack.grafana_secret, self.stack.namespace) is None:
                # generated once, never rotated by a re-run (Grafana keeps it in its database)
                docs.append(grafana_secret(self.scope, secrets.token_urlsafe(24)))
        keep = {("Secret", self.stack.namespace, self.stack.grafana_secret)}
        results = self.kube.apply_and_prune(docs, manifests.stack_selector(self.names), SWEPT_KINDS,
                                            self._namespaces(), dry_run, keep=keep, report=report)
        return mode, results

    def down(self, dry_run: bool = False, report: Callable[[ApplyResult], None] = lambda r: None) -> list[ApplyResult]:
        return self.kube.prune(manifests.stack_selector(self.names), SWEPT_KINDS, self._namespaces(),
                               dry_run=dry_run, report=report)

    def _namespaces(self) -> list[str]:
        """The stack's namespace and the endpoint's (the ServiceMonitor's home in operator mode)."""
        return sorted({self.stack.namespace, self.names.namespace})

    def _check_alert_secrets(self) -> None:
        am = self.cfg.monitoring.alertmanager
        wanted = {
            am.slack_webhook_secret: "url",
            am.pagerduty_routing_key_secret: "routing_key",
            getattr(am, "smtp_auth_password_secret", None): "password",
        }
        for secret, key in wanted.items():
            if not secret:
                continue
            found = self.kube.get("v1", "Secret", secret, self.stack.namespace)
            if found is None or key not in (found.get("data") or {}):
                raise LlmctlError(
                    f"Alertmanager needs Secret {secret} with key `{key}` in namespace {self.stack.namespace}",
                    hint=f"kubectl -n {self.stack.namespace} create secret generic {secret} --from-literal={key}=...",
                )

    # -- dashboard --------------------------------------------------------------------------------

    def grafana_password(self) -> str | None:
        secret = self.kube.get("v1", "Secret", self.stack.grafana_secret, self.stack.namespace)
        value = ((secret or {}).get("data") or {}).get(GRAFANA_PASSWORD_KEY)
        return base64.b64decode(value).decode() if value else None

    def ui_service(self, prometheus: bool) -> tuple[str, int]:
        """(Service name, port) of Grafana or Prometheus: llmctl's own, else kube-prometheus-stack's."""
        ns = self.stack.namespace
        own = self.stack.prometheus if prometheus else self.stack.grafana
        svc = self.kube.get("v1", "Service", own, ns)
        if svc is None:
            selectors = (["app.kubernetes.io/name=prometheus", "operated-prometheus=true"] if prometheus
                         else ["app.kubernetes.io/name=grafana"])
            for selector in selectors:
                found = self.kube.list("v1", "Service", namespace=ns, label_selector=selector)
                if found:
                    svc = found[0]
                    break
        if svc is None:
            what = "Prometheus" if prometheus else "Grafana"
            raise LlmctlError(f"no {what} Service in namespace {ns}", hint="run `llmctl monitoring up` first")
        port = svc["spec"]["ports"][0]["port"]
        return svc["metadata"]["name"], int(port)

    def ui_forward(self, prometheus: bool, local_port: int = 0, wait_s: float = 60.0,
                   on_error: Callable[[LlmctlError], None] | None = None) -> tuple[str, PortForward]:
        """(Service name, a not yet started port-forward to a ready pod behind it), as `kubectl port-forward
        svc/<name>` does; waits up to `wait_s` for a ready pod (kubectl's --pod-running-timeout)."""
        service, port = self.ui_service(prometheus)
        forward = forward_service(self.kube, self.stack.namespace, service, port, local_port, wait_s=wait_s,
                                  on_error=on_error)
        return service, forward
