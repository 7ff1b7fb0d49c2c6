"""CloudFormation look-ups: the stacks eksctl made for a cluster (eksctl deletes them)."""

from __future__ import annotations

from llmctl.aws.errors import AWS_ERRORS, aws_error
from llmctl.aws.tagging import eksctl_made_for, tags


def eksctl_stacks(cfn, cluster: str, prefix: str) -> list[dict]:
    """Live stacks named `prefix*` AND tagged by eksctl for `cluster` (never the name alone).

    Each as `{"name", "id", "status", "tags"}`.
    """
    found = []
    try:
        for page in cfn.get_paginator("describe_stacks").paginate():
            for stack in page.get("Stacks", []):
                stack_tags = tags(stack.get("Tags"))
                if (stack["StackName"].startswith(prefix) and eksctl_made_for(stack_tags, cluster)
                        and stack.get("StackStatus") != "DELETE_COMPLETE"):
                    found.append({"name": stack["StackName"], "id": stack["StackId"],
                                  "status": stack.get("StackStatus"), "tags": stack_tags})
    except AWS_ERRORS as exc:
        raise aws_error(exc, f"listing the CloudFormation stacks of cluster {cluster}") from None
    return found
