"""ARNs read as (type, name): the Terraform-like type names teardown and cost report by."""

from __future__ import annotations

_TYPES = {
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
    ("events", "rule"): "aws_cloudwatch_event_rule",
}
_ELBV2_KINDS = ("app", "net", "gwy")


def parts(arn: str) -> tuple[str, str, str]:
    """(service, resource type, resource id) of an ARN."""
    fields = arn.split(":", 5)
    service, resource = fields[2], fields[5] if len(fields) > 5 else ""
    if service == "s3":
        return service, "", resource
    cut = min((i for i in (resource.find("/"), resource.find(":")) if i >= 0), default=-1)
    if cut < 0:
        return service, resource, resource
    return service, resource[:cut], resource[cut + 1 :]


def type_of(arn: str) -> str:
    service, rtype, rid = parts(arn)
    if service == "elasticloadbalancing" and rtype == "loadbalancer":
        return "aws_lb" if rid.split("/")[0] in _ELBV2_KINDS else "aws_elb"
    if service == "sqs":  # arn:aws:sqs:<region>:<account>:<queue name>
        return "aws_sqs_queue"
    return _TYPES.get((service, rtype), f"aws_{service}_{rtype}".replace("-", "_"))


def name_of(arn: str) -> str:
    """The name the resource's own API takes (bucket, group id, log group, secret name, ...)."""
    service, rtype, rid = parts(arn)
    if service == "elasticloadbalancing" and rtype == "loadbalancer":
        return rid.split("/")[-2] if rid.split("/")[0] in _ELBV2_KINDS else rid
    if service == "elasticloadbalancing" and rtype == "targetgroup":
        return rid.split("/")[0]
    if service == "logs" and rid.endswith(":*"):
        return rid[:-2]
    if service == "secretsmanager":
        return rid.rsplit("-", 1)[0]  # the ARN adds "-" and 6 random characters to the name
    return rid
