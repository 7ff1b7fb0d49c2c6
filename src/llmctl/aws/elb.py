"""Elastic Load Balancing, delete side: what the cloud controller made for a Service and left behind.

llmctl never creates load balancers (the cluster's controller does, for `type: LoadBalancer`
Services); teardown deletes them itself only when no controller is left to do it.
Each delete treats "already gone" as done.
"""

from __future__ import annotations

from llmctl.aws.errors import aws_call


def delete_load_balancer(elbv2, arn: str) -> None:
    """An NLB / ALB (elbv2)."""
    aws_call(f"deleting load balancer {arn}", lambda: elbv2.delete_load_balancer(LoadBalancerArn=arn),
             absent="LoadBalancerNotFound")


def delete_classic_load_balancer(elb, name: str) -> None:
    aws_call(f"deleting classic load balancer {name}", lambda: elb.delete_load_balancer(LoadBalancerName=name),
             absent="LoadBalancerNotFound")


def delete_target_group(elbv2, arn: str) -> None:
    aws_call(f"deleting target group {arn}", lambda: elbv2.delete_target_group(TargetGroupArn=arn),
             absent="TargetGroupNotFound")
