"""The one dated, offline price table llmctl uses (`cluster up`, `cost`, `bench`).

Prices are us-east-1 Linux on-demand list prices and typical (not guaranteed) spot prices,
checked on `PRICES_AS_OF`; other regions apply a multiplier. When the AWS Pricing API is
reachable (`aws.pricing.live_node_price`) its node price replaces the table's, and the estimate
says which source it used.
Everything here is an estimate: the AWS bill is the truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

PRICES_AS_OF = "2025-06-01"
HOURS_PER_MONTH = 730

EKS_CONTROL_PLANE_HOURLY = 0.10  # standard support
NAT_GATEWAY_HOURLY = 0.045  # eksctl's default VPC has one NAT gateway (plus $0.045/GB processed)
NLB_HOURLY = 0.0225  # plus LCU charges, which depend on traffic
EBS_GP3_GB_MONTH = 0.08
ECR_GB_MONTH = 0.10
S3_GB_MONTH = 0.023
# The system node group beside Karpenter's GPU nodes (cluster.karpenter.system_instance_type), on-demand.
SYSTEM_NODES_HOURLY = {"t3.medium": 0.0416, "t3.large": 0.0832, "t3.xlarge": 0.1664, "m5.large": 0.096,
                       "m6i.large": 0.096, "m7i.large": 0.1008}


@dataclass(frozen=True)
class InstanceSpec:
    instance_type: str
    vcpus: int
    memory_gib: float
    gpus: int
    gpu_model: str
    gpu_memory_gib: float  # per GPU
    bf16: bool  # compute capability >= 8.0
    on_demand_hourly: float  # us-east-1
    spot_hourly: float  # us-east-1, typical

    @property
    def hourly_usd(self) -> float:
        return self.on_demand_hourly

    def to_dict(self) -> dict:
        return asdict(self)


def _spec(t: str, vcpus: int, mem: float, gpus: int, model: str, gmem: float, bf16: bool, od: float, spot: float) -> InstanceSpec:
    return InstanceSpec(t, vcpus, mem, gpus, model, gmem, bf16, od, spot)


INSTANCES: dict[str, InstanceSpec] = {
    s.instance_type: s
    for s in (
        _spec("g4dn.xlarge", 4, 16, 1, "T4", 16, False, 0.526, 0.2124),
        _spec("g4dn.2xlarge", 8, 32, 1, "T4", 16, False, 0.752, 0.2977),
        _spec("g4dn.4xlarge", 16, 64, 1, "T4", 16, False, 1.204, 0.4526),
        _spec("g4dn.12xlarge", 48, 192, 4, "T4", 16, False, 3.912, 1.6245),
        _spec("g5.xlarge", 4, 16, 1, "A10G", 24, True, 1.006, 0.4136),
        _spec("g5.2xlarge", 8, 32, 1, "A10G", 24, True, 1.212, 0.4886),
        _spec("g5.12xlarge", 48, 192, 4, "A10G", 24, True, 5.672, 2.2418),
        _spec("g6.xlarge", 4, 16, 1, "L4", 24, True, 0.8048, 0.3456),
        _spec("g6.2xlarge", 8, 32, 1, "L4", 24, True, 0.9776, 0.4018),
        _spec("g6e.xlarge", 4, 32, 1, "L40S", 48, True, 1.861, 0.7845),
        _spec("p3.2xlarge", 8, 61, 1, "V100", 16, False, 3.06, 0.9891),
        _spec("p4d.24xlarge", 96, 1152, 8, "A100", 40, True, 32.7726, 11.5693),
    )
}

# Price relative to us-east-1 for the GPU families above (rounded from the regional list prices).
REGION_MULTIPLIER: dict[str, float] = {
    "us-east-1": 1.0, "us-east-2": 1.0, "us-west-2": 1.0, "us-west-1": 1.17,
    "ca-central-1": 1.11, "eu-west-1": 1.12, "eu-west-2": 1.17, "eu-central-1": 1.20,
    "eu-north-1": 1.07, "ap-south-1": 1.09, "ap-northeast-1": 1.30, "ap-northeast-2": 1.22,
    "ap-southeast-1": 1.25, "ap-southeast-2": 1.26, "sa-east-1": 1.60,
}
DEFAULT_REGION_MULTIPLIER = 1.25  # regions not above: a cautious guess, flagged in the estimate

# The Pricing API filters on location names, not region codes.
REGION_LOCATIONS: dict[str, str] = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)", "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)", "ca-central-1": "Canada (Central)", "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)", "eu-central-1": "EU (Frankfurt)", "eu-north-1": "EU (Stockholm)",
    "ap-south-1": "Asia Pacific (Mumbai)", "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-northeast-2": "Asia Pacific (Seoul)", "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)", "sa-east-1": "South America (Sao Paulo)",
}


def instance(instance_type: str) -> InstanceSpec:
    """The table entry of an instance type; KeyError naming the known types when absent."""
    try:
        return INSTANCES[instance_type]
    except KeyError:
        raise KeyError(f"{instance_type} is not in llmctl's price table ({', '.join(INSTANCES)})") from None


def region_multiplier(region: str) -> tuple[float, bool]:
    """(multiplier, known): known is False when the region is not in the table."""
    if region in REGION_MULTIPLIER:
        return REGION_MULTIPLIER[region], True
    return DEFAULT_REGION_MULTIPLIER, False


def hourly(instance_type: str, region: str = "us-east-1", spot: bool = False) -> float:
    spec = instance(instance_type)
    base = spec.spot_hourly if spot else spec.on_demand_hourly
    return round(base * region_multiplier(region)[0], 4)


@dataclass
class CostLine:
    item: str
    hourly: float
    monthly: float
    note: str = ""


@dataclass
class CostEstimate:
    region: str
    lines: list[CostLine]
    source: str  # "price table (as of ...)" or "AWS Pricing API"
    prices_as_of: str = PRICES_AS_OF
    notes: list[str] = field(default_factory=list)

    @property
    def hourly_total(self) -> float:
        return round(sum(line.hourly for line in self.lines), 4)

    @property
    def monthly_total(self) -> float:
        return round(sum(line.monthly for line in self.lines), 2)

    def to_dict(self) -> dict:
        return {
            "region": self.region,
            "source": self.source,
            "prices_as_of": self.prices_as_of,
            "lines": [asdict(line) for line in self.lines],
            "hourly_total": self.hourly_total,
            "monthly_total": self.monthly_total,
            "notes": self.notes,
        }


def _line(item: str, hourly_usd: float, note: str = "") -> CostLine:
    return CostLine(item, round(hourly_usd, 4), round(hourly_usd * HOURS_PER_MONTH, 2), note)


def estimate(cfg, *, node_hourly: float | None = None, source: str | None = None,
             model_gb: float | None = None, image_gb: float | None = None) -> CostEstimate:
    """Hourly and monthly cost of the deployment `cfg` describes (an `LlmctlConfig`).

    `node_hourly` (e.g. from `aws.pricing.live_node_price`) replaces the table price of one GPU node.
    Storage lines appear when their sizes are known (`model_gb` in S3, `image_gb` in ECR).
    """
    c = cfg.cluster
    region = cfg.aws.region
    itype = c.instance_types[0]
    mult, known = region_multiplier(region)
    notes: list[str] = []
    if not known:
        notes.append(f"{region} is not in the price table; us-east-1 prices x{mult} used")
    karpenter = c.capacity == "karpenter"
    spot = c.karpenter.spot if karpenter else c.spot
    nodes = c.nodes_desired
    on_demand_nodes = min(nodes, c.on_demand_base) if karpenter and spot else (0 if spot else nodes)
    if node_hourly is None:
        node_hourly = hourly(itype, region, spot)
        source = source or f"price table (as of {PRICES_AS_OF})"
    gpu_hourly = node_hourly * (nodes - on_demand_nodes) + hourly(itype, region) * on_demand_nodes if spot else \
        node_hourly * nodes
    mix = f"{nodes - on_demand_nodes} spot, {on_demand_nodes} on-demand" if karpenter and spot else ""
    lines = [
        _line("EKS control plane", EKS_CONTROL_PLANE_HOURLY, "same price in every region"),
        _line(f"GPU nodes ({nodes} x {itype}{' spot' if spot and not karpenter else ''})", gpu_hourly,
              f"${node_hourly:.4f}/h each" + (f"; {mix}" if mix else "") + ("; typical spot price, varies" if spot else "")),
        _line("NAT gateway (1)", NAT_GATEWAY_HOURLY * mult, "plus $0.045/GB processed"),
    ]
    if karpenter:
        system = c.karpenter.system_instance_type
        price = SYSTEM_NODES_HOURLY.get(system)
        if price is None:
            notes.append(f"system node type {system} is not in the price table; not priced")
        else:
            lines.append(_line(f"system nodes ({c.karpenter.system_nodes} x {system})",
                               price * mult * c.karpenter.system_nodes, "Karpenter, CoreDNS, monitoring"))
    if cfg.deploy.exposure != "cluster":
        lines.append(_line("Network load balancer (1)", NLB_HOURLY * mult, "plus LCU (traffic) charges"))
    ebs_gb = nodes * c.volume_size_gb
    lines.append(_line(f"EBS gp3 ({ebs_gb} GB)", ebs_gb * EBS_GP3_GB_MONTH * mult / HOURS_PER_MONTH))
    if model_gb:
        lines.append(_line(f"S3 model ({model_gb:.1f} GB)", model_gb * S3_GB_MONTH / HOURS_PER_MONTH))
    if image_gb:
        lines.append(_line(f"ECR image ({image_gb:.1f} GB)", image_gb * ECR_GB_MONTH / HOURS_PER_MONTH))
    if len(c.instance_types) > 1:
        notes.append(f"priced as {itype}; the node group may also run {', '.join(c.instance_types[1:])}")
    return CostEstimate(region, lines, source or f"price table (as of {PRICES_AS_OF})", notes=notes)
