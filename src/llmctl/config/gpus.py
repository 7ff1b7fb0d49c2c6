"""Is an instance type a GPU type vLLM can use, and does its GPU memory hold the model's weights?

Offline, from the price table behind `cluster up`'s pre-flight (`llmctl.pricing.INSTANCES`) and
the NVIDIA instance families. The model's size comes from its name (`llama-2-13b` -> 13B
parameters) when the name says it; pre-flight checks the exact fit later, from the model's
manifest in S3. A type outside the table but in an NVIDIA family passes here and is resolved
by pre-flight from EC2.
"""

from __future__ import annotations

import re

from llmctl import pricing

GIB = 1024**3
# EC2 families with NVIDIA GPUs (CUDA vLLM); g4ad (AMD), inf/trn (Neuron) and the rest have none.
NVIDIA_FAMILIES = {
    "g4dn": "T4", "g5": "A10G", "g5g": "T4G", "g6": "L4", "g6e": "L40S", "g6f": "L4", "gr6": "L4", "gr6f": "L4",
    "p3": "V100", "p3dn": "V100", "p4d": "A100", "p4de": "A100", "p5": "H100", "p5e": "H200", "p5en": "H200",
    "p6-b200": "B200", "p6e-gb200": "GB200",
}
# Bytes per parameter of the weights: the dtype, unless a quantization method stores fewer.
_QUANTIZED_BYTES = {"awq": 0.5, "awq_marlin": 0.5, "gptq": 0.5, "gptq_marlin": 0.5, "bitsandbytes": 0.5,
                    "gguf": 0.5, "fp8": 1.0, "compressed-tensors": 1.0}
_DTYPE_BYTES = {"float32": 4.0}
_SIZE_IN_NAME = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z0-9])")


def suggestions() -> str:
    """One single-GPU type per GPU model of the table, smallest first."""
    first: dict[str, str] = {}
    for name, spec in pricing.INSTANCES.items():
        if spec.gpus == 1 and spec.gpu_model not in first:
            first[spec.gpu_model] = f"{name} ({spec.gpu_model} {spec.gpu_memory_gib:g} GiB)"
    return ", ".join(list(first.values())[:4])


def not_a_gpu_type(instance_type: str) -> str | None:
    if instance_type in pricing.INSTANCES or instance_type.split(".")[0] in NVIDIA_FAMILIES:
        return None
    return f"{instance_type} has no NVIDIA GPU (vLLM's CUDA engine needs one)"


def parameters_from_name(*names: str | None) -> float | None:
    """Billions of parameters a model's name states (`llama-2-7b-merged` -> 7.0), else None."""
    for name in names:
        match = _SIZE_IN_NAME.search((name or "").lower())
        if match:
            return float(match[1])
    return None


def weights_gib(params_b: float, dtype: str, quantization: str | None) -> float:
    per_param = _QUANTIZED_BYTES.get(quantization or "", _DTYPE_BYTES.get(dtype, 2.0))
    return params_b * 1e9 * per_param / GIB


def too_small(instance_type: str, weights: float, tensor_parallel: int, utilization: float) -> str | None:
    """Why the type's GPU memory cannot hold `weights` GiB, or None (also None for types not in the table)."""
    spec = pricing.INSTANCES.get(instance_type)
    if spec is None:
        return None
    gpus = min(tensor_parallel, spec.gpus)
    usable = spec.gpu_memory_gib * gpus * utilization
    if weights <= usable:
        return None
    return (f"{instance_type} gives vLLM {usable:.1f} GiB of GPU memory ({gpus}x {spec.gpu_model} "
            f"{spec.gpu_memory_gib:g} GiB at gpu_memory_utilization {utilization:g}); the weights alone need "
            f"about {weights:.1f} GiB")


def bigger_types(weights: float, utilization: float) -> str:
    """Types that hold the weights: on one GPU, else across all of a node's GPUs (tensor parallel)."""
    single = [t for t, s in pricing.INSTANCES.items() if s.gpus == 1 and s.gpu_memory_gib * utilization >= weights]
    if single:
        return ", ".join(single[:3])
    multi = [f"{t} with server.tensor_parallel_size {s.gpus}" for t, s in pricing.INSTANCES.items()
             if s.gpu_memory_gib * s.gpus * utilization >= weights]
    return ", ".join(multi[:2]) or "a p5 type"
