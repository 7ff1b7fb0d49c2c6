"""The pre-flight of `cluster up`: what would make `eksctl create cluster` fail half an hour in
(identity, tools, an existing cluster not ours, instance types and offerings, GPU quota, model
fit), and the price of the cluster."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from llmctl.errors import LlmctlError

NO_BF16_GPUS = {"T4", "V100", "M60", "K80", "T4g"}


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


def run_preflight(m, live_prices: bool = True) -> Preflight:
    """`m` is the `ClusterManager`; every check runs, the first failure is what `failure()` names."""
    from llmctl import pricing
    from llmctl.actions.fit import check_fit, read_model_metadata
    from llmctl.aws.ec2 import describe_instance_types, offered_zones
    from llmctl.aws.pricing import live_node_price
    from llmctl.aws.quotas import check_capacity_quotas

    c = m.cfg.cluster
    checks: list[Check] = []
    identity = m.aws.identity()  # no identity, no point going on: raises with the fix
    checks.append(Check("aws identity", "pass", f"{identity['Arn']} (account {identity['Account']})"))
    checks.extend(_tool_checks(m.tool_probe))
    checks.append(_existing_cluster_check(m, m.state().cluster()))
    if not m.cfg.model.bucket:
        checks.append(Check("model bucket", "fail", "model.bucket is not set; the IRSA role grants read access to it",
                            "set model.bucket (and model.prefix) in llmctl.yaml"))

    infos = describe_instance_types(m.aws.ec2, c.instance_types)
    missing = [t for t in c.instance_types if t not in infos]
    if missing:
        checks.append(Check("instance types", "fail", f"{', '.join(missing)} unknown to EC2 in {m.names.region}",
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
            checks.append(_offering_check(m, itype, offered_zones(m.aws.ec2, itype)))
        quotas = check_capacity_quotas(m.aws.service_quotas, biggest.instance_type, biggest.vcpus, c, m.names.region)
        quota = quotas[0]
        for q in quotas:
            label = "gpu quota" if c.capacity != "karpenter" else f"gpu quota ({'spot' if 'Spot' in q.name else 'on-demand'})"
            checks.append(Check(label, q.status, q.detail, q.request if q.status != "pass" else ""))

    spec = _spec(primary, infos.get(primary))
    fit = None
    model_gb = None
    if spec is not None:
        manifest = config_json = None
        if m.cfg.model.bucket:
            manifest, config_json = read_model_metadata(m.aws.s3, m.cfg.model.bucket, m.cfg.model.prefix)
        fit = check_fit(m.cfg, spec, manifest, config_json)
        checks.append(Check("model fit", fit.status, fit.detail, fit.fix))
        checks.extend(Check("dtype", "warn", w, "set model.dtype: float16") for w in fit.warnings)
        if fit.weights_bytes and fit.weights_source and fit.weights_source.startswith("manifest"):
            model_gb = fit.weights_bytes / 1e9

    node_hourly, source = None, None
    if live_prices and not c.spot:
        node_hourly = live_node_price(m.pricing_client_factory(), primary, m.names.region)
        source = "AWS Pricing API (node price) + price table" if node_hourly is not None else None
    if node_hourly is None and primary not in pricing.INSTANCES:
        checks.append(Check("price", "warn", f"{primary} is not in the price table; GPU node cost unknown",
                            "see https://aws.amazon.com/ec2/pricing/on-demand/"))
        node_hourly, source = 0.0, f"price table (as of {pricing.PRICES_AS_OF}); {primary} not priced"
    cost = pricing.estimate(m.cfg, node_hourly=node_hourly, source=source, model_gb=model_gb)
    return Preflight(checks, cost, fit, quota, instance)


def _tool_checks(tool_probe) -> list[Check]:
    from llmctl.tools import INSTALL_HINTS, probe

    out = []
    for name in ("eksctl", "kubectl"):
        tool = (tool_probe or probe)(name)
        if tool.path is None:
            out.append(Check(name, "fail", "not found on PATH", INSTALL_HINTS[name]))
        elif not tool.supported:
            out.append(Check(name, "fail", f"{tool.version or 'unknown version'} at {tool.path}",
                             f"upgrade to {tool.minimum} or newer; {INSTALL_HINTS[name]}"))
        else:
            out.append(Check(name, "pass", f"{tool.version} at {tool.path}"))
    return out


def _existing_cluster_check(m, cluster: dict | None) -> Check:
    from llmctl.aws.tagging import is_ours
    from llmctl.config.names import TAG_DEPLOYMENT

    if cluster is None:
        return Check("cluster", "pass", f"{m.names.cluster} does not exist yet: it will be created")
    if not is_ours(cluster.get("tags") or {}, m.names.deployment):
        return Check("cluster", "fail", f"an EKS cluster named {m.names.cluster} exists and is not tagged "
                     f"{TAG_DEPLOYMENT}={m.names.deployment}",
                     "set cluster.name to another name; llmctl never adopts a cluster it did not create")
    detail = f"{m.names.cluster} exists ({cluster.get('status')}, Kubernetes {cluster.get('version')})"
    if cluster.get("version") != m.cfg.cluster.kubernetes_version:
        return Check("cluster", "warn", f"{detail}; config asks for {m.cfg.cluster.kubernetes_version}",
                     "upgrade with `eksctl upgrade cluster`, or set cluster.kubernetes_version to match")
    return Check("cluster", "pass", detail)


def _offering_check(m, itype: str, zones: list[str]) -> Check:
    wanted = m.cfg.cluster.availability_zones
    if not zones:
        return Check(f"{itype} offered", "fail", f"{itype} is not offered in {m.names.region}",
                     "pick another region (aws.region) or instance type")
    missing = [z for z in wanted if z not in zones]
    if missing:
        return Check(f"{itype} offered", "fail", f"{itype} is not offered in {', '.join(missing)} "
                     f"(offered in {', '.join(zones)})", "set cluster.availability_zones to zones that offer it")
    return Check(f"{itype} offered", "pass", f"in {', '.join(wanted or zones)}")


def _spec(itype: str, info) -> object | None:
    """The price table's entry, else one built from what EC2 says about an unlisted GPU type."""
    from llmctl import pricing

    if itype in pricing.INSTANCES:
        return pricing.INSTANCES[itype]
    if info is None or not info.gpus:
        return None
    return pricing.InstanceSpec(itype, info.vcpus, info.memory_mib / 1024, info.gpus, info.gpu_model or "GPU",
                                info.gpu_memory_mib / 1024 / info.gpus, info.gpu_model not in NO_BF16_GPUS,
                                0.0, 0.0)
