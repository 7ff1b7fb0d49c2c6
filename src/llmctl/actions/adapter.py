"""`llmctl adapter push | list | rm`: LoRA adapters in S3 beside the model, with `model upload`'s manifest.

An adapter lives at `<model.prefix>-adapters/<name>/` in model.bucket (or the key prefix `model.adapters`
gives it), with `llmctl-manifest.json` written last, so the pod's downloader verifies it as it does the
model. Everything under the adapters prefix that has a manifest is an adapter (discovery); `model.adapters`
declares the ones every replica must serve.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from llmctl.actions.adapter_fit import (
    ADAPTER_CONFIG,
    VLLM_LORA_RANKS,
    BaseModel,
    fit_problem,
    header_shapes,
    parse_header,
    read_adapter,
)
from llmctl.actions.model import MANIFEST_NAME, upload_model
from llmctl.errors import ConfigError, LlmctlError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise ConfigError(f"--name {name!r} is not an adapter name",
                          hint="use letters, digits, '.', '_' and '-' (at most 64); requests name it as their model")
    return name


def adapters_root(cfg) -> str:
    return f"{cfg.model.prefix}-adapters/"


def adapter_prefix(cfg, name: str) -> str:
    """Where adapter `name` lives in model.bucket: its `model.adapters` location, else under the adapters root."""
    declared = cfg.model.adapters.get(name)
    return (declared or f"{adapters_root(cfg)}{name}").strip("/")


def _bucket(cfg) -> str:
    if not cfg.model.bucket:
        raise ConfigError("model.bucket is not set", hint="set model.bucket in llmctl.yaml (adapters live beside the model)")
    return cfg.model.bucket


def base_from_s3(s3, bucket: str, prefix: str) -> BaseModel:
    """The deployed base model's config.json and tensor shapes, from its manifest and each safetensors
    shard's header (two ranged GETs a shard)."""
    from llmctl.aws.s3 import read_json, read_range

    where = f"s3://{bucket}/{prefix}"
    manifest = read_json(s3, bucket, f"{prefix}/{MANIFEST_NAME}")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise ConfigError(f"no base model at {where} (no {MANIFEST_NAME}) to check the adapter against",
                          hint="run `llmctl model upload DIR` first, or fix model.bucket/model.prefix")
    shapes: dict[str, list[int]] = {}
    for entry in manifest["files"]:
        path = str(entry.get("path", ""))
        if not path.endswith(".safetensors"):
            continue
        key = f"{prefix}/{path}"
        try:
            length = parse_header(read_range(s3, bucket, key, 0, 7))
            shapes.update(header_shapes(read_range(s3, bucket, key, 8, 8 + length - 1)))
        except (ValueError, KeyError, TypeError) as exc:
            raise LlmctlError(f"s3://{bucket}/{key} is not a safetensors file ({exc})") from None
    return BaseModel(where, read_json(s3, bucket, f"{prefix}/config.json") or {}, shapes)


def rank_limit(cfg) -> tuple[int, str]:
    if cfg.server.max_lora_rank:
        return cfg.server.max_lora_rank, "server.max_lora_rank"
    return VLLM_LORA_RANKS[-1], "vLLM's largest"


def push(cfg, names, s3, folder: Path, name: str, progress: Callable[[int, int], None] | None = None) -> dict:
    """Check the adapter and its fit on the base, then upload it (unchanged files skipped, tagged)."""
    check_name(name)
    adapter = read_adapter(folder)
    bucket, prefix = _bucket(cfg), adapter_prefix(cfg, name)
    limit, source = rank_limit(cfg)
    base = base_from_s3(s3, bucket, cfg.model.prefix)
    problem = fit_problem(adapter, base, limit, source)
    if problem:
        raise ConfigError(f"adapter {name} ({folder}): {problem}", hint="nothing was uploaded")
    result = upload_model(s3, Path(folder), bucket, prefix, names.aws_tags, progress, files=adapter.files)
    return {"name": name, "uri": f"s3://{bucket}/{prefix}/", "rank": adapter.rank,
            "target_modules": adapter.target_modules, "trained_on": adapter.base_name,
            "uploaded": result.uploaded, "skipped": result.skipped, "bytes_uploaded": result.bytes_uploaded,
            "size": adapter.size, "manifest_uri": result.manifest_uri}


def stored(cfg, s3) -> list[dict]:
    """Every adapter in S3 (discovered under the adapters root, or declared): name, size, rank, pushed when."""
    from llmctl.aws.s3 import child_prefixes, object_listing, read_json

    bucket = _bucket(cfg)
    found = set(child_prefixes(s3, bucket, adapters_root(cfg))) | set(cfg.model.adapters)
    rows = []
    for name in sorted(found):
        prefix = adapter_prefix(cfg, name)
        listing = object_listing(s3, bucket, f"{prefix}/")
        manifest = listing.get(MANIFEST_NAME)
        config = read_json(s3, bucket, f"{prefix}/{ADAPTER_CONFIG}") if manifest else None
        rows.append({"name": name, "uri": f"s3://{bucket}/{prefix}/", "declared": name in cfg.model.adapters,
                     "complete": manifest is not None,
                     "size": sum(o["size"] for k, o in listing.items() if k != MANIFEST_NAME),
                     "rank": (config or {}).get("r"), "pushed_at": manifest["modified"] if manifest else None})
    return rows


def removal_plan(cfg, s3, name: str) -> dict:
    from llmctl.aws.s3 import object_listing

    check_name(name)
    bucket, prefix = _bucket(cfg), adapter_prefix(cfg, name)
    listing = object_listing(s3, bucket, f"{prefix}/")
    if not listing:
        raise LlmctlError(f"no adapter {name} at s3://{bucket}/{prefix}/", hint="`llmctl adapter list` shows what is there")
    return {"name": name, "uri": f"s3://{bucket}/{prefix}/", "bucket": bucket,
            "keys": [f"{prefix}/{k}" for k in sorted(listing)], "size": sum(o["size"] for o in listing.values()),
            "declared": name in cfg.model.adapters}


def remove(s3, plan: dict) -> None:
    """The manifest first: a downloader never sees an adapter whose files are going."""
    from llmctl.aws.s3 import delete_keys

    manifest = [k for k in plan["keys"] if k.endswith(f"/{MANIFEST_NAME}")]
    delete_keys(s3, plan["bucket"], manifest)
    delete_keys(s3, plan["bucket"], [k for k in plan["keys"] if k not in manifest])
