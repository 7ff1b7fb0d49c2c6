"""`llmctl cluster up | status | render`: an eksctl-built EKS GPU cluster, ready for `deploy`.

`ClusterManager.preflight()` checks what would make `eksctl create cluster` fail half an hour in
(GPU quota, instance offerings, tools, identity, model fit) and prices the cluster. `plan()`
returns the steps of `cluster up` as a `plan.Plan`; each step observes AWS / Kubernetes, so a
re-run after any failure skips what is done and resumes:

1. EKS cluster (`eksctl create cluster -f`), 2. IAM OIDC provider, 3. GPU node group,
4. kubeconfig context, 5. IRSA role, 6. NVIDIA device plugin, 7. wait for an allocatable GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmctl.config.names import LABEL_INSTANCE, LABEL_MANAGED_BY, TAG_DEPLOYMENT, Names
from llmctl.errors import LlmctlError
from llmctl.plan import Action, Plan, Step

GPU = "nvidia.com/gpu"
DEVICE_PLUGIN_IMAGE = "k8s-device-plugin"
NO_BF16_GPUS = {"T4", "V100", "M60", "K80", "T4g"}
EKSCTL_NAME_TAG = "alpha.eksctl.io/cluster-name"


@dataclass
class Check:
    name: str
    status: str  # pass | warn | fail
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Preflight:
    checks: list[Check]
    cost: object  # pricing.CostEstimate
    fit: object | None = None  # fit.FitReport
    quota: object | None = None  # quotas.QuotaCheck
    instance: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "checks": [c.to_dict() for c in self.checks],
            "cost": self.cost.to_dict(),
            "fit": self.fit.to_dict() if self.fit else None,
            "quota": self.quota.to_dict() if self.quota else None,
            "instance": self.instance,
        }

    def failure(self) -> LlmctlError:
        failed = [c for c in self.checks if c.status == "fail"]
        first = failed[0]
        more = f" (and {len(failed) - 1} more failed check(s) above)" if len(failed) > 1 else ""
        return LlmctlError(f"pre-flight: {first.name}: {first.detail}{more}", hint=first.fix or None)


# -- pure rendering ----------------------------------------------------------------------------

def render_context(cfg, names: Names) -> dict:
    cluster = cfg.cluster.model_dump()
    cluster.update(name=names.cluster, region=names.region)
    node_labels = {**cfg.cluster.node_labels, "llmctl.io/gpu": "true", TAG_DEPLOYMENT: names.deployment}
    return {"cluster": cluster, "tags": dict(names.aws_tags), "node_labels": node_labels}


def render_cluster_config(cfg, names: Names) -> str:
    """The eksctl ClusterConfig YAML for this deployment (pure: config in, text out)."""
    from llmctl.render import render_text

    return render_text("cluster/clusterconfig.yaml.j2", **render_context(cfg, names))


def device_plugin_objects(cfg, names: Names) -> list[dict]:
    from llmctl.render import render_documents

    return render_documents("cluster/nvidia-device-plugin.yaml.j2", labels=names.k8s_labels,
                            version=cfg.cluster.device_plugin_version)


def gpu_allocatable(node: dict) -> int:
    value = ((node.get("status") or {}).get("allocatable") or {}).get(GPU, "0")
    try:
        return int(str(value))
    except ValueError:
        return 0


def node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _is_device_plugin(ds: dict) -> bool:
    containers = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return "nvidia-device-plugin" in ds["metadata"]["name"] or any(
        DEVICE_PLUGIN_IMAGE in str(c.get("image", "")) for c in containers)


def _ours(labels: dict, names: Names) -> bool:
    return labels.get(LABEL_MANAGED_BY) == "llmctl" and labels.get(LABEL_INSTANCE) == names.deployment


# -- the manager -------------------------------------------------------------------------------

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
        self._tool_probe = tool_probe
        self._pricing_client_factory = pricing_client_factory
        self._eksctl = None
        self._kube = None
        self._kube_context: str | None = None

    # -- clients -------------------------------------------------------------------------------

    @property
    def eksctl(self):
        if self._eksctl is None:
            from llmctl.eksctl import Eksctl

            self._eksctl = (self._eksctl_factory or Eksctl)()
        return self._eksctl

    def context_name(self) -> str | None:
        from llmctl.eksctl import kubeconfig_context

        return kubeconfig_context(self.names.cluster, self.names.region)

    def kube(self):
        context = self.context_name()
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

    @property
    def config_file(self) -> Path:
        return self.workdir / f"{self.names.cluster}-clusterconfig.yaml"

    def write_config_file(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(render_cluster_config(self.cfg, self.names))
        return self.config_file

    def _stream(self, title: str) -> Callable[[str], None]:
        self.output.info(f"── {title}")
        return lambda line: self.output.log_line(f"   │ {line}")

    # -- AWS observations -------------------------------------------------------------------------

    def describe_cluster(self) -> dict | None:
        from llmctl.aws.session import aws_error, error_code

        try:
            return self.aws.client("eks").describe_cluster(name=self.names.cluster)["cluster"]
        except Exception as exc:  # noqa: BLE001 - botocore ClientError, sorted by code
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise aws_error(exc, f"looking up EKS cluster {self.names.cluster}") from None

    def _usable_cluster(self) -> dict | None:
        cluster = self.describe_cluster()
        if cluster is None:
            return None
        status = cluster.get("status")
        if status in ("FAILED", "DELETING"):
            raise LlmctlError(f"EKS cluster {self.names.cluster} is {status}",
                              hint="wait for the deletion to finish, or delete it (`llmctl cluster down`), then re-run")
        return cluster

    def issuer(self) -> str | None:
        cluster = self.describe_cluster()
        return (((cluster or {}).get("identity") or {}).get("oidc") or {}).get("issuer")

    def describe_nodegroup(self) -> dict | None:
        from llmctl.aws.session import aws_error, error_code

        try:
            return self.aws.client("eks").describe_nodegroup(
                clusterName=self.names.cluster, nodegroupName=self.cfg.cluster.nodegroup_name)["nodegroup"]
        except Exception as exc:  # noqa: BLE001 - botocore ClientError, sorted by code
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise aws_error(exc, f"looking up node group {self.cfg.cluster.nodegroup_name}") from None

    def oidc_provider(self, issuer: str) -> str | None:
        from llmctl.aws.irsa import issuer_host

        host = issuer_host(issuer)
        for item in self.aws.client("iam").list_open_id_connect_providers().get("OpenIDConnectProviderList", []):
            if item["Arn"].endswith(f":oidc-provider/{host}"):
                return item["Arn"]
        return None

    @property
    def partition(self) -> str:
        return self.aws.identity()["Arn"].split(":")[1]

    # -- pre-flight -----------------------------------------------------------------------------

    def preflight(self, live_prices: bool = True) -> Preflight:
        from llmctl import pricing
        from llmctl.actions.fit import check_fit, read_model_metadata
        from llmctl.aws.ec2 import describe_instance_types, offered_zones
        from llmctl.aws.quotas import check_gpu_quota

        c = self.cfg.cluster
        checks: list[Check] = []
        identity = self.aws.identity()  # no identity, no point going on: raises with the fix
        checks.append(Check("aws identity", "pass", f"{identity['Arn']} (account {identity['Account']})"))
        checks.extend(self._tool_checks())
        checks.append(self._existing_cluster_check())
        if not self.cfg.model.bucket:
            checks.append(Check("model bucket", "fail", "model.bucket is not set; the IRSA role grants read access to it",
                                "set model.bucket (and model.prefix) in llmctl.yaml"))

        ec2 = self.aws.client("ec2")
        infos = describe_instance_types(ec2, c.instance_types)
        missing = [t for t in c.instance_types if t not in infos]
        if missing:
            checks.append(Check("instance types", "fail", f"{', '.join(missing)} unknown to EC2 in {self.names.region}",
                                "fix cluster.instance_types (e.g. g4dn.xlarge)"))
        non_gpu = [t for t, i in infos.items() if not i.gpus]
        if non_gpu:
            checks.append(Check("instance types", "fail", f"{', '.join(non_gpu)} has no GPU",
                                "use a GPU type (g4dn, g5, g6, g6e, p3, p4d)"))
        quota = None
        primary = c.instance_types[0]
        instance: dict = {}
        if infos:
            biggest = max(infos.values(), key=lambda i: i.vcpus)
            instance = infos.get(primary, biggest).to_dict()
            for itype in infos:
                checks.append(self._offering_check(itype, offered_zones(ec2, itype)))
            quota = check_gpu_quota(self.aws.client("service-quotas"), biggest.instance_type, biggest.vcpus,
                                    c.nodes_max, c.spot, self.names.region)
            checks.append(Check("gpu quota", quota.status, quota.detail,
                                quota.request if quota.status != "pass" else ""))

        spec = self._spec(primary, infos.get(primary))
        fit = None
        model_gb = None
        if spec is not None:
            manifest = config_json = None
            if self.cfg.model.bucket:
                manifest, config_json = read_model_metadata(self.aws.client("s3"), self.cfg.model.bucket,
                                                            self.cfg.model.prefix)
            fit = check_fit(self.cfg, spec, manifest, config_json)
            checks.append(Check("model fit", fit.status, fit.detail, fit.fix))
            checks.extend(Check("dtype", "warn", w, "set model.dtype: float16") for w in fit.warnings)
            if fit.weights_bytes and fit.weights_source and fit.weights_source.startswith("manifest"):
                model_gb = fit.weights_bytes / 1e9

        node_hourly, source = None, None
        if live_prices and not c.spot:
            factory = self._pricing_client_factory or (lambda: pricing.pricing_client(self.cfg.aws.profile))
            try:
                node_hourly = pricing.live_node_price(factory(), primary, self.names.region)
            except Exception:  # noqa: BLE001 - the Pricing API is optional
                node_hourly = None
            source = "AWS Pricing API (node price) + price table" if node_hourly is not None else None
        if node_hourly is None and primary not in pricing.INSTANCES:
            checks.append(Check("price", "warn", f"{primary} is not in the price table; GPU node cost unknown",
                                "see https://aws.amazon.com/ec2/pricing/on-demand/"))
            node_hourly, source = 0.0, f"price table (as of {pricing.PRICES_AS_OF}); {primary} not priced"
        cost = pricing.estimate(self.cfg, node_hourly=node_hourly, source=source, model_gb=model_gb)
        return Preflight(checks, cost, fit, quota, instance)

    def _tool_checks(self) -> list[Check]:
        from llmctl.tools import INSTALL_HINTS, probe

        out = []
        for name in ("eksctl", "kubectl"):
            tool = (self._tool_probe or probe)(name)
            if tool.path is None:
                out.append(Check(name, "fail", "not found on PATH", INSTALL_HINTS[name]))
            elif not tool.supported:
                out.append(Check(name, "fail", f"{tool.version or 'unknown version'} at {tool.path}",
                                 f"upgrade to {tool.minimum} or newer; {INSTALL_HINTS[name]}"))
            else:
                out.append(Check(name, "pass", f"{tool.version} at {tool.path}"))
        return out

    def _existing_cluster_check(self) -> Check:
        cluster = self.describe_cluster()
        if cluster is None:
            return Check("cluster", "pass", f"{self.names.cluster} does not exist yet: it will be created")
        tags = cluster.get("tags") or {}
        if tags.get(TAG_DEPLOYMENT) != self.names.deployment:
            return Check("cluster", "fail", f"an EKS cluster named {self.names.cluster} exists and is not tagged "
                         f"{TAG_DEPLOYMENT}={self.names.deployment}",
                         "set cluster.name to another name; llmctl never adopts a cluster it did not create")
        detail = f"{self.names.cluster} exists ({cluster.get('status')}, Kubernetes {cluster.get('version')})"
        if cluster.get("version") != self.cfg.cluster.kubernetes_version:
            return Check("cluster", "warn", f"{detail}; config asks for {self.cfg.cluster.kubernetes_version}",
                         "upgrade with `eksctl upgrade cluster`, or set cluster.kubernetes_version to match")
        return Check("cluster", "pass", detail)

    def _offering_check(self, itype: str, zones: list[str]) -> Check:
        wanted = self.cfg.cluster.availability_zones
        if not zones:
            return Check(f"{itype} offered", "fail", f"{itype} is not offered in {self.names.region}",
                         "pick another region (aws.region) or instance type")
        missing = [z for z in wanted if z not in zones]
        if missing:
            return Check(f"{itype} offered", "fail", f"{itype} is not offered in {', '.join(missing)} "
                         f"(offered in {', '.join(zones)})", "set cluster.availability_zones to zones that offer it")
        return Check(f"{itype} offered", "pass", f"in {', '.join(wanted or zones)}")

    def _spec(self, itype: str, info) -> object | None:
        from llmctl import pricing

        if itype in pricing.INSTANCES:
            return pricing.INSTANCES[itype]
        if info is None or not info.gpus:
            return None
        return pricing.InstanceSpec(itype, info.vcpus, info.memory_mib / 1024, info.gpus, info.gpu_model or "GPU",
                                    info.gpu_memory_mib / 1024 / info.gpus, info.gpu_model not in NO_BF16_GPUS,
                                    0.0, 0.0)

    # -- the plan -------------------------------------------------------------------------------

    def plan(self, gpu_timeout_s: float | None = None) -> Plan:
        plan = Plan()
        for step in (self._cluster_step(), self._oidc_step(), self._nodegroup_step(), self._kubeconfig_step(),
                     self._irsa_step(), self._device_plugin_step(), self._gpu_wait_step(gpu_timeout_s)):
            plan.add(step)
        return plan

    def _cluster_step(self) -> Step:
        def observe() -> Action:
            return "none" if self._usable_cluster() is not None else "create"

        def apply() -> str:
            path = self.write_config_file()
            self.eksctl.create_cluster(path, self._stream(f"eksctl create cluster -f {path} (15-25 minutes)"))
            return f"Kubernetes {self.cfg.cluster.kubernetes_version} in {self.names.region}"

        return Step(f"EKS cluster {self.names.cluster}", "eks-cluster", observe, apply,
                    detail="eksctl create cluster")

    def _oidc_step(self) -> Step:
        def observe() -> Action:
            issuer = self.issuer()
            return "none" if issuer and self.oidc_provider(issuer) else "create"

        def apply() -> str:
            path = self.write_config_file()
            self.eksctl.associate_oidc_provider(path, self._stream("eksctl utils associate-iam-oidc-provider"))
            return self.issuer()

        return Step("IAM OIDC provider", "iam-oidc-provider", observe, apply, detail="for IRSA")

    def _nodegroup_step(self) -> Step:
        c = self.cfg.cluster

        def observe() -> Action:
            if self.describe_cluster() is None:
                return "create"
            return "none" if self.describe_nodegroup() is not None else "create"

        def apply() -> str:
            path = self.write_config_file()
            self.eksctl.create_nodegroup(path, c.nodegroup_name,
                                         self._stream(f"eksctl create nodegroup --include {c.nodegroup_name}"))
            return None

        kind = "spot" if c.spot else "on-demand"
        return Step(f"GPU node group {c.nodegroup_name}", "eks-nodegroup", observe, apply,
                    detail=f"{c.nodes_desired} x {'/'.join(c.instance_types)} {kind} ({c.nodes_min}-{c.nodes_max})")

    def _kubeconfig_step(self) -> Step:
        def observe() -> Action:
            return "none" if self.context_name() else "create"

        def apply() -> str:
            self.eksctl.write_kubeconfig(self.names.cluster, self.names.region, self._stream("eksctl utils write-kubeconfig"))
            return self.context_name()

        return Step("kubeconfig context", "kubeconfig", observe, apply)

    def _irsa_role(self):
        from llmctl.aws.irsa import irsa_role_step

        issuer = self.issuer()
        if issuer is None:
            return None
        return irsa_role_step(
            self.aws.client("iam"), self.names.irsa_role, account_id=self.aws.account_id, issuer=issuer,
            namespace=self.names.namespace, service_account=self.names.service_account,
            bucket=self.cfg.model.bucket, prefix=self.cfg.model.prefix, tags=self.names.aws_tags,
            partition=self.partition)

    def _irsa_step(self) -> Step:
        def observe() -> Action:
            inner = self._irsa_role()
            return "create" if inner is None else inner.observe()

        def apply() -> str | None:
            inner = self._irsa_role()
            if inner is None:
                raise LlmctlError(f"cluster {self.names.cluster} has no OIDC issuer; cannot create the IRSA role",
                                  hint="re-run `llmctl cluster up`")
            return inner.apply()

        return Step(f"IAM role {self.names.irsa_role}", "iam-role", observe, apply,
                    detail=f"IRSA for {self.names.namespace}/{self.names.service_account}: read "
                           f"s3://{self.cfg.model.bucket}/{self.cfg.model.prefix}/")

    def foreign_device_plugin(self) -> str | None:
        """A device plugin the node image or someone else runs (not ours), as `namespace/name`."""
        for ds in self.kube().list("apps/v1", "DaemonSet"):
            if _is_device_plugin(ds) and not _ours(ds["metadata"].get("labels") or {}, self.names):
                return f"{ds['metadata']['namespace']}/{ds['metadata']['name']}"
        return None

    def _device_plugin_step(self) -> Step:
        version = self.cfg.cluster.device_plugin_version
        step = Step(f"NVIDIA device plugin {version}", "k8s-daemonset", lambda: "none", lambda: None,
                    detail="DaemonSet kube-system/nvidia-device-plugin-daemonset")

        def observe() -> Action:
            if self.describe_cluster() is None or self.context_name() is None:
                return "create"
            if self.cfg.cluster.ami_family == "Bottlerocket":
                step.detail = "Bottlerocket runs the NVIDIA device plugin on the host"
                return "none"
            foreign = self.foreign_device_plugin()
            if foreign:
                step.detail = f"already running as {foreign} (not managed by llmctl)"
                return "none"
            result = self.kube().apply_all(device_plugin_objects(self.cfg, self.names), dry_run=True)
            actions = {r.action for r in result}
            return "create" if "created" in actions else ("update" if "updated" in actions else "none")

        def apply() -> str:
            results = self.kube().apply_all(device_plugin_objects(self.cfg, self.names))
            return ", ".join(f"{r.kind} {r.namespace}/{r.name} {r.action}" for r in results)

        step.observe, step.apply = observe, apply
        return step

    def _gpu_wait_step(self, timeout_s: float | None) -> Step:
        timeout = timeout_s or self.cfg.cluster.gpu_wait_timeout_s

        def observe() -> Action:
            if self.describe_cluster() is None or self.context_name() is None:
                return "run"
            return "none" if any(gpu_allocatable(n) >= 1 for n in self.kube().list("v1", "Node")) else "run"

        def apply() -> str:
            node = self.wait_for_gpu_node(timeout)
            return f"{node['metadata']['name']} reports {gpu_allocatable(node)} x {GPU}"

        return Step(f"a schedulable GPU ({GPU} >= 1)", "wait", observe, apply,
                    detail=f"watch nodes, up to {timeout:.0f}s")

    def wait_for_gpu_node(self, timeout_s: float) -> dict:
        """Watch nodes until one is Ready with allocatable nvidia.com/gpu >= 1; report changes as they come."""
        import time

        kube = self.kube()
        deadline = time.monotonic() + timeout_s
        seen: dict[str, tuple] = {}
        with self.output.status(f"waiting for a node with allocatable {GPU} (up to {timeout_s:.0f}s)"):
            while (remaining := deadline - time.monotonic()) > 0:
                for type_, node in kube.watch("v1", "Node", timeout_s=remaining):
                    name = node["metadata"]["name"]
                    if type_ == "DELETED":
                        seen.pop(name, None)
                        continue
                    state = (node_ready(node), gpu_allocatable(node))
                    if seen.get(name) != state:
                        seen[name] = state
                        itype = (node["metadata"].get("labels") or {}).get("node.kubernetes.io/instance-type", "?")
                        self.output.info(f"  node {name} ({itype}): {'Ready' if state[0] else 'NotReady'}, "
                                         f"{GPU} allocatable {state[1]}")
                    if state[0] and state[1] >= 1:
                        return node
        raise LlmctlError(
            f"no node reported allocatable {GPU} within {timeout_s:.0f}s "
            f"({len(seen)} node(s) seen: {', '.join(seen) or 'none'})",
            hint="check the device plugin pods (`kubectl -n kube-system get pods -l name=nvidia-device-plugin-ds`) and "
                 "the node group's health in the EKS console; then re-run `llmctl cluster up`")

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> dict:
        cluster = self.describe_cluster()
        out: dict = {"name": self.names.cluster, "region": self.names.region, "exists": cluster is not None}
        if cluster is None:
            return out
        issuer = ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer")
        out["control_plane"] = {"status": cluster.get("status"), "version": cluster.get("version"),
                                "endpoint": cluster.get("endpoint"), "oidc_issuer": issuer,
                                "managed_by_llmctl": (cluster.get("tags") or {}).get(TAG_DEPLOYMENT) == self.names.deployment}
        out["oidc_provider"] = self.oidc_provider(issuer) if issuer else None
        out["nodegroups"] = self._nodegroups()
        out["irsa_role"] = self._irsa_status(issuer)
        out["kubeconfig_context"] = self.context_name()
        try:
            nodes = self.kube().list("v1", "Node")
            out["nodes"] = [{
                "name": n["metadata"]["name"],
                "instance_type": (n["metadata"].get("labels") or {}).get("node.kubernetes.io/instance-type"),
                "nodegroup": (n["metadata"].get("labels") or {}).get("eks.amazonaws.com/nodegroup"),
                "ready": node_ready(n), "gpu_allocatable": gpu_allocatable(n)} for n in nodes]
            out["device_plugin"] = self._device_plugin_status()
        except LlmctlError as exc:
            out["nodes"] = None
            out["device_plugin"] = None
            out["kube_error"] = exc.message
        out["gpu_schedulable"] = any(n["ready"] and n["gpu_allocatable"] >= 1 for n in out["nodes"] or [])
        return out

    def _nodegroups(self) -> list[dict]:
        eks = self.aws.client("eks")
        out = []
        for name in eks.list_nodegroups(clusterName=self.names.cluster).get("nodegroups", []):
            ng = eks.describe_nodegroup(clusterName=self.names.cluster, nodegroupName=name)["nodegroup"]
            scaling = ng.get("scalingConfig") or {}
            out.append({"name": name, "status": ng.get("status"), "instance_types": ng.get("instanceTypes"),
                        "capacity_type": ng.get("capacityType"), "desired": scaling.get("desiredSize"),
                        "min": scaling.get("minSize"), "max": scaling.get("maxSize")})
        return out

    def _irsa_status(self, issuer: str | None) -> dict:
        import json
        from urllib.parse import unquote

        from llmctl.aws.irsa import POLICY_NAME, permissions_policy, trust_policy
        from llmctl.aws.session import error_code

        iam = self.aws.client("iam")
        name = self.names.irsa_role
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except Exception as exc:
            if error_code(exc) == "NoSuchEntity":
                return {"name": name, "exists": False}
            raise

        def doc(value):
            return json.loads(unquote(value)) if isinstance(value, str) else value

        trust = doc(role["AssumeRolePolicyDocument"])
        expected_trust = trust_policy(self.aws.account_id, issuer, self.names.namespace, self.names.service_account,
                                      self.partition) if issuer else None
        policies = iam.list_role_policies(RoleName=name).get("PolicyNames", [])
        policy_ok = False
        if policies == [POLICY_NAME] and self.cfg.model.bucket:
            current = doc(iam.get_role_policy(RoleName=name, PolicyName=POLICY_NAME)["PolicyDocument"])
            policy_ok = current == permissions_policy(self.cfg.model.bucket, self.cfg.model.prefix, self.partition)
        return {"name": name, "exists": True, "arn": role["Arn"], "trust_matches_cluster": trust == expected_trust,
                "permissions_match": policy_ok}

    def _device_plugin_status(self) -> dict | None:
        for ds in self.kube().list("apps/v1", "DaemonSet"):
            if not _is_device_plugin(ds):
                continue
            status = ds.get("status") or {}
            containers = ds["spec"]["template"]["spec"].get("containers") or [{}]
            desired, ready = status.get("desiredNumberScheduled", 0), status.get("numberReady", 0)
            return {"name": f"{ds['metadata']['namespace']}/{ds['metadata']['name']}",
                    "image": containers[0].get("image"),
                    "managed_by_llmctl": _ours(ds["metadata"].get("labels") or {}, self.names),
                    "desired": desired, "ready": ready, "healthy": desired > 0 and ready == desired}
        return None
