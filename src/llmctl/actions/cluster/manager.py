"""`ClusterManager`: the clients `cluster up | status` use, and `ClusterState`, one observation of
the cluster shared by the steps of a plan."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from llmctl.actions.cluster.render import render_cluster_config
from llmctl.config.names import Names
from llmctl.errors import LlmctlError


class ClusterManager:
    """Built from injected clients so tests hand it fakes (eksctl's `pkg/actions` managers)."""

    def __init__(self, cfg, names: Names, aws, output, *, workdir: Path,
                 eksctl_factory: Callable[[], object] | None = None,
                 kube_factory: Callable[[str | None], object] | None = None,
                 tool_probe: Callable[[str], object] | None = None,
                 pricing_client_factory: Callable[[], object] | None = None):
        self.cfg = cfg
        self.names = names
        self.aws = aws
        self.output = output
        self.workdir = Path(workdir)
        self._eksctl_factory = eksctl_factory
        self._kube_factory = kube_factory
        self.tool_probe = tool_probe
        self.pricing_client_factory = pricing_client_factory or aws.price_list_client
        self._eksctl = None
        self._kube = None
        self._kube_context: str | None = None

    # -- the verbs (one module each) -----------------------------------------------------------
    def preflight(self, live_prices: bool = True):
        from llmctl.actions.cluster.preflight import run_preflight

        return run_preflight(self, live_prices)

    def plan(self, gpu_timeout_s: float | None = None):
        from llmctl.actions.cluster.up import up_plan

        return up_plan(self, gpu_timeout_s)

    def status(self) -> dict:
        from llmctl.actions.cluster.status import cluster_status

        return cluster_status(self)

    # -- clients -------------------------------------------------------------------------------
    def state(self) -> "ClusterState":
        return ClusterState(self)

    @property
    def eksctl(self):
        if self._eksctl is None:
            from llmctl.eksctl import Eksctl

            self._eksctl = (self._eksctl_factory or Eksctl)()
        return self._eksctl

    def context_name(self) -> str | None:
        from llmctl.eksctl import kubeconfig_context

        return kubeconfig_context(self.names.cluster, self.names.region)

    def kube(self, context: str | None):
        """The cluster's API through eksctl's kubeconfig context (raises when there is none)."""
        if context is None:
            raise LlmctlError(f"no kubeconfig context for cluster {self.names.cluster}",
                              hint=f"run `eksctl utils write-kubeconfig --cluster {self.names.cluster} "
                                   f"--region {self.names.region}` or `llmctl cluster up`")
        if self._kube is None or self._kube_context != context:
            if self._kube_factory is not None:
                self._kube = self._kube_factory(context)
            else:
                from llmctl.k8s.client import Kube

                self._kube = Kube.from_kubeconfig(None, context)
            self._kube_context = context
        return self._kube

    @cached_property
    def partition(self) -> str:
        return self.aws.identity()["Arn"].split(":")[1]

    @property
    def config_file(self) -> Path:
        return self.workdir / f"{self.names.cluster}-clusterconfig.yaml"

    def write_config_file(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(render_cluster_config(self.cfg, self.names))
        return self.config_file

    def stream(self, title: str) -> Callable[[str], None]:
        """A header, then each line of eksctl's output indented under it."""
        self.output.info(f"── {title}")
        return lambda line: self.output.log_line(f"   │ {line}")


class ClusterState:
    """What AWS and the kubeconfig say about the cluster: each read made once, and made again
    only after a step that changed it calls `changed()` (one observation per plan, not per step)."""

    def __init__(self, manager: ClusterManager):
        self._m = manager
        self._seen: dict[str, object] = {}

    def _read(self, key: str, fetch: Callable[[], object]):
        if key not in self._seen:
            self._seen[key] = fetch()
        return self._seen[key]

    def changed(self) -> None:
        self._seen.clear()

    def cluster(self) -> dict | None:
        from llmctl.aws import eks

        return self._read("cluster", lambda: eks.describe_cluster(self._m.aws.eks, self._m.names.cluster))

    def usable_cluster(self) -> dict | None:
        """The cluster, or None when there is none; a failed or deleting one is an error."""
        cluster = self.cluster()
        status = (cluster or {}).get("status")
        if status in ("FAILED", "DELETING"):
            raise LlmctlError(f"EKS cluster {self._m.names.cluster} is {status}",
                              hint="wait for the deletion to finish, or delete it (`llmctl cluster down`), then re-run")
        return cluster

    def issuer(self) -> str | None:
        from llmctl.aws import eks

        return eks.issuer(self.cluster())

    def oidc_provider(self) -> str | None:
        """The IAM OIDC provider that trusts the cluster's issuer, if both exist."""
        from llmctl.aws import irsa

        issuer = self.issuer()
        if issuer is None:
            return None
        return self._read("oidc", lambda: irsa.provider_of(irsa.oidc_providers(self._m.aws.iam), issuer))

    def nodegroup(self) -> dict | None:
        from llmctl.aws import eks

        name = self._m.cfg.cluster.nodegroup_name
        return self._read("nodegroup", lambda: eks.describe_nodegroup(self._m.aws.eks, self._m.names.cluster, name))

    def context(self) -> str | None:
        return self._read("context", self._m.context_name)

    def kube(self):
        return self._m.kube(self.context())
