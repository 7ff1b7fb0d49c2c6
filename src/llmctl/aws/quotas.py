"""Service Quotas: is there enough EC2 GPU quota (counted in vCPUs) for the node group?"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from llmctl.aws.errors import AWS_ERRORS, DENIED, aws_error, error_code

# (on-demand, spot) quota codes by instance family letter.
QUOTAS = {
    "g": (("L-DB2E81BA", "Running On-Demand G and VT instances"), ("L-3819A6DF", "All G and VT Spot Instance Requests")),
    "p": (("L-417A185B", "Running On-Demand P instances"), ("L-7212CCBC", "All P Spot Instance Requests")),
}
_UNKNOWN = ("NoSuchResourceException", "ServiceException", "IllegalArgumentException", "UnknownOperationException")


@dataclass
class QuotaCheck:
    code: str
    name: str
    needed_vcpus: int
    limit_vcpus: float | None  # None: could not be read
    status: str  # "pass" | "fail" | "warn"
    detail: str
    request: str  # the command that raises the quota

    def to_dict(self) -> dict:
        return asdict(self)


def quota_for(instance_type: str, spot: bool) -> tuple[str, str]:
    """(quota code, quota name) that limits `instance_type`; G/VT for anything not a P type."""
    family = "p" if instance_type.startswith("p") else "g"
    return QUOTAS[family][1 if spot else 0]


def request_command(code: str, desired: int, region: str) -> str:
    return (f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {code} "
            f"--desired-value {desired} --region {region}")


def read_quota(client, code: str) -> float | None:
    """The applied quota value (else the AWS default); None when Service Quotas cannot say."""
    for attempt, call in enumerate((client.get_service_quota, client.get_aws_default_service_quota)):
        try:
            return float(call(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
        except AWS_ERRORS as exc:
            found = error_code(exc)
            if found in _UNKNOWN:
                continue  # not applied in this account (or region): try the default
            if found in DENIED or attempt:
                return None  # not allowed, or no default to read: the caller warns
            raise aws_error(exc, f"reading EC2 quota {code}") from None
    return None


def check_gpu_quota(client, instance_type: str, vcpus_per_node: int, max_nodes: int, spot: bool, region: str) -> QuotaCheck:
    code, name = quota_for(instance_type, spot)
    needed = vcpus_per_node * max_nodes
    request = request_command(code, needed, region)
    limit = read_quota(client, code)
    basis = f"{max_nodes} x {instance_type} at {vcpus_per_node} vCPUs"
    if limit is None:
        return QuotaCheck(code, name, needed, None, "warn",
                          f"could not verify quota {code} ({name}); {needed} vCPUs needed ({basis})", request)
    if limit < needed:
        return QuotaCheck(code, name, needed, limit, "fail",
                          f"{name} ({code}) is {limit:g} vCPUs in {region}; {needed} needed ({basis})", request)
    return QuotaCheck(code, name, needed, limit, "pass",
                      f"{limit:g} vCPUs of {name} ({code}); {needed} needed ({basis}); running instances count too",
                      request)


def check_capacity_quotas(client, instance_type: str, vcpus_per_node: int, cluster, region: str) -> list[QuotaCheck]:
    """The quotas the configured capacity draws on. A node group: its one capacity type for nodes_max nodes.
    Karpenter: on-demand for every node (the fallback when spot is short, so too little fails), and spot for
    those above on_demand_base (too little only costs more: Karpenter falls back, so it warns)."""
    if cluster.capacity != "karpenter":
        return [check_gpu_quota(client, instance_type, vcpus_per_node, cluster.nodes_max, cluster.spot, region)]
    checks = [check_gpu_quota(client, instance_type, vcpus_per_node, cluster.nodes_max, False, region)]
    spot_nodes = cluster.nodes_max - cluster.on_demand_base
    if cluster.karpenter.spot and spot_nodes > 0:
        spot = check_gpu_quota(client, instance_type, vcpus_per_node, spot_nodes, True, region)
        if spot.status == "fail":
            spot.status = "warn"
            spot.detail += "; Karpenter falls back to on-demand (at on-demand prices)"
        checks.append(spot)
    return checks
