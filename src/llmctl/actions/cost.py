"""`llmctl cost`: what the config will cost before anything exists, and what is running now.

Both use the one dated price table in `llmctl.pricing` (shared with `cluster up` pre-flight and
`bench`). The estimate for a config is `pricing.estimate` plus the storage the build and the
model add; the running rate prices each resource the inventory (`actions/inventory.py`) finds for
this deployment, the same discovery teardown deletes from, so the two commands can never disagree
about what exists.
"""

from __future__ import annotations

from llmctl import pricing

GB = 1e9
# Storage sizes assumed when nothing has been built or uploaded yet (override with --image-gb /
# --model-gb): the reference image is 7.7 GB; a 7B model in float16 is about 13.5 GB.
DEFAULT_IMAGE_GB = 8.0
DEFAULT_MODEL_GB = 13.5


def estimate_config(cfg, *, image_gb: float | None = None, model_gb: float | None = None, live_client=None) -> pricing.CostEstimate:
    """Hourly and monthly cost of the deployment `cfg` describes: control plane, GPU nodes, NAT
    gateway, load balancer, EBS, and the ECR image and S3 model storage."""
    from llmctl.aws.pricing import live_node_price

    node_hourly = source = None
    if live_client is not None:
        node_hourly = live_node_price(live_client, cfg.cluster.instance_types[0], cfg.aws.region)
        if node_hourly is not None:
            source = "AWS Pricing API (nodes); price table for the rest"
    notes = []
    if image_gb is None:
        image_gb = DEFAULT_IMAGE_GB
        notes.append(f"ECR image size assumed {DEFAULT_IMAGE_GB:g} GB (--image-gb to change)")
    if model_gb is None:
        model_gb = DEFAULT_MODEL_GB
        notes.append(f"model size assumed {DEFAULT_MODEL_GB:g} GB (--model-gb to change)")
    est = pricing.estimate(cfg, node_hourly=node_hourly, source=source, model_gb=model_gb, image_gb=image_gb)
    est.notes += notes
    return est


def running_now(discovery) -> pricing.CostEstimate:
    """`cost --running`: discover what this deployment has (`actions.inventory.Discovery`), priced."""
    inventory = discovery.discover(include_build=True)
    estimate = running_cost(inventory.resources, discovery.names.region)
    estimate.notes += inventory.warnings
    return estimate


def running_cost(resources, region: str) -> pricing.CostEstimate:
    """The rate of what exists now: one line per priced resource discovered."""
    lines = []
    unpriced = []
    for res in resources:
        if res.monthly_cost is None:
            if res.billable:
                unpriced.append(f"{res.type} {res.name}")
            continue
        if res.monthly_cost:
            hourly = res.monthly_cost / pricing.HOURS_PER_MONTH
            lines.append(pricing.CostLine(f"{res.type} {res.name}", round(hourly, 4), round(res.monthly_cost, 2), res.note))
    est = pricing.CostEstimate(region, lines, f"price table (as of {pricing.PRICES_AS_OF})")
    if unpriced:
        est.notes.append("not in the price table (small or usage-based charges): " + ", ".join(unpriced))
    return est


def price_resources(resources, aws) -> None:
    """Set `monthly_cost` on each discovered resource the price table covers (in place).

    Sizes come from read-only look-ups (instance types, volume sizes, image and object bytes);
    a look-up AWS refuses leaves the resource unpriced rather than failing the plan.
    """
    from llmctl.aws import ec2, ecr, s3
    from llmctl.errors import LlmctlError

    region = aws.region
    mult = pricing.region_multiplier(region)[0]
    month = pricing.HOURS_PER_MONTH
    for res in resources:
        try:
            if res.type == "aws_eks_cluster":
                res.monthly_cost = round(pricing.EKS_CONTROL_PLANE_HOURLY * month, 2)
            elif res.type == "aws_nat_gateway":
                res.monthly_cost = round(pricing.NAT_GATEWAY_HOURLY * mult * month, 2)
            elif res.type in ("aws_lb", "aws_elb"):
                res.monthly_cost = round(pricing.NLB_HOURLY * mult * month, 2)
            elif res.type == "aws_instance":
                res.monthly_cost = _instance_monthly(ec2.describe_instance(aws.ec2, res.name), region)
            elif res.type == "aws_ebs_volume":
                size = ec2.volume_size_gib(aws.ec2, res.name)
                res.monthly_cost = None if size is None else round(size * pricing.EBS_GP3_GB_MONTH * mult, 2)
            elif res.type == "aws_ecr_repository":
                res.monthly_cost = round(ecr.image_bytes(aws.ecr, res.name) / GB * pricing.ECR_GB_MONTH, 2)
            elif res.type == "aws_s3_bucket":
                res.monthly_cost = round(s3.bucket_bytes(aws.s3, res.name) / GB * pricing.S3_GB_MONTH, 2)
        except LlmctlError:  # a price is informative; a refused size look-up must not stop teardown
            res.monthly_cost = None


def _instance_monthly(inst: dict | None, region: str) -> float | None:
    if inst is None or inst.get("State", {}).get("Name") in ("terminated", "shutting-down"):
        return 0.0
    try:
        hourly = pricing.hourly(inst["InstanceType"], region, spot=inst.get("InstanceLifecycle") == "spot")
    except KeyError:
        return None
    return round(hourly * pricing.HOURS_PER_MONTH, 2)
