"""IRSA: the cluster's IAM OIDC provider, and the role the vLLM pod assumes through it.

The role has read-only access to the model prefix, nothing else. Trust: the cluster's OIDC
provider, for exactly one service account (`sub`) and audience STS. Permissions:
`s3:GetObject` on `<bucket>/<prefix>/*` and `s3:ListBucket` on the bucket limited by
`s3:prefix`. `iam.role_step` creates the role or updates it to exactly these documents.
eksctl creates and deletes the OIDC provider; llmctl finds it, and removes one a failed
`eksctl delete cluster` left behind.
"""

from __future__ import annotations

from llmctl.aws.errors import aws_call
from llmctl.aws.iam import NO_SUCH_ENTITY, role_step
from llmctl.aws.tagging import tags
from llmctl.plan import Step

POLICY_NAME = "vllm-model-read"


def issuer_host(issuer: str) -> str:
    """`https://oidc.eks.<region>.amazonaws.com/id/<ID>` -> `oidc.eks.<region>.amazonaws.com/id/<ID>`."""
    return issuer.split("://", 1)[-1].rstrip("/")


def oidc_provider_arn(account_id: str, issuer: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account_id}:oidc-provider/{issuer_host(issuer)}"


def oidc_providers(iam) -> list[str]:
    """The ARN of every IAM OIDC provider in the account."""
    return aws_call("listing IAM OIDC providers",
                    lambda: [p["Arn"] for p in iam.list_open_id_connect_providers().get("OpenIDConnectProviderList", [])])


def provider_of(providers: list[str], issuer: str | None) -> str | None:
    """The provider among `providers` that trusts the cluster's `issuer`."""
    if not issuer:
        return None
    return next((arn for arn in providers if arn.endswith(f":oidc-provider/{issuer_host(issuer)}")), None)


def oidc_provider_tags(iam, arn: str) -> dict[str, str]:
    return aws_call(f"reading the tags of OIDC provider {arn}",
                    lambda: tags(iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=arn).get("Tags")))


def delete_oidc_provider(iam, arn: str) -> None:
    aws_call("deleting the cluster's OIDC provider",
             lambda: iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn), absent=NO_SUCH_ENTITY)


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
    """The model's prefix and, beside it, its LoRA adapters' (`<prefix>-adapters/`, where `adapter push` puts them)."""
    prefix = prefix.strip("/")
    adapters = f"{prefix}-adapters"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadModelObjects",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [f"arn:{partition}:s3:::{bucket}/{prefix}/*", f"arn:{partition}:s3:::{bucket}/{adapters}/*"],
            },
            {
                "Sid": "ListModelPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:{partition}:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*", adapters, f"{adapters}/*"]}},
            },
        ],
    }


def irsa_role_step(iam, name: str, *, account_id: str, issuer: str, namespace: str, service_account: str,
                   bucket: str, prefix: str, tags: dict[str, str], path: str, partition: str = "aws") -> Step:
    return role_step(
        iam,
        name,
        trust_policy(account_id, issuer, namespace, service_account, partition),
        {POLICY_NAME: permissions_policy(bucket, prefix, partition)},
        tags,
        description=f"vLLM pods ({namespace}/{service_account}) read s3://{bucket}/{prefix}/",
        path=path,
    )
