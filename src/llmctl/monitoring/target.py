"""What is monitored and by what: derived once per render and handed to every renderer.

`Target` holds the series selectors every rule and dashboard query shares. The scrape job is
named after the endpoint's Service (`Names.app`): a ServiceMonitor names its job after the
Service by default, and the self-contained Prometheus relabels its pod targets to the same
name, so one set of queries works in both modes. `StackNames` names the stack's own objects.
`Scope` bundles both with the config and `Names`, the way `deploy.render` is handed `Names`.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.config import LlmctlConfig, Names

# vllm_requests_total statuses that count as failures of the endpoint (not client mistakes such as
# invalid/unauthorized, nor 429 backpressure, which the queue alert covers).
ERROR_STATUSES = "error|unavailable"


@dataclass(frozen=True)
class Target:
    deployment: str
    job: str
    namespace: str
    port: int  # the server's metrics port (container port "metrics"), not its API port
    dcgm: bool

    @classmethod
    def of(cls, cfg: LlmctlConfig, names: Names) -> Target:
        return cls(
            deployment=names.deployment,
            job=names.app,
            namespace=names.namespace,
            port=cfg.server.metrics_port,
            dcgm=cfg.monitoring.dcgm,
        )

    @property
    def sel(self) -> str:
        """Label matchers for the endpoint's own series (without braces)."""
        return f'job="{self.job}"'

    @property
    def error_sel(self) -> str:
        return f'{self.sel}, status=~"{ERROR_STATUSES}"'

    @property
    def gpu_sel(self) -> str:
        """DCGM exporter series of the GPUs the endpoint's pods hold (dcgm-exporter adds pod labels)."""
        return f'namespace="{self.namespace}", pod=~"{self.job}-.*"'


@dataclass(frozen=True)
class StackNames:
    namespace: str
    prometheus: str
    alertmanager: str
    grafana: str
    grafana_secret: str
    dcgm: str

    @classmethod
    def of(cls, cfg: LlmctlConfig, names: Names) -> StackNames:
        base = names.deployment
        return cls(
            namespace=cfg.monitoring.namespace,
            prometheus=f"{base}-prometheus",
            alertmanager=f"{base}-alertmanager",
            grafana=f"{base}-grafana",
            grafana_secret=f"{base}-grafana-admin",
            dcgm=f"{base}-dcgm-exporter",
        )


@dataclass(frozen=True)
class Scope:
    """One deployment's monitoring: its config, names, scrape target and stack names."""

    cfg: LlmctlConfig
    names: Names
    target: Target
    stack: StackNames

    @classmethod
    def of(cls, cfg: LlmctlConfig, names: Names | None = None) -> Scope:
        names = names or Names.from_config(cfg)
        return cls(cfg, names, Target.of(cfg, names), StackNames.of(cfg, names))
