"""Secrets Manager: the build's Docker Hub secret (looked up, never read here) and its deletion."""

from __future__ import annotations

from llmctl.aws.errors import aws_call

NOT_FOUND = "ResourceNotFoundException"


def secret_arn(secretsmanager, name: str) -> str | None:
    """The secret's ARN, or None when there is no secret of that name."""
    return aws_call(f"looking up secret {name}", lambda: secretsmanager.describe_secret(SecretId=name)["ARN"],
                    absent=NOT_FOUND)


def delete_secret(secretsmanager, secret_id: str) -> None:
    """Deleted now, without the recovery window (teardown must leave nothing billed)."""
    aws_call(f"deleting secret {secret_id}",
             lambda: secretsmanager.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True), absent=NOT_FOUND)
