"""Server settings from environment variables, validated once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
LOAD_FORMATS = ("auto", "safetensors", "pt", "runai_streamer", "runai_streamer_sharded", "dummy")
COMPLETE_MARKER = ".llmctl-complete"
MANIFEST_NAME = "llmctl-manifest.json"
MAX_BODY_BYTES = 1024 * 1024


class SettingsError(ValueError):
    """A bad environment variable; the message is one line naming it."""


@dataclass(frozen=True)
class Settings:
    model_path: str
    served_model_name: str
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    dtype: str = "auto"
    max_num_seqs: int | None = None
    quantization: str | None = None
    enforce_eager: bool = False
    load_format: str = "auto"
    host: str = "0.0.0.0"
    port: int = 8000
    api_key: str | None = None
    max_concurrent_requests: int = 64
    max_queued_requests: int = 256
    drain_timeout_s: float = 30.0
    retry_after_s: int = 1
    log_prompts: bool = False
    log_level: str = "INFO"


def _int(env: Mapping[str, str], name: str, default: int | None, *, low: int = 1, high: int | None = None) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise SettingsError(f"{name}={value} must be {bound}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not low < value <= high:
        raise SettingsError(f"{name}={value} must be in ({low}, {high}]")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} must be true or false")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip() or default
    if raw not in choices:
        raise SettingsError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw


def _check_model_path(path: str, load_format: str) -> None:
    if path.startswith("s3://"):
        if not load_format.startswith("runai_streamer"):
            raise SettingsError(f"MODEL_PATH={path} is an S3 URL: set LOAD_FORMAT=runai_streamer or download it first")
        return
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise SettingsError(f"MODEL_PATH={path} has no config.json (not a Hugging Face model folder)")
    if (folder / MANIFEST_NAME).exists() and not (folder / COMPLETE_MARKER).exists():
        raise SettingsError(f"MODEL_PATH={path} is a partial download ({COMPLETE_MARKER} missing): rerun python -m server.download_model")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every variable; raise SettingsError with a one-line reason."""
    env = os.environ if env is None else env
    model_path = env.get("MODEL_PATH", "").strip()
    if not model_path:
        raise SettingsError("MODEL_PATH is not set")
    load_format = _choice(env, "LOAD_FORMAT", "auto", LOAD_FORMATS)
    _check_model_path(model_path, load_format)
    concurrent = _int(env, "MAX_CONCURRENT_REQUESTS", 64)
    max_num_seqs = _int(env, "MAX_NUM_SEQS", None)
    log_level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"LOG_LEVEL={log_level!r} must be one of DEBUG, INFO, WARNING, ERROR")
    return Settings(
        model_path=model_path,
        served_model_name=env.get("SERVED_MODEL_NAME", "").strip() or model_path.rstrip("/").rsplit("/", 1)[-1],
        max_model_len=_int(env, "MAX_MODEL_LEN", None, low=16),
        gpu_memory_utilization=_float(env, "GPU_MEMORY_UTILIZATION", 0.9, low=0.0, high=1.0),
        tensor_parallel_size=_int(env, "TENSOR_PARALLEL_SIZE", 1, high=64),
        dtype=_choice(env, "DTYPE", "auto", DTYPES),
        max_num_seqs=max_num_seqs,
        quantization=env.get("QUANTIZATION", "").strip() or None,
        enforce_eager=_bool(env, "ENFORCE_EAGER", False),
        load_format=load_format,
        host=env.get("HOST", "0.0.0.0").strip() or "0.0.0.0",
        port=_int(env, "PORT", 8000, high=65535),
        api_key=env.get("API_KEY") or None,
        max_concurrent_requests=concurrent,
        max_queued_requests=_int(env, "MAX_QUEUED_REQUESTS", 256, low=0),
        drain_timeout_s=float(_int(env, "DRAIN_TIMEOUT_S", 30, low=0)),
        retry_after_s=_int(env, "RETRY_AFTER_S", 1),
        log_prompts=_bool(env, "LOG_PROMPTS", False),
        log_level=log_level,
    )
