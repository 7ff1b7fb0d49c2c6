"""S3 adapter: the build bucket (private, encrypted, tagged) and uploads with progress.

Every function takes an injected boto3 S3 client; nothing here prints or reads config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llmctl.aws.session import aws_error, error_code
from llmctl.errors import LlmctlError
from llmctl.plan import Action, Step

PUBLIC_ACCESS_BLOCKED = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
SSE_S3 = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]}
_ENCRYPTION_ALGORITHMS = {"AES256", "aws:kms", "aws:kms:dsse"}


def bucket_step(s3, name: str, region: str, tags: dict[str, str]) -> Step:
    """Ensure a private bucket: created if missing, public access blocked, encrypted, tagged."""

    def observe() -> Action:
        try:
            s3.head_bucket(Bucket=name)
        except Exception as exc:
            code = error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                return "create"
            if code in ("403", "AccessDenied"):
                raise LlmctlError(
                    f"S3 bucket {name} exists but this AWS identity cannot use it",
                    hint="bucket names are global: another account may own it; set project.name to something else",
                ) from None
            raise aws_error(exc, f"checking S3 bucket {name}") from None
        return "none" if not _bucket_drift(s3, name, tags) else "update"

    def apply() -> str | None:
        try:
            try:
                s3.head_bucket(Bucket=name)
            except Exception as exc:
                if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                    raise
                extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
                s3.create_bucket(Bucket=name, **extra)
            drift = _bucket_drift(s3, name, tags)
            if "public-access" in drift:
                s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCKED)
            if "encryption" in drift:
                s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=SSE_S3)
            if "tags" in drift:
                merged = {**_bucket_tags(s3, name), **tags}
                s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(merged.items())]})
        except LlmctlError:
            raise
        except Exception as exc:
            raise aws_error(exc, f"configuring S3 bucket {name}") from None
        return ", ".join(sorted(drift)) if drift else None

    return Step(f"S3 bucket {name}", "s3-bucket", observe, apply, detail="private, encrypted")


def _bucket_drift(s3, name: str, tags: dict[str, str]) -> set[str]:
    """Which of public-access / encryption / tags differ from the wanted state."""
    drift: set[str] = set()
    try:
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        if any(not block.get(key) for key in PUBLIC_ACCESS_BLOCKED):
            drift.add("public-access")
    except Exception as exc:
        if error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
            raise
        drift.add("public-access")
    try:
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        algorithms = {r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules}
        if not algorithms & _ENCRYPTION_ALGORITHMS:
            drift.add("encryption")
    except Exception as exc:
        if error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        drift.add("encryption")
    current = _bucket_tags(s3, name)
    if any(current.get(k) != v for k, v in tags.items()):
        drift.add("tags")
    return drift


def _bucket_tags(s3, name: str) -> dict[str, str]:
    try:
        return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
    except Exception as exc:
        if error_code(exc) != "NoSuchTagSet":
            raise
        return {}


def object_size(s3, bucket: str, key: str) -> int | None:
    """The object's size, or None when it does not exist."""
    try:
        return s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise aws_error(exc, f"checking s3://{bucket}/{key}") from None


def upload_file(s3, path: Path, bucket: str, key: str, progress: Callable[[int], None], tags: dict[str, str]) -> None:
    """Upload through s3transfer (multipart and parallel above its threshold), tagged, encrypted."""
    from urllib.parse import urlencode

    from boto3.s3.transfer import S3Transfer, TransferConfig

    transfer = S3Transfer(s3, TransferConfig(multipart_threshold=16 * 1024 * 1024, max_concurrency=8))
    try:
        transfer.upload_file(
            str(path),
            bucket,
            key,
            callback=progress,
            extra_args={"ServerSideEncryption": "AES256", "Tagging": urlencode(sorted(tags.items()))},
        )
    except Exception as exc:
        cause = getattr(exc, "last_exception", None) or getattr(exc, "__cause__", None) or exc
        raise aws_error(cause, f"uploading {path.name} to s3://{bucket}/{key}") from None
