"""Sizes and durations in the words people read (the rollout display and its error messages share them)."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """Decimal units, as download speeds and S3 sizes are quoted: `1.5 GB`, `512 B`."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    if s < 60:
        return f"{s:.1f}s"
    minutes, seconds = divmod(round(s), 60)
    return f"{minutes}m{seconds:02d}s"
