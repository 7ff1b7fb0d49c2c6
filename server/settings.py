"""Server settings from environment variables, validated once at start-up (no vLLM import here).

Two kinds: llmctl's own (listen address, auth, backpressure, drain, logs) and the typed engine
settings, each of which becomes one or more `vllm serve` options (`vllm_options()`). Anything
else `vllm serve` takes goes in VLLM_EXTRA_ARGS, parsed by vLLM's own parser in
`server.vllm_seam`, which also refuses an option that a typed setting already sets.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
LOAD_FORMATS = ("auto", "safetensors", "pt", "runai_streamer", "runai_streamer_sharded", "dummy")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
COMPLETE_MARKER = ".llmctl-complete"
MANIFEST_NAME = "llmctl-manifest.json"
PUSHED_ADAPTERS = ".llmctl-pushed"  # in ADAPTERS_PATH: the adapters the init container found pushed since the deploy
MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH_LIMIT = 1024  # the most MAX_BATCH_PROMPTS and MAX_N may be set to


class SettingsError(ValueError):
    """A bad environment variable; the message is one line naming it."""


@dataclass(frozen=True)
class Settings:
    model_path: str
    served_model_name: str
    # Typed engine settings: None means "not set", i.e. vLLM's own default.
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    tensor_parallel_size: int | None = None
    dtype: str | None = None
    max_num_seqs: int | None = None
    quantization: str | None = None
    enforce_eager: bool | None = None
    load_format: str | None = None
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    enable_lora: bool | None = None
    max_loras: int | None = None
    max_lora_rank: int | None = None
    lora_modules: tuple[str, ...] = ()
    # Where `POST /v1/fetch_lora_adapter` (api_adapters.py) fetches an adapter from and to (the init container's).
    s3_bucket: str | None = None
    adapters_path: str | None = None
    vllm_extra_args: tuple[str, ...] = ()
    # llmctl's own.
    host: str = "0.0.0.0"
    port: int = 8000
    metrics_port: int = 9100  # 0: /metrics on PORT instead (no second listener)
    api_key: str | None = None
    max_concurrent_requests: int = 64
    max_queued_requests: int = 256
    drain_timeout_s: float = 30.0
    retry_after_s: int = 1
    log_prompts: bool = False
    log_level: str = "INFO"
    # Limits against hostile clients (http_limits.py: the connection; request_checks.py: the body).
    max_connections: int = 512
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    idle_timeout_s: int = 5
    body_timeout_s: float = 30.0
    max_prompt_chars: int | None = None  # None: request_checks.PROMPT_CHARS_PER_TOKEN x the context length
    max_stop_sequences: int = 4
    max_stop_chars: int = 256
    max_batch_prompts: int = 32
    max_n: int = 16

    def vllm_options(self) -> list[tuple[str, list[str]]]:
        """(variable, `vllm serve` options) for every typed setting that is set, in a fixed order.

        MODEL_PATH, SERVED_MODEL_NAME, HOST and PORT are always set, so VLLM_EXTRA_ARGS can never
        change them behind the server's back.
        """
        out = [("MODEL_PATH", ["--model", self.model_path]),
               ("SERVED_MODEL_NAME", ["--served-model-name", self.served_model_name]),
               ("HOST", ["--host", self.host]), ("PORT", ["--port", str(self.port)])]
        valued = [("MAX_MODEL_LEN", "--max-model-len", self.max_model_len),
                  ("GPU_MEMORY_UTILIZATION", "--gpu-memory-utilization", self.gpu_memory_utilization),
                  ("TENSOR_PARALLEL_SIZE", "--tensor-parallel-size", self.tensor_parallel_size),
                  ("DTYPE", "--dtype", self.dtype),
                  ("MAX_NUM_SEQS", "--max-num-seqs", self.max_num_seqs),
                  ("QUANTIZATION", "--quantization", self.quantization),
                  ("LOAD_FORMAT", "--load-format", self.load_format),
                  ("REASONING_PARSER", "--reasoning-parser", self.reasoning_parser),
                  ("MAX_LORAS", "--max-loras", self.max_loras),
                  ("MAX_LORA_RANK", "--max-lora-rank", self.max_lora_rank)]
        out += [(name, [flag, str(value)]) for name, flag, value in valued if value is not None]
        for name, flag, value in (("ENFORCE_EAGER", "enforce-eager", self.enforce_eager),
                                  ("ENABLE_LORA", "enable-lora", self.enable_lora)):
            if value is not None:
                out.append((name, [f"--{flag}" if value else f"--no-{flag}"]))
        if self.tool_call_parser:
            out.append(("TOOL_CALL_PARSER", ["--enable-auto-tool-choice", "--tool-call-parser", self.tool_call_parser]))
        if self.lora_modules:
            out.append(("LORA_MODULES", ["--lora-modules", *self.lora_modules]))
        return out


def _raw(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _int(env: Mapping[str, str], name: str, default: int | None, *, low: int = 1, high: int | None = None) -> int | None:
    raw = _raw(env, name)
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


def _fraction(env: Mapping[str, str], name: str) -> float | None:
    raw = _raw(env, name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise SettingsError(f"{name}={value} must be in (0.0, 1.0]")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _raw(env, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0.0 < value <= 3600:
        raise SettingsError(f"{name}={value:g} must be in (0, 3600] seconds")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool | None:
    raw = _raw(env, name).lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} must be true or false")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    raw = _raw(env, name)
    if raw and raw not in choices:
        raise SettingsError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw or None


def _words(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(env.get(name, "")))
    except ValueError as exc:  # an unclosed quote
        raise SettingsError(f"{name}={env.get(name)!r} cannot be split like a shell line: {exc}") from None


def _check_model_path(path: str, load_format: str | None) -> None:
    if path.startswith("s3://"):
        if not (load_format or "").startswith("runai_streamer"):
            raise SettingsError(f"MODEL_PATH={path} is an S3 URL: set LOAD_FORMAT=runai_streamer or download it first")
        return
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise SettingsError(f"MODEL_PATH={path} has no config.json (not a Hugging Face model folder)")
    if (folder / MANIFEST_NAME).exists() and not (folder / COMPLETE_MARKER).exists():
        raise SettingsError(f"MODEL_PATH={path} is a partial download ({COMPLETE_MARKER} missing): rerun python -m server.download_model")


def _lora_modules(env: Mapping[str, str], enable_lora: bool | None) -> tuple[str, ...]:
    """LORA_MODULES: `name=path` entries separated by spaces; each local path must hold an adapter. With them,
    each adapter the init container fetched as pushed since the deploy (ADAPTERS_PATH/.llmctl-pushed)."""
    modules = _words(env, "LORA_MODULES")
    pushed = Path(_raw(env, "ADAPTERS_PATH") or ".") / PUSHED_ADAPTERS
    if _raw(env, "ADAPTERS_PATH") and pushed.is_file():
        named = {item.partition("=")[0] for item in modules}
        modules += tuple(f"{name}={pushed.parent / name}" for name in pushed.read_text().split() if name not in named)
    for item in modules:
        name, _, path = item.partition("=")
        if not name or not path:
            raise SettingsError(f"LORA_MODULES entry {item!r} must be name=path")
        if "://" not in path and not (Path(path) / "adapter_config.json").is_file():
            raise SettingsError(f"LORA_MODULES entry {item!r}: {path} has no adapter_config.json (not a PEFT LoRA adapter)")
    lora_only = [n for n in ("MAX_LORAS", "MAX_LORA_RANK") if _raw(env, n)] + (["LORA_MODULES"] if modules else [])
    if lora_only and not enable_lora:
        raise SettingsError(f"{', '.join(lora_only)} set but ENABLE_LORA is not true: set ENABLE_LORA=true")
    return modules


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every variable; raise SettingsError with a one-line reason."""
    env = os.environ if env is None else env
    model_path = _raw(env, "MODEL_PATH")
    if not model_path:
        raise SettingsError("MODEL_PATH is not set")
    load_format = _choice(env, "LOAD_FORMAT", LOAD_FORMATS)
    _check_model_path(model_path, load_format)
    log_level = _raw(env, "LOG_LEVEL").upper() or "INFO"
    if log_level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL={log_level!r} must be one of {', '.join(LOG_LEVELS)}")
    enable_lora = _bool(env, "ENABLE_LORA")
    max_concurrent, max_queued = _int(env, "MAX_CONCURRENT_REQUESTS", 64), _int(env, "MAX_QUEUED_REQUESTS", 256, low=0)
    max_connections = _int(env, "MAX_CONNECTIONS", 512)
    if max_connections <= max_concurrent + max_queued:
        raise SettingsError(f"MAX_CONNECTIONS={max_connections} must be above MAX_CONCURRENT_REQUESTS + "
                            f"MAX_QUEUED_REQUESTS ({max_concurrent + max_queued}), or queued requests are refused "
                            "a connection")
    port, metrics_port = _int(env, "PORT", 8000, high=65535), _int(env, "METRICS_PORT", 9100, low=0, high=65535)
    if metrics_port == port:
        raise SettingsError(f"METRICS_PORT={metrics_port} is PORT too: give /metrics its own port, or METRICS_PORT=0 "
                            "to serve it on PORT")
    return Settings(
        model_path=model_path,
        served_model_name=_raw(env, "SERVED_MODEL_NAME") or model_path.rstrip("/").rsplit("/", 1)[-1],
        max_model_len=_int(env, "MAX_MODEL_LEN", None, low=16),
        gpu_memory_utilization=_fraction(env, "GPU_MEMORY_UTILIZATION"),
        tensor_parallel_size=_int(env, "TENSOR_PARALLEL_SIZE", None, high=64),
        dtype=_choice(env, "DTYPE", DTYPES),
        max_num_seqs=_int(env, "MAX_NUM_SEQS", None),
        quantization=_raw(env, "QUANTIZATION") or None,
        enforce_eager=_bool(env, "ENFORCE_EAGER"),
        load_format=load_format,
        tool_call_parser=_raw(env, "TOOL_CALL_PARSER") or None,
        reasoning_parser=_raw(env, "REASONING_PARSER") or None,
        enable_lora=enable_lora,
        max_loras=_int(env, "MAX_LORAS", None),
        max_lora_rank=_int(env, "MAX_LORA_RANK", None),
        lora_modules=_lora_modules(env, enable_lora),
        s3_bucket=_raw(env, "S3_BUCKET") or None,
        adapters_path=_raw(env, "ADAPTERS_PATH") or None,
        vllm_extra_args=_words(env, "VLLM_EXTRA_ARGS"),
        host=_raw(env, "HOST") or "0.0.0.0",
        port=port,
        metrics_port=metrics_port,
        api_key=env.get("API_KEY") or None,
        max_concurrent_requests=max_concurrent,
        max_queued_requests=max_queued,
        drain_timeout_s=float(_int(env, "DRAIN_TIMEOUT_S", 30, low=0)),
        retry_after_s=_int(env, "RETRY_AFTER_S", 1),
        log_prompts=bool(_bool(env, "LOG_PROMPTS")),
        log_level=log_level,
        max_connections=max_connections,
        max_header_bytes=_int(env, "MAX_HEADER_BYTES", 32 * 1024, low=1024, high=MAX_BODY_BYTES),
        max_headers=_int(env, "MAX_HEADERS", 100, high=10_000),
        header_timeout_s=_seconds(env, "HEADER_TIMEOUT_S", 10.0),
        idle_timeout_s=_int(env, "IDLE_TIMEOUT_S", 5, high=3600),
        body_timeout_s=_seconds(env, "BODY_TIMEOUT_S", 30.0),
        max_prompt_chars=_int(env, "MAX_PROMPT_CHARS", None, high=MAX_BODY_BYTES),
        max_stop_sequences=_int(env, "MAX_STOP_SEQUENCES", 4, low=0, high=1024),
        max_stop_chars=_int(env, "MAX_STOP_CHARS", 256, high=MAX_BODY_BYTES),
        max_batch_prompts=_int(env, "MAX_BATCH_PROMPTS", 32, high=MAX_BATCH_LIMIT),
        max_n=_int(env, "MAX_N", 16, high=MAX_BATCH_LIMIT),
    )
