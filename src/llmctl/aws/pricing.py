"""The AWS Pricing API: the live on-demand price of one instance type (optional; the table answers otherwise)."""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError

from llmctl.aws.errors import AWS_ERRORS
from llmctl.pricing import REGION_LOCATIONS


def live_node_price(pricing_client, instance_type: str, region: str) -> float | None:
    """On-demand $/h from the Pricing API, or None when it is unreachable or has no answer."""
    location = REGION_LOCATIONS.get(region)
    if location is None:
        return None
    filters = {
        "instanceType": instance_type, "location": location, "operatingSystem": "Linux", "tenancy": "Shared",
        "preInstalledSw": "NA", "capacitystatus": "Used",
    }
    try:
        products = pricing_client.get_products(
            ServiceCode="AmazonEC2", MaxResults=10,
            Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()],
        )
    except (BotoCoreError, *AWS_ERRORS):  # refused, unreachable or no credentials: the table answers instead
        return None
    for raw in products.get("PriceList", []):
        item = json.loads(raw) if isinstance(raw, str) else raw
        for term in (item.get("terms") or {}).get("OnDemand", {}).values():
            for dim in term.get("priceDimensions", {}).values():
                usd = dim.get("pricePerUnit", {}).get("USD")
                if usd and float(usd) > 0:
                    return float(usd)
    return None
