"""S3 adapter: the build bucket (private, encrypted, tagged), uploads with progress, JSON objects,
sizes for cost, and the delete side (every version, then the bucket).

Every function takes an injected boto3 S3 client; nothing here prints or reads config.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from llmctl.aws.errors import AWS_ERRORS, aws_call, aws_error, error_code
from llmctl.aws.tagging import tag_list, tags
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
NO_BUCKET = ("404", "NoSuchBucket", "NotFound")
NO_KEY = ("404", "NoSuchKey", "NotFound")


# --- buckets ---------------------------------------------------------------------------------
def bucket_exists(s3, name: str) -> bool:
    return aws_call(f"checking S3 bucket {name}", lambda: s3.head_bucket(Bucket=name) is not None, absent=NO_BUCKET,
                    default=False)


def create_bucket(s3, name: str, region: str) -> None:
    """us-east-1 takes no location constraint; every other region needs one."""
    extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    aws_call(f"creating S3 bucket {name}", lambda: s3.create_bucket(Bucket=name, **extra))


def bucket_step(s3, name: str, region: str, wanted_tags: dict[str, str]) -> Step:
    """Ensure a private bucket: created if missing, public access blocked, encrypted, tagged."""

    def observe() -> Action:
        try:
            s3.head_bucket(Bucket=name)
        except AWS_ERRORS as exc:
            code = error_code(exc)
            if code in NO_BUCKET:
                return "create"
            if code in ("403", "AccessDenied"):
                raise LlmctlError(
                    f"S3 bucket {name} exists but this AWS identity cannot use it",
                    hint="bucket names are global: another account may own it; set project.name to something else",
                ) from None
            raise aws_error(exc, f"checking S3 bucket {name}") from None
        try:
            return "none" if not _bucket_drift(s3, name, wanted_tags) else "update"
        except AWS_ERRORS as exc:
            raise aws_error(exc, f"checking S3 bucket {name}") from None

    def apply() -> str | None:
        if not bucket_exists(s3, name):
            create_bucket(s3, name, region)
        try:
            drift = _bucket_drift(s3, name, wanted_tags)
            if "public-access" in drift:
                s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCKED)
            if "encryption" in drift:
                s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=SSE_S3)
            if "tags" in drift:
                merged = {**_bucket_tags(s3, name), **wanted_tags}
                s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list(merged)})
        except AWS_ERRORS as exc:
            raise aws_error(exc, f"configuring S3 bucket {name}") from None
        return ", ".join(sorted(drift)) if drift else None

    return Step(f"S3 bucket {name}", "s3-bucket", observe, apply, detail="private, encrypted")


def _bucket_drift(s3, name: str, wanted_tags: dict[str, str]) -> set[str]:
    """Which of public-access / encryption / tags differ from the wanted state."""
    drift: set[str] = set()
    try:
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        if any(not block.get(key) for key in PUBLIC_ACCESS_BLOCKED):
            drift.add("public-access")
    except AWS_ERRORS as exc:
        if error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
            raise
        drift.add("public-access")
    try:
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        algorithms = {r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules}
        if not algorithms & _ENCRYPTION_ALGORITHMS:
            drift.add("encryption")
    except AWS_ERRORS as exc:
        if error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        drift.add("encryption")
    current = _bucket_tags(s3, name)
    if any(current.get(k) != v for k, v in wanted_tags.items()):
        drift.add("tags")
    return drift


def _bucket_tags(s3, name: str) -> dict[str, str]:
    try:
        return tags(s3.get_bucket_tagging(Bucket=name)["TagSet"])
    except AWS_ERRORS as exc:
        if error_code(exc) != "NoSuchTagSet":
            raise
        return {}


def bucket_bytes(s3, name: str) -> int:
    """What every object version occupies (S3 bills storage by it)."""
    total = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
            total += sum(v.get("Size", 0) for v in page.get("Versions", []))
    except AWS_ERRORS as exc:
        raise aws_error(exc, f"measuring S3 bucket {name}") from None
    return total


def delete_bucket(s3, name: str) -> int:
    """Every object version and delete marker (a versioned bucket cannot go otherwise), then the
    bucket; returns how many versions went. A bucket already gone is done."""
    count = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
            keys = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for start in range(0, len(keys), 1000):
                s3.delete_objects(Bucket=name, Delete={"Objects": keys[start : start + 1000], "Quiet": True})
                count += len(keys[start : start + 1000])
        s3.delete_bucket(Bucket=name)
    except AWS_ERRORS as exc:
        if error_code(exc) not in NO_BUCKET:
            raise aws_error(exc, f"deleting S3 bucket {name}") from None
    return count


# --- objects ---------------------------------------------------------------------------------
def object_size(s3, bucket: str, key: str) -> int | None:
    """The object's size, or None when it does not exist."""
    return aws_call(f"checking s3://{bucket}/{key}", lambda: s3.head_object(Bucket=bucket, Key=key)["ContentLength"],
                    absent=NO_KEY)


def object_sizes(s3, bucket: str, prefix: str) -> dict[str, int]:
    """Key (below `prefix`) -> size of every object under `prefix`."""
    sizes = {}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                sizes[obj["Key"][len(prefix):]] = obj["Size"]
    except AWS_ERRORS as exc:
        raise aws_error(exc, f"listing s3://{bucket}/{prefix}") from None
    return sizes


def read_object(s3, bucket: str, key: str) -> bytes | None:
    """The object's bytes; None when there is no such object (or no such bucket)."""
    return aws_call(f"reading s3://{bucket}/{key}", lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read(),
                    absent=NO_KEY + ("NoSuchBucket",))


def read_json(s3, bucket: str, key: str):
    """The object parsed as JSON; None when there is no such object or it is not JSON."""
    body = read_object(s3, bucket, key)
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def put_json(s3, bucket: str, key: str, document, object_tags: dict[str, str]) -> None:
    aws_call(f"writing s3://{bucket}/{key}", lambda: s3.put_object(
        Bucket=bucket, Key=key, Body=json.dumps(document, indent=2).encode(), ContentType="application/json",
        Tagging=urlencode(sorted(object_tags.items()))))


def upload_file(s3, path: Path, bucket: str, key: str, progress: Callable[[int], None], object_tags: dict[str, str]) -> None:
    """Upload through s3transfer (multipart and parallel above its threshold), tagged, encrypted."""
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import S3Transfer, TransferConfig

    transfer = S3Transfer(s3, TransferConfig(multipart_threshold=16 * 1024 * 1024, max_concurrency=8))
    try:
        transfer.upload_file(
            str(path),
            bucket,
            key,
            callback=progress,
            extra_args={"ServerSideEncryption": "AES256", "Tagging": urlencode(sorted(object_tags.items()))},
        )
    except (S3UploadFailedError, *AWS_ERRORS) as exc:
        # S3Transfer wraps the ClientError it caught; its code carries the fix.
        cause = exc.__context__ if isinstance(exc.__context__, AWS_ERRORS) else exc
        raise aws_error(cause, f"uploading {path.name} to s3://{bucket}/{key}") from None


def upload_files(s3, bucket: str, files: list[tuple[Path, str]], object_tags: dict[str, str],
                 on_bytes: Callable[[int], None], *, part_size: int, concurrency: int) -> None:
    """Upload each (path, key) in parallel, multipart in `part_size` parts, each object tagged.

    `on_bytes(n)` is called (from the transfer threads, one at a time) as bytes go.
    """
    from boto3.s3.transfer import TransferConfig, create_transfer_manager
    from s3transfer.subscribers import BaseSubscriber

    lock = threading.Lock()

    class Progress(BaseSubscriber):
        def on_progress(self, future, bytes_transferred, **kwargs):
            with lock:
                on_bytes(bytes_transferred)

    tagging = urlencode(sorted(object_tags.items()))
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=concurrency)
    with create_transfer_manager(s3, config) as manager:
        futures = [manager.upload(str(path), bucket, key, extra_args={"Tagging": tagging}, subscribers=[Progress()])
                   for path, key in files]
        for future, (path, key) in zip(futures, files, strict=True):
            try:
                future.result()
            except AWS_ERRORS as exc:
                raise aws_error(exc, f"uploading {path.name} to s3://{bucket}/{key}") from None


def object_listing(s3, bucket: str, prefix: str) -> dict[str, dict]:
    """Key (below `prefix`) -> {"size", "modified" (ISO 8601)} of every object under `prefix`."""
    listing = {}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                listing[obj["Key"][len(prefix):]] = {"size": obj["Size"], "modified": obj["LastModified"].isoformat()}
    except AWS_ERRORS as exc:
        raise aws_error(exc, f"listing s3://{bucket}/{prefix}") from None
    return listing


def child_prefixes(s3, bucket: str, prefix: str) -> list[str]:
    """The `folder` names directly under `prefix` (which ends with '/'), as S3's delimiter listing gives them;
    none in a bucket that does not exist (yet)."""
    found = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            found += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
    except AWS_ERRORS as exc:
        if error_code(exc) in NO_BUCKET:
            return []
        raise aws_error(exc, f"listing s3://{bucket}/{prefix}") from None
    return sorted(found)


def read_range(s3, bucket: str, key: str, start: int, end: int) -> bytes:
    """Bytes start..end (inclusive) of an object: a file's header without fetching the file."""
    return aws_call(f"reading s3://{bucket}/{key}",
                    lambda: s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")["Body"].read())


def delete_keys(s3, bucket: str, keys: list[str]) -> None:
    """Delete the objects (1000 a request); a key already gone is done."""
    for start in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[start : start + 1000]]
        response = aws_call(f"deleting objects in s3://{bucket}",
                            lambda: s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}))
        errors = (response or {}).get("Errors") or []
        if errors:
            first = errors[0]
            raise LlmctlError(f"S3 refused to delete s3://{bucket}/{first.get('Key')}: {first.get('Code')} "
                              f"{first.get('Message', '')}".rstrip(), hint="the identity needs s3:DeleteObject on it")
