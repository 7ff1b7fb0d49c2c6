"""`llmctl teardown` / `llmctl cluster down`: remove exactly what this deployment created, in the
order that works, then prove nothing billable is left.

Discovery is by tags, never by name pattern. Two sources, merged by ARN:

* the Resource Groups Tagging API (`GetResources` with `llmctl.io/deployment=<name>` and
  `llmctl.io/managed-by=llmctl`; for the cluster also the tags eksctl and the AWS cloud
  controller put on what they create: `alpha.eksctl.io/cluster-name`, `kubernetes.io/cluster/<c>`,
  `elbv2.k8s.aws/cluster`);
* direct look-ups of the names this deployment derives (`config/names.py`), each kept only when
  its own tags say it is ours. They cover what the Tagging API cannot return: IAM roles and OIDC
  providers (IAM is not a Tagging API service), CloudFormation stacks (selected by eksctl's
  cluster tag), Kubernetes objects, and ECR repositories, CodeBuild projects and EKS clusters,
  which the real Tagging API returns but moto's does not (moto 5.2 registers no tagging backend
  for ecr, codebuild, eks or iam), so a look-up by the known name keeps tests and AWS alike.

Order (each a `plan.Step`, observed fresh on every run, so a re-run resumes):
1. LoadBalancer Services, then wait until their load balancers, target groups and security
   groups are gone (deleted directly when no controller is left to do it);
2. the other labelled Kubernetes objects, then the namespaces labelled for this deployment;
3. the IRSA role; 4. `eksctl delete cluster --wait`, then check the stacks and OIDC provider;
5. (`--all`) the build resources and tagged secrets; the model bucket only when named.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from botocore.exceptions import ClientError

from llmctl.config.names import TAG_DEPLOYMENT, TAG_MANAGED_BY, Names
from llmctl.errors import LlmctlError
from llmctl.plan import Plan, Step

# Tags eksctl and the AWS cloud controller / load balancer controller write.
EKSCTL_CLUSTER_TAGS = ("alpha.eksctl.io/cluster-name", "eksctl.cluster.k8s.io/v1alpha1/cluster-name")
K8S_SERVICE_TAGS = ("kubernetes.io/service-name", "service.k8s.aws/stack")
LBC_CLUSTER_TAG = "elbv2.k8s.aws/cluster"

STEP_TITLES = {
    1: "LoadBalancer Services and their AWS load balancers",
    2: "workloads, monitoring stack and namespaces",
    3: "IRSA role and its policies",
    4: "EKS cluster (eksctl delete cluster --wait)",
    5: "build resources (--all)",
    0: "other resources tagged for this deployment",
}
# Types with no charge of their own (they still count as leftovers when found in scope).
FREE_TYPES = {
    "aws_iam_role", "aws_iam_openid_connect_provider", "aws_security_group", "aws_lb_target_group",
    "aws_cloudformation_stack", "aws_codebuild_project", "k8s_service", "k8s_namespace", "k8s_object",
}
# Labelled objects that may live outside this deployment's namespaces (cluster-scoped RBAC,
# the device plugin in kube-system, monitoring CRs). Namespaced kinds only matter outside ours.
K8S_KINDS = (
    ("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"),
    ("v1", "Service"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"), ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"), ("keda.sh/v1alpha1", "ScaledObject"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
)


@dataclass
class Resource:
    """One thing teardown found: a Terraform-like type, a name, where it goes in the order."""

    type: str
    name: str
    id: str
    step: int
    monthly_cost: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def billable(self) -> bool:
        return self.type not in FREE_TYPES

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("extra")
        data["billable"] = self.billable
        return data


@dataclass
class Inventory:
    resources: list[Resource] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def in_steps(self, steps: Iterable[int]) -> list[Resource]:
        wanted = set(steps)
        return [r for r in self.resources if r.step in wanted]

    def monthly_cost(self, steps: Iterable[int]) -> float:
        return round(sum(r.monthly_cost or 0.0 for r in self.in_steps(steps)), 2)


@dataclass
class Teardown:
    """Everything a teardown run needs, injected (tests hand in moto clients and a k8s double)."""

    names: Names
    aws: object  # llmctl.aws.session.AwsClients
    kube_factory: Callable[[], object] | None = None  # -> llmctl.k8s.client.Kube; raises when unreachable
    model_bucket: str | None = None  # only set when --delete-model-bucket named config's bucket
    config_model_bucket: str | None = None  # config's model bucket: kept out of step 5 unless named
    log: Callable[[str], None] = lambda line: None
    eksctl: object | None = None  # llmctl.eksctl.Eksctl (found on PATH when not given)
    lb_wait_s: float = 600.0
    namespace_wait_s: float = 300.0
    poll_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    _kube: object = field(default=None, init=False, repr=False)
    _kube_error: str | None = field(default=None, init=False, repr=False)
    _cache: dict | None = field(default=None, init=False, repr=False)  # read-only answers, during one discover()

    def _read(self, key, fetch: Callable[[], object]):
        """Within one `discover()` the same look-up is made once; steps always look afresh."""
        if self._cache is None:
            return fetch()
        if key not in self._cache:
            self._cache[key] = fetch()
        return self._cache[key]

    # --- clients -----------------------------------------------------------------------------
    def kube(self, cluster: dict):
        """The cluster's API, or None when the cluster is gone or unreachable (reason kept).

        Only asked for when the EKS cluster exists and is ours: a kubeconfig whose context still
        points at some other cluster must never be the one teardown deletes objects in.
        """
        if not (cluster.get("exists") and cluster.get("ours")):
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

    # --- discovery ---------------------------------------------------------------------------
    def discover(self, *, include_build: bool = True) -> Inventory:
        """Everything this deployment owns, each assigned to its teardown step."""
        self._cache = {}
        try:
            return self._discover(include_build)
        finally:
            self._cache = None

    def _discover(self, include_build: bool) -> Inventory:
        from llmctl.actions import cost

        inv = Inventory()
        cluster = self.cluster_info()
        if cluster.get("foreign"):
            inv.warnings.append(
                f"EKS cluster {self.names.cluster!r} exists but is not tagged {TAG_DEPLOYMENT}={self.names.deployment}; teardown leaves it alone"
            )
        inv.resources += self.lb_resources(cluster)
        inv.resources += self.k8s_resources(cluster)
        inv.resources += self.irsa_resources()
        inv.resources += self.cluster_resources(cluster)
        inv.resources += self.build_resources() if include_build else []
        seen = {r.id for r in inv.resources}
        for arn, tags in self.tagged().items():
            if arn not in seen and not _goes_with_cluster(tags, self.names.cluster):
                inv.resources.append(Resource(_type_of(arn), _name_of(arn), arn, 0, note="tagged for this deployment; llmctl has no step for this type"))
        if self._kube_error and self.kube_factory is not None and cluster.get("exists") and not cluster.get("foreign"):
            inv.warnings.append(f"{self._kube_error}; Kubernetes objects are not listed (eksctl deletes them with the cluster)")
        if not include_build:
            inv.resources = [r for r in inv.resources if r.step != 5]
        cost.price_resources(inv.resources, self.aws)
        return inv

    def tagged(self, filters: list[dict] | None = None) -> dict[str, dict[str, str]]:
        """ARN -> tags for every resource the Tagging API returns for all the given tag filters."""
        filters = filters or [
            {"Key": TAG_DEPLOYMENT, "Values": [self.names.deployment]},
            {"Key": TAG_MANAGED_BY, "Values": ["llmctl"]},
        ]
        def fetch() -> dict[str, dict[str, str]]:
            found: dict[str, dict[str, str]] = {}
            client = self.aws.client("resourcegroupstaggingapi")
            for page in client.get_paginator("get_resources").paginate(TagFilters=filters):
                for item in page.get("ResourceTagMappingList", []):
                    found[item["ResourceARN"]] = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
            return found

        return self._read(("tagged", repr(filters)), fetch)

    def cluster_tagged(self) -> dict[str, dict[str, str]]:
        """What the cluster's controllers and eksctl tagged for the cluster name."""
        c = self.names.cluster
        found: dict[str, dict[str, str]] = {}
        for flt in (
            [{"Key": f"kubernetes.io/cluster/{c}", "Values": ["owned"]}],
            [{"Key": LBC_CLUSTER_TAG, "Values": [c]}],
            [{"Key": EKSCTL_CLUSTER_TAGS[0], "Values": [c]}],
        ):
            found.update(self.tagged(flt))
        return found

    def cluster_info(self) -> dict:
        """Does the EKS cluster exist, and is it ours (its tags, or its eksctl stacks' tags)?"""
        return self._read("cluster", self._cluster_info)

    def _cluster_info(self) -> dict:
        from llmctl.aws.session import aws_error, error_code

        try:
            cluster = self.aws.client("eks").describe_cluster(name=self.names.cluster)["cluster"]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return {"exists": False, "ours": not self._foreign_stacks()}
            raise aws_error(exc, f"looking up EKS cluster {self.names.cluster}") from None
        ours = _is_ours(cluster.get("tags") or {}, self.names) or any(_is_ours(s["tags"], self.names) for s in self.stacks())
        issuer = ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer")
        return {"exists": True, "ours": ours, "foreign": not ours, "arn": cluster["arn"], "issuer": issuer,
                "version": cluster.get("version")}

    def _foreign_stacks(self) -> bool:
        stacks = self.stacks()
        return bool(stacks) and not any(_is_ours(s["tags"], self.names) for s in stacks)

    def stacks(self) -> list[dict]:
        """eksctl's stacks of this cluster: name prefix AND eksctl's cluster tag (never the name alone)."""
        return self._read("stacks", self._stacks)

    def _stacks(self) -> list[dict]:
        cfn = self.aws.client("cloudformation")
        stacks = []
        for page in cfn.get_paginator("describe_stacks").paginate():
            for stack in page.get("Stacks", []):
                tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
                if (
                    stack["StackName"].startswith(self.names.eksctl_stack_prefix)
                    and any(tags.get(k) == self.names.cluster for k in EKSCTL_CLUSTER_TAGS)
                    and stack.get("StackStatus") != "DELETE_COMPLETE"
                ):
                    stacks.append({"name": stack["StackName"], "id": stack["StackId"], "status": stack.get("StackStatus"), "tags": tags})
        return stacks

    def lb_resources(self, cluster: dict | None = None) -> list[Resource]:
        """Step 1: our LoadBalancer Services and the ELBs / target groups / SGs made for them."""
        cluster = cluster if cluster is not None else self.cluster_info()
        if not cluster.get("ours"):
            return []
        services = self._lb_services(cluster)
        found = [
            Resource("k8s_service", f"{s['metadata']['namespace']}/{s['metadata']['name']}", f"service/{s['metadata']['namespace']}/{s['metadata']['name']}", 1, note="type LoadBalancer")
            for s in services
        ]
        ours = {r.name for r in found}
        live = self._live_lb_services(cluster)
        for arn, tags in self.cluster_tagged().items():
            kind = _type_of(arn)
            service = next((tags[k] for k in K8S_SERVICE_TAGS if k in tags), "")
            if not (kind in ("aws_lb", "aws_elb", "aws_lb_target_group") or (kind == "aws_security_group" and service)):
                continue
            # Another Service's load balancer in our cluster is not ours while that Service lives;
            # once it is gone (or the cluster is), what is left is an orphan of our cluster.
            if live is not None and service in live and service not in ours:
                continue
            found.append(Resource(kind, _name_of(arn), arn, 1, note=f"for Service {service}" if service else "made by the cluster's controller", extra={"tags": tags}))
        return found

    def _live_lb_services(self, cluster: dict) -> set[str] | None:
        """Every LoadBalancer Service in the cluster (`ns/name`), or None without a reachable cluster."""
        kube = self.kube(cluster)
        if kube is None:
            return None
        return {
            f"{s['metadata']['namespace']}/{s['metadata']['name']}"
            for s in kube.list("v1", "Service") if (s.get("spec") or {}).get("type") == "LoadBalancer"
        }

    def _lb_services(self, cluster: dict) -> list[dict]:
        kube = self.kube(cluster)
        if kube is None:
            return []
        services = kube.list("v1", "Service", None, self.names.k8s_selector)
        return [s for s in services if (s.get("spec") or {}).get("type") == "LoadBalancer"]

    def k8s_resources(self, cluster: dict | None = None) -> list[Resource]:
        """Step 2: namespaces labelled for this deployment, labelled objects outside them, PVC volumes."""
        cluster = cluster if cluster is not None else self.cluster_info()
        if not cluster.get("ours"):
            return []
        found: list[Resource] = []
        kube = self.kube(cluster)
        if kube is not None:
            namespaces = {n["metadata"]["name"] for n in kube.list("v1", "Namespace", None, self.names.k8s_selector)}
            found += [Resource("k8s_namespace", ns, f"namespace/{ns}", 2) for ns in sorted(namespaces)]
            for obj, api_version, kind in self._labelled_objects(kube):
                ns = obj["metadata"].get("namespace")
                if ns in namespaces or (kind == "Service" and (obj.get("spec") or {}).get("type") == "LoadBalancer"):
                    continue
                ref = f"{kind.lower()}/{ns}/{obj['metadata']['name']}" if ns else f"{kind.lower()}/{obj['metadata']['name']}"
                found.append(Resource("k8s_object", ref, ref, 2, note=api_version, extra={"api_version": api_version, "kind": kind, "namespace": ns}))
        for arn, tags in self.cluster_tagged().items():
            if _type_of(arn) == "aws_ebs_volume" and any(k.startswith("kubernetes.io/created-for/pvc") for k in tags):
                pvc = f"{tags.get('kubernetes.io/created-for/pvc/namespace', '?')}/{tags.get('kubernetes.io/created-for/pvc/name', '?')}"
                found.append(Resource("aws_ebs_volume", _name_of(arn), arn, 2, note=f"for PVC {pvc}"))
        return found

    def _labelled_objects(self, kube):
        for api_version, kind in K8S_KINDS:
            if "." in api_version.split("/")[0] and not kube.has_kind(api_version, kind):
                continue  # a CRD kind that is not installed
            for obj in kube.list(api_version, kind, None, self.names.k8s_selector):
                yield obj, api_version, kind

    def irsa_resources(self) -> list[Resource]:
        role = self._role(self.names.irsa_role)
        return [Resource("aws_iam_role", role["RoleName"], role["Arn"], 3)] if role else []

    def _role(self, name: str) -> dict | None:
        from llmctl.aws.session import aws_error, error_code

        iam = self.aws.client("iam")
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise aws_error(exc, f"looking up IAM role {name}") from None
        tags = {t["Key"]: t["Value"] for t in role.get("Tags") or iam.list_role_tags(RoleName=name).get("Tags", [])}
        return role if _is_ours(tags, self.names) else None

    def cluster_resources(self, cluster: dict | None = None) -> list[Resource]:
        """Step 4: the EKS cluster, eksctl's stacks, the OIDC provider, what eksctl tagged."""
        cluster = cluster if cluster is not None else self.cluster_info()
        if not cluster.get("ours"):
            return []
        found: list[Resource] = []
        if cluster.get("exists"):
            found.append(Resource("aws_eks_cluster", self.names.cluster, cluster["arn"], 4, note=f"Kubernetes {cluster.get('version')}"))
        stack_names = set()
        for stack in self.stacks():
            stack_names.add(stack["name"])
            found.append(Resource("aws_cloudformation_stack", stack["name"], stack["id"], 4, note=stack["status"] or ""))
        for provider in self.oidc_providers(cluster.get("issuer")):
            found.append(Resource("aws_iam_openid_connect_provider", provider.split("/", 1)[1], provider, 4))
        seen = {r.id for r in found}
        for arn, tags in {**self.tagged(), **self.cluster_tagged()}.items():
            kind = _type_of(arn)
            if arn in seen or (kind in ("aws_lb", "aws_elb", "aws_lb_target_group", "aws_ebs_volume") and not tags.get("aws:cloudformation:stack-name")):
                continue
            if _goes_with_cluster(tags, self.names.cluster) and not (kind == "aws_security_group" and any(k in tags for k in K8S_SERVICE_TAGS)):
                stack = tags.get("aws:cloudformation:stack-name", "")
                found.append(Resource(kind, _name_of(arn), arn, 4, note=f"in stack {stack}" if stack else "deleted with the cluster", extra={"tags": tags}))
        return found

    def oidc_providers(self, issuer: str | None) -> list[str]:
        """The provider of the cluster's issuer, or any provider eksctl tagged for this cluster."""
        iam = self.aws.client("iam")
        host = issuer.split("://", 1)[-1] if issuer else None
        found = []
        for item in iam.list_open_id_connect_providers().get("OpenIDConnectProviderList", []):
            arn = item["Arn"]
            if host and arn.endswith(f":oidc-provider/{host}"):
                found.append(arn)
                continue
            tags = {t["Key"]: t["Value"] for t in iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=arn).get("Tags", [])}
            if any(tags.get(k) == self.names.cluster for k in EKSCTL_CLUSTER_TAGS) or _is_ours(tags, self.names):
                found.append(arn)
        return found

    def build_resources(self) -> list[Resource]:
        """Step 5: CodeBuild project + role, ECR repository, tagged buckets, log groups, secrets."""
        from llmctl.aws.session import error_code

        found: list[Resource] = []
        try:
            projects = self.aws.client("codebuild").batch_get_projects(names=[self.names.codebuild_project]).get("projects", [])
        except ClientError as exc:
            if error_code(exc) not in ("ResourceNotFoundException", "InvalidInputException"):
                raise
            projects = []
        for project in projects:
            if _is_ours({t["key"]: t["value"] for t in project.get("tags") or []}, self.names):
                found.append(Resource("aws_codebuild_project", project["name"], project["arn"], 5))
        role = self._role(self.names.codebuild_role)
        if role:
            found.append(Resource("aws_iam_role", role["RoleName"], role["Arn"], 5, note="CodeBuild service role"))
        ecr = self.aws.client("ecr")
        try:
            repos = ecr.describe_repositories(repositoryNames=[self.names.ecr_repository])["repositories"]
        except ClientError as exc:
            if error_code(exc) != "RepositoryNotFoundException":
                raise
            repos = []
        for repo in repos:
            tags = {t["Key"]: t["Value"] for t in ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"]).get("tags", [])}
            if _is_ours(tags, self.names):
                found.append(Resource("aws_ecr_repository", repo["repositoryName"], repo["repositoryArn"], 5))
        seen = {r.id for r in found}
        for arn in self.tagged():
            kind = _type_of(arn)
            if arn in seen or kind not in ("aws_s3_bucket", "aws_cloudwatch_log_group", "aws_secretsmanager_secret", "aws_ecr_repository", "aws_codebuild_project"):
                continue
            name = _name_of(arn)
            if kind == "aws_s3_bucket" and name == self.config_model_bucket:
                if self.model_bucket != name:
                    continue  # the model bucket stays unless --delete-model-bucket names it
                found.append(Resource(kind, name, arn, 5, note="model bucket (--delete-model-bucket)"))
            else:
                found.append(Resource(kind, name, arn, 5))
        if self.model_bucket and not any(r.name == self.model_bucket for r in found):
            found += self._named_model_bucket()
        return found

    def _named_model_bucket(self) -> list[Resource]:
        """The user named the model bucket and it matches config: theirs to delete, tagged or not."""
        from llmctl.aws.session import error_code

        try:
            self.aws.client("s3").head_bucket(Bucket=self.model_bucket)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return []
            raise
        return [Resource("aws_s3_bucket", self.model_bucket, f"arn:aws:s3:::{self.model_bucket}", 5, note="model bucket (--delete-model-bucket)")]

    # --- the plan ----------------------------------------------------------------------------
    def plan(self, *, include_build: bool) -> Plan:
        """Steps 1-4 (`cluster down`), plus 5 with `--all`; each observes fresh state."""
        plan = Plan()
        plan.add(Step(STEP_TITLES[1], "k8s", lambda: _act(self.lb_resources()), self.delete_load_balancers))
        plan.add(Step(STEP_TITLES[2], "k8s", lambda: _act(self.k8s_resources()), self.delete_k8s_objects))
        plan.add(Step(STEP_TITLES[3], "iam", lambda: _act(self.irsa_resources()), lambda: self.delete_roles(self.irsa_resources())))
        plan.add(Step(STEP_TITLES[4], "eks", lambda: _act(self.cluster_resources()), self.delete_cluster))
        if include_build:
            plan.add(Step(STEP_TITLES[5], "build", lambda: _act(self.build_resources()), self.delete_build_resources))
        return plan

    # --- step 1 ------------------------------------------------------------------------------
    def delete_load_balancers(self) -> str:
        cluster = self.cluster_info()
        services = self._lb_services(cluster)
        kube = self.kube(cluster)
        for svc in services:
            meta = svc["metadata"]
            self.log(f"deleting Service {meta['namespace']}/{meta['name']} (its load balancer goes with it)")
            # The Service disappears when the cloud controller has removed its load balancer
            # (the service.kubernetes.io/load-balancer-cleanup finalizer): wait for that by watching.
            kube.delete("v1", "Service", meta["name"], meta["namespace"], wait=True, timeout_s=self.lb_wait_s)
        aws_side = lambda: [r for r in self.lb_resources() if r.type != "k8s_service"]
        if services:
            remaining = self._wait_until_empty(aws_side, self.lb_wait_s, "load balancers to be deleted by the cluster's controller")
        else:
            remaining = aws_side()
        directly = 0
        if remaining:
            # No controller left to do it (cluster gone or stuck): they are tagged as owned by our
            # cluster, so delete them ourselves, load balancers before their target groups and SGs.
            order = {"aws_lb": 0, "aws_elb": 0, "aws_lb_target_group": 1, "aws_security_group": 2}
            for res in sorted(remaining, key=lambda r: order[r.type]):
                self._delete_lb_resource(res)
                directly += 1
            left = self._wait_until_empty(aws_side, self.lb_wait_s, "load balancers to disappear")
            if left:
                raise LlmctlError(
                    f"{len(left)} load-balancer resource(s) still exist: {', '.join(r.name for r in left)}",
                    hint="check the EC2 console for what still uses them, then re-run `llmctl teardown`",
                )
        return f"{len(services)} Service(s) deleted" + (f", {directly} AWS resource(s) deleted directly" if directly else "")

    def _delete_lb_resource(self, res: Resource) -> None:
        from llmctl.aws.session import aws_error, error_code

        self.log(f"deleting {res.type} {res.name}")
        try:
            if res.type == "aws_lb":
                self.aws.client("elbv2").delete_load_balancer(LoadBalancerArn=res.id)
            elif res.type == "aws_elb":
                self.aws.client("elb").delete_load_balancer(LoadBalancerName=res.name)
            elif res.type == "aws_lb_target_group":
                self.aws.client("elbv2").delete_target_group(TargetGroupArn=res.id)
            else:
                self._retry_dependency(lambda: self.aws.client("ec2").delete_security_group(GroupId=res.name))
        except ClientError as exc:
            if error_code(exc) in ("LoadBalancerNotFound", "TargetGroupNotFound", "InvalidGroup.NotFound"):
                return
            raise aws_error(exc, f"deleting {res.type} {res.name}") from None

    def _retry_dependency(self, call: Callable[[], object], attempts: int = 12) -> None:
        """Security groups and volumes stay 'in use' for a while after what used them is gone."""
        from llmctl.aws.session import error_code

        for attempt in range(attempts):
            try:
                call()
                return
            except ClientError as exc:
                if error_code(exc) not in ("DependencyViolation", "VolumeInUse") or attempt == attempts - 1:
                    raise
                self.sleep(self.poll_s)

    def _wait_until_empty(self, probe: Callable[[], list], timeout: float, what: str) -> list:
        """Poll `probe` (read-only AWS calls) until it finds nothing; back off up to `poll_s`."""
        deadline = self.clock() + timeout
        remaining = probe()
        if remaining:
            self.log(f"waiting for {what} ({len(remaining)} left)")
        attempt = 0
        while remaining and self.clock() < deadline:
            self.sleep(min(self.poll_s, 0.25 * 2**attempt))
            attempt += 1
            remaining = probe()
        return remaining

    # --- step 2 ------------------------------------------------------------------------------
    def delete_k8s_objects(self) -> str:
        cluster = self.cluster_info()
        found = self.k8s_resources(cluster)
        kube = self.kube(cluster)
        objects = [r for r in found if r.type == "k8s_object"]
        namespaces = [r for r in found if r.type == "k8s_namespace"]
        for res in objects:
            self.log(f"deleting {res.name}")
            kube.delete(res.extra["api_version"], res.extra["kind"], res.name.rsplit("/", 1)[-1], res.extra["namespace"])
        for res in namespaces:
            self.log(f"deleting namespace {res.name} and everything in it")
            kube.delete("v1", "Namespace", res.name, None, wait=True, timeout_s=self.namespace_wait_s)
        volumes = [r for r in self.k8s_resources() if r.type == "aws_ebs_volume"]
        for vol in volumes:  # PVC volumes the CSI driver did not get to: tagged as owned by our cluster
            self.log(f"deleting EBS volume {vol.name} ({vol.note})")
            self._retry_dependency(lambda vol=vol: self.aws.client("ec2").delete_volume(VolumeId=vol.name))
        return f"{len(objects)} object(s), {len(namespaces)} namespace(s)" + (f", {len(volumes)} volume(s)" if volumes else "")

    # --- step 3 (and the CodeBuild role in step 5) ---------------------------------------------
    def delete_roles(self, roles: list[Resource]) -> str:
        from llmctl.aws.session import aws_error, error_code

        iam = self.aws.client("iam")
        for res in roles:
            name = res.name
            self.log(f"deleting IAM role {name} and its policies")
            try:
                for policy in iam.list_role_policies(RoleName=name).get("PolicyNames", []):
                    iam.delete_role_policy(RoleName=name, PolicyName=policy)
                for policy in iam.list_attached_role_policies(RoleName=name).get("AttachedPolicies", []):
                    iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
                for profile in iam.list_instance_profiles_for_role(RoleName=name).get("InstanceProfiles", []):
                    iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
                iam.delete_role(RoleName=name)
            except ClientError as exc:
                if error_code(exc) != "NoSuchEntity":
                    raise aws_error(exc, f"deleting IAM role {name}") from None
        return ", ".join(r.name for r in roles)

    # --- step 4 ------------------------------------------------------------------------------
    def delete_cluster(self) -> str:
        from llmctl.aws.session import aws_error, error_code

        before = self.cluster_resources()
        if any(r.type in ("aws_eks_cluster", "aws_cloudformation_stack") for r in before):
            from llmctl.eksctl import Eksctl

            self.log(f"running eksctl delete cluster --name {self.names.cluster} --region {self.names.region} --wait")
            (self.eksctl or Eksctl()).delete_cluster(self.names.cluster, self.names.region, on_line=self.log)
        stacks = self.stacks()
        if stacks:
            raise LlmctlError(
                f"CloudFormation stack(s) still present after eksctl: {', '.join(s['name'] + ' (' + str(s['status']) + ')' for s in stacks)}",
                hint="open the stack's Events in the CloudFormation console for the resource that blocks deletion; fix it, then re-run",
            )
        iam = self.aws.client("iam")
        for arn in self.oidc_providers(None):  # eksctl removes it; this clears one left by a failed run
            self.log(f"deleting leftover OIDC provider {arn}")
            try:
                iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
            except ClientError as exc:
                if error_code(exc) != "NoSuchEntity":
                    raise aws_error(exc, "deleting the cluster's OIDC provider") from None
        logs = self.aws.client("logs")
        for arn in self.tagged():
            if _type_of(arn) == "aws_cloudwatch_log_group" and _name_of(arn).startswith(f"/aws/eks/{self.names.cluster}/"):
                logs.delete_log_group(logGroupName=_name_of(arn))  # control-plane logs outlive the cluster
        return f"cluster {self.names.cluster} deleted"

    # --- step 5 ------------------------------------------------------------------------------
    def delete_build_resources(self) -> str:
        from llmctl.aws.session import aws_error, error_code

        done = []
        for res in self.build_resources():
            self.log(f"deleting {res.type} {res.name}")
            try:
                if res.type == "aws_codebuild_project":
                    self.aws.client("codebuild").delete_project(name=res.name)
                elif res.type == "aws_iam_role":
                    self.delete_roles([res])
                elif res.type == "aws_ecr_repository":
                    self.aws.client("ecr").delete_repository(repositoryName=res.name, force=True)
                elif res.type == "aws_s3_bucket":
                    empty_bucket(self.aws.client("s3"), res.name)
                    self.aws.client("s3").delete_bucket(Bucket=res.name)
                elif res.type == "aws_cloudwatch_log_group":
                    self.aws.client("logs").delete_log_group(logGroupName=res.name)
                elif res.type == "aws_secretsmanager_secret":
                    self.aws.client("secretsmanager").delete_secret(SecretId=res.id, ForceDeleteWithoutRecovery=True)
            except LlmctlError:
                raise
            except ClientError as exc:
                if error_code(exc) in ("ResourceNotFoundException", "RepositoryNotFoundException", "NoSuchBucket", "NoSuchEntity"):
                    continue
                raise aws_error(exc, f"deleting {res.type} {res.name}") from None
            done.append(res.name)
        return f"{len(done)} resource(s) deleted"

    # --- verification ------------------------------------------------------------------------
    def verify(self, *, include_build: bool) -> dict:
        """Discover again: what is left in this run's scope, each with how to remove it."""
        inv = self.discover(include_build=True)
        steps = (0, 1, 2, 3, 4, 5) if include_build else (0, 1, 2, 3, 4)
        left = inv.in_steps(steps)
        kept = [] if include_build else inv.in_steps([5])
        return {
            "clean": not any(r.billable for r in left),
            "leftovers": [{**r.to_dict(), "remove": removal_hint(r, self.names)} for r in left],
            "kept": [r.to_dict() for r in kept],
            "kept_monthly_cost": round(sum(r.monthly_cost or 0 for r in kept), 2),
            "warnings": inv.warnings,
        }


# --- helpers -----------------------------------------------------------------------------------
def _act(resources: list) -> str:
    return "delete" if resources else "none"


def _is_ours(tags: dict[str, str], names: Names) -> bool:
    return tags.get(TAG_DEPLOYMENT) == names.deployment and tags.get(TAG_MANAGED_BY, "llmctl") == "llmctl"


def _goes_with_cluster(tags: dict[str, str], cluster: str) -> bool:
    """Created by eksctl or EKS for this cluster: the cluster's deletion removes it."""
    return (
        tags.get("aws:cloudformation:stack-name", "").startswith(f"eksctl-{cluster}-")
        or any(tags.get(k) == cluster for k in EKSCTL_CLUSTER_TAGS)
        or tags.get("eks:cluster-name") == cluster
        or tags.get("aws:eks:cluster-name") == cluster
    )


_ARN_TYPES = {
    ("s3", ""): "aws_s3_bucket",
    ("logs", "log-group"): "aws_cloudwatch_log_group",
    ("secretsmanager", "secret"): "aws_secretsmanager_secret",
    ("ecr", "repository"): "aws_ecr_repository",
    ("codebuild", "project"): "aws_codebuild_project",
    ("eks", "cluster"): "aws_eks_cluster",
    ("eks", "nodegroup"): "aws_eks_node_group",
    ("cloudformation", "stack"): "aws_cloudformation_stack",
    ("elasticloadbalancing", "targetgroup"): "aws_lb_target_group",
    ("ec2", "security-group"): "aws_security_group",
    ("ec2", "instance"): "aws_instance",
    ("ec2", "volume"): "aws_ebs_volume",
    ("ec2", "natgateway"): "aws_nat_gateway",
    ("ec2", "elastic-ip"): "aws_eip",
    ("ec2", "vpc"): "aws_vpc",
    ("ec2", "subnet"): "aws_subnet",
    ("autoscaling", "autoScalingGroup"): "aws_autoscaling_group",
}


def _arn_parts(arn: str) -> tuple[str, str, str]:
    """(service, resource type, resource id) of an ARN."""
    parts = arn.split(":", 5)
    service, resource = parts[2], parts[5] if len(parts) > 5 else ""
    if service == "s3":
        return service, "", resource
    cut = min((i for i in (resource.find("/"), resource.find(":")) if i >= 0), default=-1)
    if cut < 0:
        return service, resource, resource
    return service, resource[:cut], resource[cut + 1 :]


def _type_of(arn: str) -> str:
    service, rtype, rid = _arn_parts(arn)
    if service == "elasticloadbalancing" and rtype == "loadbalancer":
        return "aws_lb" if rid.split("/")[0] in ("app", "net", "gwy") else "aws_elb"
    return _ARN_TYPES.get((service, rtype), f"aws_{service}_{rtype}".replace("-", "_"))


def _name_of(arn: str) -> str:
    service, rtype, rid = _arn_parts(arn)
    if service == "elasticloadbalancing" and rtype == "loadbalancer":
        return rid.split("/")[-2] if rid.split("/")[0] in ("app", "net", "gwy") else rid
    if service == "elasticloadbalancing" and rtype == "targetgroup":
        return rid.split("/")[0]
    if service == "logs" and rid.endswith(":*"):
        return rid[:-2]
    if service == "secretsmanager":
        return rid.rsplit("-", 1)[0]  # the ARN adds "-" and 6 random characters to the name
    return rid


def empty_bucket(s3, bucket: str) -> int:
    """Delete every object version and delete marker (a versioned bucket cannot go otherwise)."""
    count = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        keys = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True})
            count += len(keys[start : start + 1000])
    return count


def removal_hint(res: Resource, names: Names) -> str:
    """How a user removes one leftover by hand (shown when verification finds it)."""
    r = f"--region {names.region}"
    return {
        "aws_lb": f"aws elbv2 delete-load-balancer --load-balancer-arn {res.id} {r}",
        "aws_elb": f"aws elb delete-load-balancer --load-balancer-name {res.name} {r}",
        "aws_lb_target_group": f"aws elbv2 delete-target-group --target-group-arn {res.id} {r}",
        "aws_security_group": f"aws ec2 delete-security-group --group-id {res.name} {r}",
        "aws_ebs_volume": f"aws ec2 delete-volume --volume-id {res.name} {r}",
        "aws_iam_role": f"llmctl teardown (or delete role {res.name} in the IAM console: policies first)",
        "aws_eks_cluster": f"eksctl delete cluster --name {names.cluster} {r} --wait",
        "aws_cloudformation_stack": f"aws cloudformation delete-stack --stack-name {res.name} {r}",
        "aws_iam_openid_connect_provider": f"aws iam delete-open-id-connect-provider --open-id-connect-provider-arn {res.id}",
        "aws_codebuild_project": f"aws codebuild delete-project --name {res.name} {r}",
        "aws_ecr_repository": f"aws ecr delete-repository --repository-name {res.name} --force {r}",
        "aws_s3_bucket": f"aws s3 rb s3://{res.name} --force",
        "aws_cloudwatch_log_group": f"aws logs delete-log-group --log-group-name {res.name} {r}",
        "aws_secretsmanager_secret": f"aws secretsmanager delete-secret --secret-id {res.id} --force-delete-without-recovery {r}",
        "k8s_service": f"kubectl delete service -n {res.name.replace('/', ' ')}",
        "k8s_namespace": f"kubectl delete namespace {res.name}",
    }.get(res.type, f"delete it in the AWS console (ARN {res.id}), or `llmctl teardown` for what llmctl manages")

