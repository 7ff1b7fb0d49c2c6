"""EC2 Auto Scaling: take one chosen instance out of its group (the node llmctl emptied), shrinking the group."""

from __future__ import annotations

from llmctl.aws.errors import aws_call


def terminate_instance(autoscaling, instance_id: str) -> None:
    """Terminate `instance_id` and lower its group's desired capacity by one (the group starts no replacement)."""
    aws_call(f"terminating instance {instance_id} in its Auto Scaling group",
             lambda: autoscaling.terminate_instance_in_auto_scaling_group(
                 InstanceId=instance_id, ShouldDecrementDesiredCapacity=True))
