"""The IRSA role the vLLM pod assumes: read-only access to the model prefix, nothing else.

Trust: the cluster's OIDC provider, for exactly one service account (`sub`) and audience STS.
Permissions: `s3:GetObject` on `<bucket>/<prefix>/*` and `s3:ListBucket` on the bucket limited
by `s3:prefix`. `iam.role_step` creates the role or updates it to exactly these documents.
"""

from __future__ import annotations

from llmctl.aws.iam import role_arn, role_step
from llmctl.plan import Step

POLICY_NAME = "vllm-model-read"


def issuer_host(issuer: str) -> str:
    """`https://oidc.eks.<region>.amazonaws.com/id/<ID>` -> `oidc.eks.<region>.amazonaws.com/id/<ID>`."""
    return issuer.split("://", 1)[-1].rstrip("/")


def oidc_provider_arn(account_id: str, issuer: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account_id}:oidc-provider/{issuer_host(issuer)}"


def trust_policy(account_id: str, issuer: str, namespace: str, service_account: str, partition: str = "aws") -> dict:
    host = issuer_host(issuer)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn(account_id, issuer, partition)},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{host}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


def permissions_policy(bucket: str, prefix: str, partition: str = "aws") -> dict:
    prefix = prefix.strip("/")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadModelObjects",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}/*",
            },
            {
                "Sid": "ListModelPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:{partition}:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}},
            },
        ],
    }


def irsa_role_step(iam, name: str, *, account_id: str, issuer: str, namespace: str, service_account: str,
                   bucket: str, prefix: str, tags: dict[str, str], partition: str = "aws") -> Step:
    return role_step(
        iam,
        name,
        trust_policy(account_id, issuer, namespace, service_account, partition),
        {POLICY_NAME: permissions_policy(bucket, prefix, partition)},
        tags,
        description=f"vLLM pods ({namespace}/{service_account}) read s3://{bucket}/{prefix}/",
    )


__all__ = ["POLICY_NAME", "irsa_role_step", "oidc_provider_arn", "permissions_policy", "role_arn", "trust_policy"]
