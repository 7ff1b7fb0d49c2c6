"""What is monitored: the series selectors every rule and dashboard query shares.

The scrape job is named after the endpoint's Service (`Names.app`). A ServiceMonitor names its
job after the Service by default, and the self-contained Prometheus relabels its pod targets to
the same name, so one set of queries works in both modes.
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
    port: int
    dcgm: bool

    @classmethod
    def from_config(cls, cfg: LlmctlConfig) -> Target:
        names = Names.from_config(cfg)
        return cls(
            deployment=names.deployment,
            job=names.app,
            namespace=names.namespace,
            port=cfg.server.port,
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
