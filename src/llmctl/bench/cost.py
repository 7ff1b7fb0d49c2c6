"""Dollars per million output tokens from a run's measured throughput and the node's price.

The hourly price comes from `llmctl.pricing` (the dated price table `cluster` and `cost` use);
a `--hourly-price` given by the user wins. Throughput is what the whole endpoint delivered, so
with N replicas the cost per token is N nodes' price over that throughput, and each replica's
share of the throughput is reported beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class CostEstimate:
    instance_type: str | None
    hourly_usd: float  # one node
    replicas: int
    output_throughput: float  # tokens/s, whole endpoint
    usd_per_million_output_tokens: float | None
    output_throughput_per_replica: float
    source: str  # "price table" | "--hourly-price"

    def to_dict(self) -> dict:
        return asdict(self)


def hourly_price(instance_type: str, region: str = "us-east-1", spot: bool = False) -> float | None:
    """$/hour of one instance from llmctl's dated price table (region-adjusted); None when unknown."""
    from llmctl import pricing

    try:
        return pricing.hourly(instance_type, region, spot)
    except KeyError:
        return None


def estimate(
    output_throughput: float,
    *,
    replicas: int = 1,
    instance_type: str | None = None,
    hourly_usd: float | None = None,
    region: str = "us-east-1",
    spot: bool = False,
) -> CostEstimate | None:
    """The cost figure, or None when no price is known for the instance."""
    source = "--hourly-price"
    if hourly_usd is None:
        if instance_type is None:
            return None
        hourly_usd = hourly_price(instance_type, region, spot)
        source = "price table"
        if hourly_usd is None:
            return None
    replicas = max(1, replicas)
    per_million = None
    if output_throughput > 0:
        per_million = hourly_usd * replicas / (output_throughput * 3600.0) * 1_000_000
    return CostEstimate(instance_type, hourly_usd, replicas, output_throughput, per_million, output_throughput / replicas, source)
