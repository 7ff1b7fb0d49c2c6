"""`Discovery`: the clients discovery needs, injected; `Scan`: one pass over the world."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llmctl.actions.inventory.resources import BUILD, CLUSTER, IRSA, KUBERNETES, LOAD_BALANCERS, UNSTEPPED, Inventory, Resource
from llmctl.actions.inventory.sources import SOURCES, goes_with_cluster
from llmctl.aws import arns
from llmctl.aws.tagging import EKSCTL_CLUSTER_TAGS, LBC_CLUSTER_TAG, is_ours
from llmctl.config.names import TAG_DEPLOYMENT, TAG_MANAGED_BY, Names


@dataclass
class ClusterInfo:
    """The EKS cluster of the configured name: does it exist, and is it ours?"""

    exists: bool
    ours: bool
    arn: str = ""
    issuer: str | None = None
    version: str | None = None

    @property
    def foreign(self) -> bool:
        return self.exists and not self.ours


@dataclass
class Discovery:
    """What discovery needs, injected (tests hand in moto clients and a k8s double)."""

    names: Names
    aws: object  # llmctl.aws.session.AwsClients
    kube_factory: Callable[[], object] | None = None  # -> llmctl.k8s.client.Kube; raises when unreachable
    model_bucket: str | None = None  # only set when --delete-model-bucket named config's bucket
    config_model_bucket: str | None = None  # config's model bucket: kept out of step 5 unless named
    _kube: object = field(default=None, init=False, repr=False)
    _kube_error: str | None = field(default=None, init=False, repr=False)

    def scan(self) -> "Scan":
        return Scan(self)

    def find(self, step: int) -> list[Resource]:
        """What the sources of one step find now (a fresh scan: steps observe afresh)."""
        return self.scan().find(step)

    def discover(self, *, include_build: bool = True) -> Inventory:
        """Everything this deployment owns, each assigned to its teardown step, priced."""
        from llmctl.actions import cost

        scan = self.scan()
        inv = Inventory()
        cluster = scan.cluster()
        if cluster.foreign:
            inv.warnings.append(
                f"EKS cluster {self.names.cluster!r} exists but is not tagged {TAG_DEPLOYMENT}={self.names.deployment}; teardown leaves it alone"
            )
        for step in (LOAD_BALANCERS, KUBERNETES, IRSA, CLUSTER, BUILD):
            inv.resources += scan.find(step)
        seen = {r.id for r in inv.resources}
        if not include_build:
            inv.resources = [r for r in inv.resources if r.step != BUILD]
        for arn, tags in scan.tagged().items():
            if arns.type_of(arn) == "aws_instance":
                continue  # the Tagging API lists terminated instances too; node_ec2 found the live ones
            if arn not in seen and not goes_with_cluster(tags, self.names.cluster):
                inv.resources.append(Resource(arns.type_of(arn), arns.name_of(arn), arn, UNSTEPPED,
                                              note="tagged for this deployment; llmctl has no step for this type"))
        if self._kube_error and self.kube_factory is not None and cluster.exists and not cluster.foreign:
            inv.warnings.append(f"{self._kube_error}; Kubernetes objects are not listed (eksctl deletes them with the cluster)")
        cost.price_resources(inv.resources, self.aws)
        return inv

    def kube(self, cluster: ClusterInfo):
        """The cluster's API, or None when the cluster is gone or unreachable (reason kept).

        Only asked for when the EKS cluster exists and is ours: a kubeconfig whose context still
        points at some other cluster must never be the one teardown deletes objects in.
        """
        if not (cluster.exists and cluster.ours):
            return None
        if self._kube is None and self._kube_error is None:
            if self.kube_factory is None:
                self._kube_error = "no Kubernetes access configured"
            else:
                try:
                    kube = self.kube_factory()
                    kube.server_version()  # fail here, not half-way through a step
                    self._kube = kube
                except Exception as exc:  # noqa: BLE001 - unreachable cluster, no kubeconfig: teardown goes on without it
                    self._kube_error = f"Kubernetes API unreachable: {exc}"
        return self._kube


class Scan:
    """One pass over AWS and the cluster: each look-up is made once, whichever source asks."""

    def __init__(self, discovery: Discovery):
        self.d = discovery
        self.names = discovery.names
        self.aws = discovery.aws
        self._seen: dict = {}

    def once(self, key, fetch: Callable[[], object]):
        """`fetch()` the first time `key` is asked for in this scan, the same answer after."""
        if key not in self._seen:
            self._seen[key] = fetch()
        return self._seen[key]

    def find(self, step: int) -> list[Resource]:
        """Every source of `step`, in order; the first source to find an ARN keeps it."""
        found: list[Resource] = []
        seen: set[str] = set()
        for source in SOURCES[step]:
            for res in source(self):
                if res.id not in seen:
                    seen.add(res.id)
                    res.step = step
                    found.append(res)
        return found

    def tagged(self, filters: list[dict] | None = None) -> dict[str, dict[str, str]]:
        """ARN -> tags from the Tagging API; by default, what is tagged for this deployment."""
        from llmctl.aws.tagging import tagged_resources

        filters = filters or [
            {"Key": TAG_DEPLOYMENT, "Values": [self.names.deployment]},
            {"Key": TAG_MANAGED_BY, "Values": ["llmctl"]},
        ]
        return self.once(("tagged", repr(filters)), lambda: tagged_resources(self.aws.resourcegroupstaggingapi, filters))

    def cluster_tagged(self) -> dict[str, dict[str, str]]:
        """What the cluster's controllers and eksctl tagged for the cluster name."""
        c = self.names.cluster
        found: dict[str, dict[str, str]] = {}
        for key, value in ((f"kubernetes.io/cluster/{c}", "owned"), (LBC_CLUSTER_TAG, c), (EKSCTL_CLUSTER_TAGS[0], c)):
            found.update(self.tagged([{"Key": key, "Values": [value]}]))
        return found

    def stacks(self) -> list[dict]:
        """eksctl's stacks of this cluster: name prefix AND eksctl's cluster tag (never the name alone)."""
        from llmctl.aws.cloudformation import eksctl_stacks

        return self.once("stacks", lambda: eksctl_stacks(self.aws.cloudformation, self.names.cluster,
                                                          self.names.eksctl_stack_prefix))

    def cluster(self) -> ClusterInfo:
        """Does the EKS cluster exist, and is it ours (its tags, or its eksctl stacks' tags)?"""
        return self.once("cluster", self._cluster)

    def _cluster(self) -> ClusterInfo:
        from llmctl.aws import eks

        found = eks.describe_cluster(self.aws.eks, self.names.cluster)
        if found is None:  # ours unless eksctl stacks of that name say they belong to someone else
            return ClusterInfo(exists=False, ours=not self.stacks() or self._stacks_ours())
        ours = self.is_ours(found.get("tags") or {}) or self._stacks_ours()
        return ClusterInfo(True, ours, found["arn"], eks.issuer(found), found.get("version"))

    def _stacks_ours(self) -> bool:
        return any(self.is_ours(s["tags"]) for s in self.stacks())

    def kube(self):
        return self.d.kube(self.cluster())

    def is_ours(self, tags: dict[str, str]) -> bool:
        return is_ours(tags, self.names.deployment)
