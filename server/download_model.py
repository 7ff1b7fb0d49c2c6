"""`python -m server.download_model`: S3_BUCKET/S3_PREFIX -> MODEL_PATH, verified, resumable; then every
LoRA adapter in ADAPTERS (`name=key-prefix` words) -> ADAPTERS_PATH/<name>, each against its manifest, and
every complete adapter under ADAPTERS_ROOT (a key prefix) that ADAPTERS does not name: one pushed since the
deploy, which the server then serves from the start too (their names in ADAPTERS_PATH/.llmctl-pushed).

Credentials come from the default chain only (IRSA in the pod); AWS_ENDPOINT_URL is honoured by
botocore. Progress is JSON lines on stdout (`start`, `progress` at least once a second, `verify_failed`,
`done` or `error`; `adapter_<event>` with the adapter's `name` for each adapter's, before the model's
`done`); a failure also prints one line on stderr and exits 1 (2 for bad settings).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from server.s3_download import Downloader, DownloadError
from server.settings import MANIFEST_NAME, PUSHED_ADAPTERS

PROGRESS_INTERVAL_S = 0.5
_emit_lock = threading.Lock()


def emit(event: dict) -> None:
    with _emit_lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def explain(exc: BaseException, bucket: str, prefix: str) -> str:
    """One clear line for the failures an operator can fix."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = f"s3://{bucket}/{prefix.strip('/')}"
    if isinstance(exc, DownloadError):
        return str(exc)
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found (the pod's service account needs its IAM role; IRSA)"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach S3: {exc}"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket",):
            return f"bucket {bucket} does not exist (check S3_BUCKET)"
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId"):
            return f"access denied to {where} ({exc.operation_name}): the role needs s3:GetObject and s3:ListBucket"
        if code in ("NoSuchKey", "404"):
            return f"an object under {where} listed in the manifest is missing ({exc.operation_name})"
        return f"S3 {exc.operation_name} failed on {where}: {code} {exc.response.get('Error', {}).get('Message', '')}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename or 'model folder'})"
    return f"{type(exc).__name__}: {exc}"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise DownloadError(f"{name}={raw!r} must be a positive integer")
    return int(raw)


def adapter_list(raw: str, root: str) -> list[tuple[str, str]]:
    """(name, key prefix) of each ADAPTERS word; ADAPTERS_PATH is required with them."""
    out = []
    for word in raw.split():
        name, _, prefix = word.partition("=")
        if not name or not prefix.strip("/") or "/" in name or name.startswith("."):
            raise DownloadError(f"ADAPTERS entry {word!r} must be name=key-prefix")
        out.append((name, prefix.strip("/")))
    if out and not root:
        raise DownloadError("ADAPTERS is set but ADAPTERS_PATH is not")
    return out


def download_adapters(s3, bucket: str, adapters: list[tuple[str, str]], root: Path, part_size: int,
                      concurrency: int, report: Callable[[dict], None] = emit) -> list[dict]:
    """Each adapter needs its manifest (written last by `llmctl adapter push`): a half-pushed adapter fails here,
    not as an engine that starts without it. The running server fetches one the same way (api_adapters.py)."""
    done = []
    for name, prefix in adapters:
        def on_event(event: dict, name: str = name) -> None:
            report({**event, "event": f"adapter_{event['event']}", "name": name})

        downloader = Downloader(s3, bucket, prefix, root / name, part_size=part_size, concurrency=concurrency,
                                on_event=on_event)
        if not downloader.plan()[1]:
            raise DownloadError(f"adapter {name}: s3://{bucket}/{prefix}/llmctl-manifest.json is missing "
                                "(push it with `llmctl adapter push`, or remove it from model.adapters)")
        summary = downloader.run()
        on_event({"event": "done", **summary})
        done.append({"name": name, "bytes_total": summary["bytes_total"], "bytes_fetched": summary["bytes_fetched"]})
    return done


def s3_client(concurrency: int):
    """botocore's own session: the same credential chain (IRSA) and AWS_ENDPOINT_URL as boto3, but
    0.24 s less start-up (0.49 vs 0.73 s to the first request), 5% of a 1 GiB download."""
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "s3", config=Config(max_pool_connections=concurrency + 4, retries={"mode": "adaptive"}))


def pushed_since(s3, bucket: str, root: str, declared: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(name, key prefix) of every adapter under the `root` prefix with a manifest that `declared` lacks."""
    root = f"{root.strip('/')}/"
    named = {name for name, _ in declared} | {prefix for _, prefix in declared}
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            prefix = common["Prefix"].rstrip("/")
            name = prefix[len(root):]
            if name in named or prefix in named or "/" in name or name.startswith("."):
                continue
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{MANIFEST_NAME}", MaxKeys=1)
            if listed.get("KeyCount"):  # no manifest: a push that did not finish, not an adapter yet
                found.append((name, prefix))
    return found


def download_pushed(s3, bucket: str, root: str, declared: list[tuple[str, str]], path: Path, part_size: int,
                    concurrency: int) -> list[dict]:
    pushed = pushed_since(s3, bucket, root, declared)
    done = download_adapters(s3, bucket, pushed, path, part_size, concurrency)
    (path / PUSHED_ADAPTERS).write_text("".join(f"{name}\n" for name, _ in pushed))
    return done


def main() -> int:
    bucket = os.environ.get("S3_BUCKET", "").strip()
    prefix = os.environ.get("S3_PREFIX", "").strip()
    dest = os.environ.get("MODEL_PATH", "").strip()
    try:
        if not bucket or not dest:
            raise DownloadError("S3_BUCKET and MODEL_PATH must be set")
        part_size = _int_env("DOWNLOAD_PART_MB", 64) * 1024 * 1024
        concurrency = _int_env("DOWNLOAD_CONCURRENCY", 16)
        adapters = adapter_list(os.environ.get("ADAPTERS", ""), os.environ.get("ADAPTERS_PATH", "").strip())
        adapters_root = os.environ.get("ADAPTERS_ROOT", "").strip()
        if adapters_root and not os.environ.get("ADAPTERS_PATH", "").strip():
            raise DownloadError("ADAPTERS_ROOT is set but ADAPTERS_PATH is not")
    except DownloadError as exc:
        print(f"download_model: {exc}", file=sys.stderr)
        return 2

    s3 = s3_client(concurrency)
    downloader = Downloader(s3, bucket, prefix, Path(dest), part_size=part_size, concurrency=concurrency,
                            on_event=emit, manifest_digest=os.environ.get("MODEL_MANIFEST_DIGEST", "").strip() or None)
    started = time.monotonic()
    stop = threading.Event()

    def report() -> None:
        p = downloader.progress
        while not stop.wait(PROGRESS_INTERVAL_S):
            if p.files_total:
                emit({"event": "progress", "bytes_done": p.bytes_done, "bytes_total": p.bytes_total,
                      "files_done": p.files_done, "files_total": p.files_total,
                      "rate_bps": int(p.bytes_fetched / max(time.monotonic() - started, 1e-6))})

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        summary = downloader.run()
        stop.set()
        adapters_path = Path(os.environ.get("ADAPTERS_PATH", "").strip())
        summary["adapters"] = download_adapters(s3, bucket, adapters, adapters_path, part_size, concurrency)
        if adapters_root:
            summary["adapters"] += download_pushed(s3, bucket, adapters_root, adapters, adapters_path, part_size,
                                                   concurrency)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes one line
        if isinstance(exc, KeyboardInterrupt):
            return 130
        line = explain(exc, bucket, prefix)
        emit({"event": "error", "message": line})
        print(f"download_model: {line}", file=sys.stderr)
        return 1
    finally:
        stop.set()
        reporter.join()
    seconds = time.monotonic() - started
    emit({"event": "done", **summary, "seconds": round(seconds, 3),
          "rate_bps": int(summary["bytes_fetched"] / max(seconds, 1e-6))})
    return 0


if __name__ == "__main__":
    sys.exit(main())
