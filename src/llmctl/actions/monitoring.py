"""`llmctl monitoring up|down|render` and `llmctl dashboard`: the monitoring stack in the cluster.

Mode: with the Prometheus Operator's CRDs present (kube-prometheus-stack) only a ServiceMonitor,
a PrometheusRule and a dashboard ConfigMap are applied; otherwise the self-contained stack.
Everything is applied server-side and labelled, so `down` finds what `up` created by label.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

from llmctl.config import LlmctlConfig, Names
from llmctl.config.names import FIELD_MANAGER
from llmctl.errors import ConfigError, LlmctlError
from llmctl.k8s.portforward import PortForward, forward_service
from llmctl.monitoring import manifests

Mode = Literal["operator", "self-contained"]
MONITORING_API = "monitoring.coreos.com/v1"
GRAFANA_PASSWORD_KEY = "admin-password"
# What `down` sweeps by label, in deletion order (workloads before what they mount).
SWEPT_KINDS = (
    (MONITORING_API, "ServiceMonitor"),
    (MONITORING_API, "PrometheusRule"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
)


@dataclass
class ObjectResult:
    kind: str
    name: str
    namespace: str | None
    action: str  # created | configured | unchanged | deleted | pruned | planned

    def to_dict(self) -> dict:
        return asdict(self)


def render(cfg: LlmctlConfig, mode: Mode, selector_labels: dict[str, str] | None = None) -> list[dict]:
    """The objects of one mode (pure; the Grafana admin Secret is not among them)."""
    if mode == "operator":
        return manifests.operator_manifests(cfg, selector_labels)
    return manifests.self_contained_manifests(cfg)


def grafana_secret(cfg: LlmctlConfig, password: str) -> dict:
    names = manifests.StackNames.from_config(cfg)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": names.grafana_secret,
            "namespace": names.namespace,
            "labels": {**manifests.stack_labels(cfg), "app.kubernetes.io/name": "grafana"},
        },
        "type": "Opaque",
        "data": {GRAFANA_PASSWORD_KEY: base64.b64encode(password.encode()).decode()},
    }


class MonitoringManager:
    def __init__(self, kube, cfg: LlmctlConfig, names: Names):
        self.kube = kube
        self.cfg = cfg
        self.names = names
        self.stack = manifests.StackNames.from_config(cfg)

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
           report: Callable[[ObjectResult], None] = lambda r: None) -> tuple[Mode, list[ObjectResult]]:
        mode = mode or self.detect_mode()
        if mode == "operator":
            missing = [k for k in ("ServiceMonitor", "PrometheusRule") if not self.kube.has_kind(MONITORING_API, k)]
            if missing:
                raise ConfigError(f"the cluster does not serve {', '.join(missing)} ({MONITORING_API})",
                                  hint="install kube-prometheus-stack, or use --mode self-contained")
            docs = render(self.cfg, mode, self.operator_selector_labels())
        else:
            docs = render(self.cfg, mode)
            if self.kube.get("v1", "Namespace", self.names.namespace) is None:
                raise LlmctlError(f"namespace {self.names.namespace} of the endpoint does not exist yet",
                                  hint="run `llmctl deploy` first: Prometheus discovers the endpoint's pods there")
            self._check_alert_secrets()
            if self.kube.get("v1", "Secret", self.stack.grafana_secret, self.stack.namespace) is None:
                # generated once, never rotated by a re-run (Grafana keeps it in its database)
                docs.append(grafana_secret(self.cfg, secrets.token_urlsafe(24)))
        results = []
        for applied in self.kube.apply_all(docs, field_manager=FIELD_MANAGER, dry_run=dry_run):
            result = ObjectResult(applied.kind, applied.name, applied.namespace, applied.action)
            results.append(result)
            report(result)
        keep = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}
        keep.add(("Secret", self.stack.namespace, self.stack.grafana_secret))
        for result in self._sweep(keep, dry_run, action="pruned"):
            results.append(result)
            report(result)
        return mode, results

    def down(self, dry_run: bool = False, report: Callable[[ObjectResult], None] = lambda r: None) -> list[ObjectResult]:
        results = []
        for result in self._sweep(set(), dry_run, action="deleted"):
            results.append(result)
            report(result)
        return results

    def _sweep(self, keep: set, dry_run: bool, action: str):
        """Delete this deployment's monitoring objects (by label) that are not in `keep`."""
        selector = manifests.stack_selector(self.cfg)
        namespaces = sorted({self.stack.namespace, self.names.namespace})
        for api_version, kind in SWEPT_KINDS:
            if api_version == MONITORING_API and not self.kube.has_kind(api_version, kind):
                continue
            for namespace in namespaces:
                for obj in self.kube.list(api_version, kind, namespace=namespace, label_selector=selector):
                    name = obj["metadata"]["name"]
                    if (kind, namespace, name) in keep:
                        continue
                    if not dry_run:
                        self.kube.delete(api_version, kind, name, namespace)
                    yield ObjectResult(kind, name, namespace, action if not dry_run else "planned")

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
