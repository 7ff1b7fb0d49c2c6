"""EC2: instance type facts and offerings (pre-flight), sizes (cost), and the delete side of what
a cluster's controllers leave (security groups, PVC volumes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from llmctl.aws.errors import AWS_ERRORS, aws_call, aws_error, error_code
from llmctl.aws.tagging import tags

# A security group or volume stays "in use" for a while after what used it is gone.
_IN_USE = ("DependencyViolation", "VolumeInUse")


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
    except AWS_ERRORS as exc:
        if error_code(exc) == "InvalidInstanceType":
            found = []
            for itype in instance_types:  # one bad name fails the batch: ask one by one
                try:
                    found += ec2.describe_instance_types(InstanceTypes=[itype])["InstanceTypes"]
                except AWS_ERRORS as inner:
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
    except AWS_ERRORS as exc:
        raise aws_error(exc, f"listing where {instance_type} is offered") from None
    return sorted(zones)


def volume_size_gib(ec2, volume_id: str) -> int | None:
    """The EBS volume's size, or None when it is gone."""
    volumes = aws_call(f"looking up EBS volume {volume_id}", lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"],
                       absent="InvalidVolume.NotFound", default=[])
    return volumes[0]["Size"] if volumes else None


def describe_instance(ec2, instance_id: str) -> dict | None:
    reservations = aws_call(f"looking up EC2 instance {instance_id}",
                            lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"],
                            absent="InvalidInstanceID.NotFound", default=[])
    return next((i for r in reservations for i in r.get("Instances", [])), None)


def delete_security_group(ec2, group_id: str, *, retry_s: float = 5.0, attempts: int = 12,
                          sleep: Callable[[float], None] = time.sleep) -> None:
    """Retried while still in use (an ENI of a just-deleted load balancer); gone already is done."""
    _delete(lambda: ec2.delete_security_group(GroupId=group_id), f"deleting security group {group_id}",
            "InvalidGroup.NotFound", retry_s, attempts, sleep)


def delete_volume(ec2, volume_id: str, *, retry_s: float = 5.0, attempts: int = 12,
                  sleep: Callable[[float], None] = time.sleep) -> None:
    """Retried while still attached to a terminating node; gone already is done."""
    _delete(lambda: ec2.delete_volume(VolumeId=volume_id), f"deleting EBS volume {volume_id}",
            "InvalidVolume.NotFound", retry_s, attempts, sleep)


def _delete(call: Callable[[], object], doing: str, gone: str, retry_s: float, attempts: int,
            sleep: Callable[[float], None]) -> None:
    for attempt in range(attempts):
        try:
            call()
            return
        except AWS_ERRORS as exc:
            code = error_code(exc)
            if code == gone:
                return
            if code not in _IN_USE or attempt == attempts - 1:
                raise aws_error(exc, doing) from None
        sleep(retry_s)


# --- discovery and deletion of what a cluster's node provisioner launched ------------------------
LIVE_STATES = ("pending", "running", "stopping", "stopped")


def _tag_filter(key: str, value: str) -> dict:
    return {"Name": f"tag:{key}", "Values": [value]}


def launch_templates(ec2, tag: tuple[str, str]) -> list[dict]:
    """Launch templates tagged `key=value`, each with `"tags"` as a dict and its `"Arn"`."""
    def read() -> list[dict]:
        found = []
        for page in ec2.get_paginator("describe_launch_templates").paginate(Filters=[_tag_filter(*tag)]):
            for lt in page.get("LaunchTemplates", []):
                account = (lt.get("CreatedBy") or "::::").split(":")[4]
                found.append({**lt, "tags": tags(lt.get("Tags")),
                              "Arn": f"arn:aws:ec2:{ec2.meta.region_name}:{account}:launch-template/{lt['LaunchTemplateId']}"})
        return found

    return aws_call(f"listing launch templates tagged {tag[0]}", read)


def instances(ec2, tag: tuple[str, str]) -> list[dict]:
    """Instances not yet terminating that are tagged `key=value`, each with `"tags"` and `"Arn"`."""
    def read() -> list[dict]:
        found = []
        filters = [_tag_filter(*tag), {"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
        for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    arn = f"arn:aws:ec2:{ec2.meta.region_name}:{reservation['OwnerId']}:instance/{instance['InstanceId']}"
                    found.append({**instance, "tags": tags(instance.get("Tags")), "Arn": arn})
        return found

    return aws_call(f"listing EC2 instances tagged {tag[0]}", read)


def terminate_instances(ec2, instance_ids: list[str]) -> None:
    if instance_ids:
        aws_call(f"terminating EC2 instance(s) {', '.join(instance_ids)}",
                 lambda: ec2.terminate_instances(InstanceIds=instance_ids), absent="InvalidInstanceID.NotFound")


def delete_launch_template(ec2, template_id: str) -> None:
    aws_call(f"deleting launch template {template_id}", lambda: ec2.delete_launch_template(LaunchTemplateId=template_id),
             absent=("InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateName.NotFoundException"))
