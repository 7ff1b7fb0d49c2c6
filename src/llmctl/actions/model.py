"""`llmctl model upload DIR`: check a Hugging Face model folder, write the manifest, upload what
changed (multipart, parallel), tag every object, and the manifest last.

The manifest (`llmctl-manifest.json` at the prefix root) is what the pod's downloader
(`python -m server.download_model`) verifies against:
    {"version": 1, "created_by": "llmctl", "total_bytes": N,
     "files": [{"path": "model.safetensors", "size": 123, "sha256": "...",
                "part_size": 67108864, "part_sha256": ["...", ...]}, ...]}
`part_sha256` holds the sha256 of each `part_size` slice, so the downloader checks every ranged GET
as it arrives instead of re-reading the whole file after the last byte.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from llmctl.errors import ConfigError

MANIFEST_NAME = "llmctl-manifest.json"
MANIFEST_VERSION = 1
WEIGHT_SUFFIXES = (".safetensors", ".bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tiktoken.model")
PART_SIZE = 64 * 1024 * 1024
HASH_CHUNK = 256 * 1024  # stays in L2 cache while both digests read it


@dataclass
class UploadResult:
    bucket: str
    prefix: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_total: int = 0
    bytes_uploaded: int = 0

    @property
    def manifest_uri(self) -> str:
        return f"s3://{self.bucket}/{_key(self.prefix, MANIFEST_NAME)}"


def _key(prefix: str, path: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{path}" if prefix else path


def model_files(model_dir: Path) -> list[Path]:
    """The folder's files to upload (llmctl's own and hidden files left out), after checking it is
    a Hugging Face model: config.json, weights, tokenizer."""
    if not model_dir.is_dir():
        raise ConfigError(f"{model_dir} is not a folder")
    config = model_dir / "config.json"
    try:
        json.loads(config.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{model_dir} has no config.json", hint="point at a Hugging Face model folder") from None
    except ValueError as exc:
        raise ConfigError(f"{config} is not valid JSON ({exc})") from None
    files = sorted(
        p for p in model_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(model_dir).parts)
        and p.name != MANIFEST_NAME and ".llmctl-part" not in p.name
    )
    if not any(p.suffix in WEIGHT_SUFFIXES for p in files):
        raise ConfigError(f"{model_dir} has no weights (*.safetensors or *.bin)")
    if not any(p.name in TOKENIZER_FILES for p in files):
        raise ConfigError(f"{model_dir} has no tokenizer ({', '.join(TOKENIZER_FILES)})")
    return files


def file_digests(path: Path, part_size: int = PART_SIZE) -> tuple[str, list[str]]:
    """sha256 of the whole file and of each `part_size` slice, in one read of cache-sized chunks."""
    whole, parts = hashlib.sha256(), []
    with path.open("rb") as f:
        while True:
            part, left = hashlib.sha256(), part_size
            while left and (chunk := f.read(min(HASH_CHUNK, left))):
                whole.update(chunk)
                part.update(chunk)
                left -= len(chunk)
            if left == part_size:
                break
            parts.append(part.hexdigest())
    return whole.hexdigest(), parts


def build_manifest(model_dir: Path, files: list[Path], part_size: int = PART_SIZE) -> dict:
    """One file per thread: hashlib releases the GIL, so shards hash on every core at once."""
    with ThreadPoolExecutor(max(1, min(len(files), os.cpu_count() or 1))) as pool:
        digests = list(pool.map(lambda p: file_digests(p, part_size), files))
    entries = [{"path": p.relative_to(model_dir).as_posix(), "size": p.stat().st_size, "sha256": whole,
                "part_size": part_size, "part_sha256": parts} for p, (whole, parts) in zip(files, digests)]
    return {"version": MANIFEST_VERSION, "created_by": "llmctl", "total_bytes": sum(e["size"] for e in entries),
            "files": entries}


def _remote_state(s3, bucket: str, prefix: str) -> tuple[dict, dict]:
    """({path: manifest entry} from the remote manifest, {path: size} of the objects there)."""
    from llmctl.aws.s3 import object_sizes, read_json

    manifest = read_json(s3, bucket, _key(prefix, MANIFEST_NAME))
    try:
        entries = {e["path"]: e for e in manifest.get("files", [])}
    except (AttributeError, KeyError, TypeError):  # none, or not a manifest: every file is uploaded
        entries = {}
    start = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return entries, object_sizes(s3, bucket, start)


def upload_model(s3, model_dir: Path, bucket: str, prefix: str, tags: dict[str, str],
                 progress: Callable[[int, int], None] | None = None, *, concurrency: int = 8,
                 part_size: int = PART_SIZE, files: list[Path] | None = None) -> UploadResult:
    """Upload `model_dir` to s3://bucket/prefix; unchanged files (same size and sha256 as the remote
    manifest says, and present) are skipped. `progress(bytes_done, bytes_total)` is called as bytes go.
    `part_size` is the slice the manifest's per-part digests cover (the downloader's default part).
    `files`: what to upload when the folder is not a model (a LoRA adapter), checked by the caller."""
    from llmctl.aws.s3 import put_json, upload_files

    model_dir = Path(model_dir)
    manifest = build_manifest(model_dir, model_files(model_dir) if files is None else files, part_size)
    result = UploadResult(bucket, prefix.strip("/"))
    remote, sizes = _remote_state(s3, bucket, prefix)
    todo = []
    for entry in manifest["files"]:
        old = remote.get(entry["path"])
        same = old and old.get("sha256") == entry["sha256"] and old.get("size") == entry["size"]
        if same and sizes.get(entry["path"]) == entry["size"]:
            result.skipped.append(entry["path"])
        else:
            todo.append(entry)
    result.bytes_total = sum(e["size"] for e in todo)

    def on_bytes(count: int) -> None:
        result.bytes_uploaded += count
        if progress:
            progress(result.bytes_uploaded, result.bytes_total)

    upload_files(s3, bucket, [(model_dir / e["path"], _key(prefix, e["path"])) for e in todo], tags, on_bytes,
                 part_size=PART_SIZE, concurrency=concurrency)
    result.uploaded += [e["path"] for e in todo]
    # Last: a downloader that sees this manifest finds every file it lists.
    put_json(s3, bucket, _key(prefix, MANIFEST_NAME), manifest, tags)
    return result


def manifest_digest(s3, bucket: str, prefix: str) -> str | None:
    """`sha256:` of the model's manifest as stored (it lists every file's sha256: new weights under the same
    prefix are a new digest); None when there is no manifest there."""
    from llmctl.aws.s3 import read_object

    body = read_object(s3, bucket, _key(prefix, MANIFEST_NAME))
    return None if body is None else "sha256:" + hashlib.sha256(body).hexdigest()


def upload_model_from_config(cfg, names, aws, model_dir: Path, *, bucket: str | None, prefix: str | None,
                             progress: Callable[[int], None] | None = None) -> UploadResult:
    """`llmctl model upload`: the configured bucket/prefix unless overridden; `progress(delta)`."""
    bucket = bucket or cfg.model.bucket
    if not bucket:
        raise ConfigError("model.bucket is not set", hint="set model.bucket in llmctl.yaml or pass --bucket")
    sent = [0]

    def on_bytes(done: int, total: int) -> None:
        if progress:
            progress(done - sent[0])
        sent[0] = done

    return upload_model(aws.s3, Path(model_dir), bucket, prefix if prefix is not None else cfg.model.prefix, names.aws_tags, on_bytes)
