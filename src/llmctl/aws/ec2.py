"""EC2 look-ups for the pre-flight: instance type facts and where a type is offered."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from llmctl.aws.session import aws_error, error_code


@dataclass
class InstanceTypeInfo:
    instance_type: str
    vcpus: int
    memory_mib: int
    gpus: int
    gpu_model: str | None
    gpu_memory_mib: int  # all GPUs together

    def to_dict(self) -> dict:
        return asdict(self)


def describe_instance_types(ec2, instance_types: list[str]) -> dict[str, InstanceTypeInfo]:
    """Facts of each type; a type EC2 does not know is missing from the answer."""
    try:
        found = ec2.describe_instance_types(InstanceTypes=list(instance_types))["InstanceTypes"]
    except Exception as exc:  # noqa: BLE001 - botocore ClientError, sorted by code
        if error_code(exc) == "InvalidInstanceType":
            found = []
            for itype in instance_types:  # one bad name fails the batch: ask one by one
                try:
                    found += ec2.describe_instance_types(InstanceTypes=[itype])["InstanceTypes"]
                except Exception as inner:  # noqa: BLE001 - botocore ClientError, sorted by code
                    if error_code(inner) != "InvalidInstanceType":
                        raise aws_error(inner, "describing EC2 instance types") from None
        else:
            raise aws_error(exc, "describing EC2 instance types") from None
    out = {}
    for item in found:
        gpu = item.get("GpuInfo") or {}
        gpus = gpu.get("Gpus") or [{}]
        out[item["InstanceType"]] = InstanceTypeInfo(
            instance_type=item["InstanceType"],
            vcpus=int(item["VCpuInfo"]["DefaultVCpus"]),
            memory_mib=int(item.get("MemoryInfo", {}).get("SizeInMiB", 0)),
            gpus=sum(int(g.get("Count", 0)) for g in gpus),
            gpu_model=gpus[0].get("Name"),
            gpu_memory_mib=int(gpu.get("TotalGpuMemoryInMiB", 0)),
        )
    return out


def offered_zones(ec2, instance_type: str) -> list[str]:
    """Availability zones of the client's region where `instance_type` is offered."""
    zones: set[str] = set()
    try:
        for page in ec2.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": [instance_type]}]
        ):
            zones.update(o["Location"] for o in page.get("InstanceTypeOfferings", []))
    except Exception as exc:  # noqa: BLE001 - botocore ClientError, sorted by code
        raise aws_error(exc, f"listing where {instance_type} is offered") from None
    return sorted(zones)
