"""Is this folder a PEFT LoRA adapter, and does it fit the base model? Checked before anything is uploaded.

The fit is read from the tensors themselves: each `<module>.lora_A` ([r, in]) and `lora_B` ([out, r]) of the
adapter must meet a `<module>.weight` ([out, in]) of the base, whose shapes come from the safetensors headers
(the first bytes of each shard: a ranged GET in S3, no weights fetched). A name in `base_model_name_or_path`
is only reported: merged fine-tunes are served under other names than the one the adapter was trained on.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from llmctl.errors import ConfigError

ADAPTER_CONFIG = "adapter_config.json"
# vLLM 0.32's LoRAConfig.max_lora_rank choices (server.max_lora_rank takes the same).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.(?P<kind>lora_A|lora_B)(?:\.weight)?$")
_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own cap on a header


@dataclass
class Adapter:
    folder: Path
    rank: int
    target_modules: list[str] | str
    base_name: str | None
    shapes: dict[str, list[int]]
    files: list[Path] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files)


@dataclass
class BaseModel:
    where: str
    config: dict
    shapes: dict[str, list[int]]


def parse_header(head: bytes) -> int:
    """The header length a safetensors file's first 8 bytes give (little-endian u64)."""
    (length,) = struct.unpack("<Q", head[:8])
    if length > _HEADER_LIMIT:
        raise ValueError(f"safetensors header of {length} bytes")
    return length


def header_shapes(header: bytes) -> dict[str, list[int]]:
    return {name: list(info["shape"]) for name, info in json.loads(header).items() if name != "__metadata__"}


def file_shapes(path: Path) -> dict[str, list[int]]:
    with path.open("rb") as f:
        return header_shapes(f.read(parse_header(f.read(8))))


def read_adapter(folder: Path) -> Adapter:
    """The adapter in `folder`, or a ConfigError naming what makes it no PEFT LoRA adapter."""
    folder = Path(folder)
    config_path = folder / ADAPTER_CONFIG
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder", hint="point at a PEFT adapter folder (adapter_config.json)")
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{folder} has no {ADAPTER_CONFIG}: not a PEFT adapter",
                          hint="save it with peft's model.save_pretrained(DIR)") from None
    except ValueError as exc:
        raise ConfigError(f"{config_path} is not valid JSON ({exc})") from None
    peft_type = str(config.get("peft_type", "")).upper() if isinstance(config, dict) else ""
    if peft_type != "LORA":
        raise ConfigError(f"{config_path}: peft_type is {peft_type or 'missing'}, not LORA (vLLM serves LoRA adapters only)",
                          hint="train a LoRA/QLoRA adapter, or merge this one into the model")
    if config.get("use_dora"):
        raise ConfigError(f"{config_path}: use_dora is true; vLLM does not serve DoRA adapters", hint="merge it into the model")
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"{config_path}: r is {rank!r}, not a positive rank")
    ranks = [rank, *[v for v in (config.get("rank_pattern") or {}).values() if isinstance(v, int)]]
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    weights = [p for p in files if p.suffix == ".safetensors"]
    if not weights:
        other = [p.name for p in files if p.suffix in (".bin", ".pt")]
        raise ConfigError(f"{folder} has no safetensors weights" + (f" ({', '.join(other)} is pickled)" if other else ""),
                          hint="save with safe_serialization=True (peft's default)")
    shapes: dict[str, list[int]] = {}
    for path in weights:
        try:
            shapes.update(file_shapes(path))
        except (OSError, ValueError, KeyError, struct.error) as exc:
            raise ConfigError(f"{path} is not a safetensors file ({exc})") from None
    return Adapter(folder, max(ranks), config.get("target_modules") or [], config.get("base_model_name_or_path"),
                   shapes, files)


def base_from_folder(folder: Path) -> BaseModel:
    """A base model on this machine (`llmctl local up`'s)."""
    shapes: dict[str, list[int]] = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        shapes.update(file_shapes(path))
    config_path = Path(folder) / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    return BaseModel(str(folder), config, shapes)


def _linear_names(base: BaseModel) -> list[str]:
    return sorted({key.rsplit(".", 2)[-2] for key in base.shapes if key.count(".") >= 2})


def _module_in_base(base: BaseModel, module: str) -> bool:
    return any(key.startswith(f"{module}.") for key in base.shapes)


def fit_problem(adapter: Adapter, base: BaseModel, max_rank: int, rank_source: str) -> str | None:
    """The first reason the adapter cannot be served on `base` (one line), or None."""
    if adapter.rank > max_rank:
        return (f"adapter rank r={adapter.rank} is above the engine's max_lora_rank {max_rank} ({rank_source}): "
                f"set server.max_lora_rank to {next(r for r in VLLM_LORA_RANKS if r >= adapter.rank)} "
                f"(a restart), or retrain with r <= {max_rank}")
    if not base.shapes:
        return f"the base model {base.where} has no safetensors weights to check the adapter against"
    linear = _linear_names(base)
    targets = adapter.target_modules
    if isinstance(targets, str):
        if not any(re.fullmatch(targets, key.rsplit(".", 1)[0]) for key in base.shapes):
            return f"adapter target_modules {targets!r} matches no module of the base model {base.where}"
    else:
        missing = [t for t in targets if t not in linear and not _module_in_base(base, t)]
        if missing:
            return (f"adapter targets module {missing[0]!r} but the base model {base.where} has none "
                    f"(its modules: {', '.join(m for m in linear if m.endswith('proj')) or ', '.join(linear[:8])})")
    hidden = base.config.get("hidden_size")
    trained = f"; trained for {adapter.base_name}" if adapter.base_name else ""
    for key, shape in sorted(adapter.shapes.items()):
        match = _LORA_KEY.match(key)
        if not match:
            continue
        module, kind = match["module"], match["kind"]
        weight = base.shapes.get(f"{module}.weight")
        if weight is None:
            if _module_in_base(base, module):
                continue  # a quantized base (qweight): no dense shape to compare
            return f"adapter tensor {key} has no module {module} in the base model {base.where}{trained}"
        if len(shape) != 2 or len(weight) != 2:
            continue
        want, have = (weight[1], shape[1]) if kind == "lora_A" else (weight[0], shape[0])
        if want != have:
            side = "inputs" if kind == "lora_A" else "outputs"
            size = f", hidden_size {hidden}" if hidden else ""
            return (f"adapter {module} {kind} has {have} {side} but the base model's has {want}{size}: "
                    f"the adapter was trained for another base model{trained}")
    return None


def derived_rank(ranks: list[int]) -> int:
    """The smallest max_lora_rank vLLM accepts that serves every rank."""
    top = max(ranks, default=8)
    return next((r for r in VLLM_LORA_RANKS if r >= top), VLLM_LORA_RANKS[-1])
