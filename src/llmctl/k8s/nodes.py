"""What a Node object says about itself: Ready, and how many GPUs it offers pods (pure helpers)."""

from __future__ import annotations

GPU = "nvidia.com/gpu"


def gpu_allocatable(node: dict) -> int:
    value = ((node.get("status") or {}).get("allocatable") or {}).get(GPU, "0")
    try:
        return int(str(value))
    except ValueError:
        return 0


def node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])
