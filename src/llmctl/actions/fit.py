"""Will the model fit the GPU? Weights + KV cache at `max_model_len` against usable GPU memory.

Weight bytes come from the model manifest `llmctl-manifest.json` beside the model in S3
(`{"version": 1, "files": [{"path", "size", "sha256"}]}`), else are estimated from the model's
`config.json` parameter count. The KV cache of one sequence at `max_model_len` is
2 (K and V) x layers x KV heads x head dim x dtype bytes x tokens. vLLM hands the KV cache what
is left of `gpu_memory_utilization` x GPU memory after weights and activations, so the number
of full-length sequences that fit is the concurrency the node can serve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from llmctl.errors import LlmctlError

GIB = 1024**3
MANIFEST = "llmctl-manifest.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
# CUDA context, activations at the profiled batch, CUDA graphs: what vLLM's profiling run takes
# beyond the weights for a single-GPU 7B-class model. An estimate, stated as one.
RUNTIME_OVERHEAD_BYTES = int(1.5 * GIB)
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "half": 2, "float": 4}


@dataclass
class FitReport:
    status: str  # "pass" | "warn" | "fail"
    detail: str
    weights_bytes: int | None = None
    weights_source: str | None = None
    kv_bytes_per_sequence: int | None = None
    usable_gpu_bytes: int | None = None
    kv_budget_bytes: int | None = None
    max_concurrent_sequences: int | None = None
    warnings: list[str] = field(default_factory=list)
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def weights_from_manifest(manifest: dict) -> int:
    files = manifest.get("files") or []
    weights = [f for f in files if str(f.get("path", "")).endswith(WEIGHT_SUFFIXES)]
    return sum(int(f.get("size", 0)) for f in (weights or files))


def _head_dim(config: dict) -> int:
    heads = int(config.get("num_attention_heads") or 1)
    return int(config.get("head_dim") or int(config.get("hidden_size", 0)) // heads)


def weights_from_config(config: dict, dtype_bytes: int) -> int | None:
    """Parameter count of a Llama-style decoder x dtype bytes; None when config lacks the sizes."""
    try:
        hidden = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        vocab = int(config["vocab_size"])
        inter = int(config.get("intermediate_size") or 4 * hidden)
    except (KeyError, TypeError, ValueError):
        return None
    heads = int(config.get("num_attention_heads") or 1)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = _head_dim(config)
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2  # q, o, k, v
    mlp = 3 * hidden * inter
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return (layers * (attention + mlp + 2 * hidden) + embeddings + hidden) * dtype_bytes


def kv_bytes_per_token(config: dict, dtype_bytes: int) -> int | None:
    try:
        layers = int(config["num_hidden_layers"])
    except (KeyError, TypeError, ValueError):
        return None
    kv_heads = int(config.get("num_key_value_heads") or config.get("num_attention_heads") or 1)
    return 2 * layers * kv_heads * _head_dim(config) * dtype_bytes


def _dtype(cfg_dtype: str, model_config: dict | None) -> str:
    if cfg_dtype != "auto":
        return cfg_dtype
    return str((model_config or {}).get("torch_dtype") or "float16")


def dtype_warnings(cfg_dtype: str, model_config: dict | None, gpu_model: str, bf16: bool) -> list[str]:
    warnings = []
    native = str((model_config or {}).get("torch_dtype") or "")
    if cfg_dtype == "bfloat16" and not bf16:
        warnings.append(f"model.dtype bfloat16 is not supported on {gpu_model} (compute capability < 8.0): "
                        "vLLM refuses to start; set model.dtype: float16")
    elif cfg_dtype == "auto" and native == "bfloat16" and not bf16:
        warnings.append(f"the model is bfloat16 and {gpu_model} has no bfloat16: vLLM casts it to float16 "
                        "(set model.dtype: float16 to say so)")
    if cfg_dtype == "float32":
        warnings.append("model.dtype float32 doubles weight and KV memory; float16 is the usual choice")
    return warnings


def check_fit(cfg, spec, manifest: dict | None, model_config: dict | None) -> FitReport:
    """`spec`: a `pricing.InstanceSpec` (GPU count, memory per GPU, bf16)."""
    dtype = _dtype(cfg.model.dtype, model_config)
    dtype_bytes = DTYPE_BYTES.get(dtype, 2)
    warnings = dtype_warnings(cfg.model.dtype, model_config, spec.gpu_model, spec.bf16)
    if cfg.model.dtype == "bfloat16" and not spec.bf16:
        return FitReport("fail", warnings[0], warnings=warnings, fix="set model.dtype: float16")
    gpus = min(cfg.server.tensor_parallel_size, spec.gpus)
    if cfg.server.tensor_parallel_size > spec.gpus:
        return FitReport("fail", f"server.tensor_parallel_size {cfg.server.tensor_parallel_size} needs more GPUs than "
                         f"{spec.instance_type} has ({spec.gpus})", warnings=warnings,
                         fix="lower server.tensor_parallel_size or pick a larger instance type")
    if manifest is not None:
        weights, source = weights_from_manifest(manifest), f"manifest {MANIFEST}"
    elif model_config is not None and (estimated := weights_from_config(model_config, dtype_bytes)) is not None:
        weights, source = estimated, "config.json parameter count"
    else:
        return FitReport("warn", "model size unknown (no manifest or config.json readable in S3): fit not checked",
                         warnings=warnings, fix="upload the model with `llmctl model upload` first")
    usable = int(spec.gpu_memory_gib * GIB * gpus * cfg.server.gpu_memory_utilization)
    budget = usable - weights - RUNTIME_OVERHEAD_BYTES * gpus
    per_token = kv_bytes_per_token(model_config or {}, dtype_bytes)
    per_seq = per_token * cfg.model.max_model_len if per_token else None
    report = FitReport("pass", "", weights, source, per_seq, usable, budget, None, warnings)
    gpu_text = f"{gpus} x {spec.gpu_model} {spec.gpu_memory_gib:g} GiB at {cfg.server.gpu_memory_utilization:g}"
    if budget <= 0:
        report.status = "fail"
        report.detail = (f"weights {weights / GIB:.1f} GiB + ~{RUNTIME_OVERHEAD_BYTES * gpus / GIB:.1f} GiB runtime "
                         f"exceed usable {usable / GIB:.1f} GiB ({gpu_text})")
        report.fix = "pick a GPU with more memory, quantize the model (model.quantization), or raise tensor_parallel_size"
        return report
    if per_seq is None:
        report.status = "warn"
        report.detail = (f"weights {weights / GIB:.1f} GiB fit in {usable / GIB:.1f} GiB ({gpu_text}); KV cache not "
                         "checked (config.json not readable)")
        return report
    report.max_concurrent_sequences = budget // per_seq
    summary = (f"weights {weights / GIB:.2f} GiB + KV {per_seq / GIB:.3f} GiB per {cfg.model.max_model_len}-token "
               f"sequence; {budget / GIB:.2f} GiB left for KV of usable {usable / GIB:.1f} GiB ({gpu_text}): "
               f"~{report.max_concurrent_sequences} full-length sequences at once")
    report.detail = summary
    if report.max_concurrent_sequences < 1:
        report.status = "fail"
        report.fix = "lower model.max_model_len, raise server.gpu_memory_utilization, or pick a larger GPU"
    elif report.max_concurrent_sequences < cfg.server.max_concurrent_requests and report.max_concurrent_sequences < 4:
        report.status = "warn"
        report.fix = "lower model.max_model_len for more concurrency"
    if warnings and report.status == "pass":
        report.status = "warn"
    if warnings and not report.fix:
        report.fix = "set model.dtype: float16"
    return report


def read_model_metadata(s3, bucket: str, prefix: str) -> tuple[dict | None, dict | None]:
    """(manifest, config.json) of the model in S3; None for each that is absent or unreadable."""
    from llmctl.aws.s3 import read_json

    out: list[dict | None] = []
    for key in (f"{prefix}/{MANIFEST}", f"{prefix}/config.json"):
        try:
            document = read_json(s3, bucket, key)
        except LlmctlError:  # denied, or S3 refused: the fit check says "unknown"
            document = None
        out.append(document if isinstance(document, dict) else None)
    return out[0], out[1]
