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


# --- what the schedule, the idle policy and spot make of it ----------------------------------------

WEEKS_PER_MONTH = pricing.HOURS_PER_MONTH / 168
# Outside the schedule's windows, traffic is what the user says (`--active-hours-per-week`); without a
# schedule and without a figure, a working week is assumed.
DEFAULT_ACTIVE_HOURS_PER_WEEK = 40.0


def year_ahead():
    """The 365 days (8760 h: twelve of pricing's 730-hour months) from the start of this UTC month."""
    from datetime import datetime, timedelta, timezone

    begin = datetime.now(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return begin, begin + timedelta(days=365)


def window_hours(window, begin, end) -> tuple[float, int]:
    """(hours on, starts) of one schedule window between two aware instants, daylight saving included: KEDA's
    cron scaler evaluates `start` and `end` on the wall clock of the window's timezone and is on from a
    `start` match until the next `end` match. A wall time the clock skips (spring forward) never matches;
    one it repeats (fall back) matches twice, so a window across a change is an hour shorter or longer."""
    import zoneinfo
    from datetime import timedelta

    tz = zoneinfo.ZoneInfo(window.timezone)
    events = sorted({*_matches(window.start, tz, begin - timedelta(days=8), end, "start"),
                     *_matches(window.end, tz, begin - timedelta(days=8), end, "end")})
    on, since, seconds, starts = False, begin, 0.0, 0
    for matched, kind in events:  # at one instant an end then a start (the "end" sorts first) leaves it on
        at = max(matched, begin)
        if kind == "end" and on:
            seconds += (at - since).total_seconds()
            on = False
        elif kind == "start" and not on:
            on, since = True, at
            starts += matched >= begin  # on before `begin`: started in an earlier period
    if on:
        seconds += (end - since).total_seconds()
    return seconds / 3600, starts


def _matches(expression: str, tz, begin, end, kind: str):
    """(UTC instant, kind) of every wall time in `tz` that `expression` matches between two aware instants."""
    from datetime import datetime, timedelta, timezone

    from llmctl.config.autoscaling import cron_matches, cron_values

    fields = cron_values(expression)
    day, last = begin.astimezone(tz).date(), end.astimezone(tz).date()
    while day <= last:
        weekday = (day.weekday() + 1) % 7
        if cron_matches([set(range(60)), set(range(24)), *fields[2:]], 0, 0, day.day, day.month, weekday):
            for hour in sorted(fields[1]):
                for minute in sorted(fields[0]):
                    for fold in (0, 1):
                        local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz, fold=fold)
                        at = local.astimezone(timezone.utc)
                        if at.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None) and begin <= at < end:
                            yield at, kind
        day += timedelta(days=1)


def expected_cost(cfg, estimate: pricing.CostEstimate, *, cold_start_s: float | None = None,
                  active_hours_per_week: float | None = None) -> dict:
    """`monthly_always_on` (every configured node all month) next to `monthly_expected`: GPU node-hours the
    schedule, the idle policy and the capacity mix imply, with the assumptions that took, in words."""
    from llmctl.actions.autoscaling import DEFAULT_COLD_START_S, idle_minutes
    from llmctl.actions.cluster.karpenter import uses_spot

    c, auto = cfg.cluster, cfg.deploy.autoscaling
    region, itype = cfg.aws.region, c.instance_types[0]
    on_demand, spot = pricing.hourly(itype, region), pricing.hourly(itype, region, spot=True)
    ebs_hourly = c.volume_size_gb * pricing.EBS_GP3_GB_MONTH * pricing.region_multiplier(region)[0] / pricing.HOURS_PER_MONTH
    assumptions = [f"prices: {estimate.source}"]
    gpu_line = next(line for line in estimate.lines if line.item.startswith("GPU nodes"))
    ebs_line = next(line for line in estimate.lines if line.item.startswith("EBS gp3"))
    fixed = estimate.monthly_total - gpu_line.monthly - ebs_line.monthly

    def node_hourly(replicas: int) -> float:
        """A node's average price when `replicas` run: on_demand_base of them on-demand, the rest spot."""
        if not uses_spot(cfg):
            return on_demand
        base = min(replicas, c.on_demand_base) if c.capacity == "karpenter" else 0
        return (base * on_demand + (replicas - base) * spot) / replicas

    if uses_spot(cfg):
        assumptions.append(f"spot ({itype} ${spot:.4f}/h, typical) is available for every node above "
                           f"cluster.on_demand_base ({c.on_demand_base}); when spot is short Karpenter falls back "
                           f"to on-demand (${on_demand:.4f}/h)")
    if c.capacity == "nodegroup":
        hours = c.nodes_desired * pricing.HOURS_PER_MONTH
        gpu = hours * node_hourly(c.nodes_desired)
        assumptions.append(f"the node group keeps {c.nodes_desired} GPU node(s) all month whatever the replicas "
                           "(cluster.capacity: karpenter removes empty nodes)")
    elif not auto.scales_to_zero:
        replicas = max(1, cfg.deploy.replicas)
        hours = replicas * pricing.HOURS_PER_MONTH
        gpu = hours * node_hourly(replicas)
        assumptions.append(f"{replicas} replica(s) all month (no idle_minutes or schedule: never below one)")
    else:
        lead_h = (cold_start_s or DEFAULT_COLD_START_S) / 3600
        assumptions.append(f"cold start {cold_start_s or DEFAULT_COLD_START_S:.0f} s "
                           f"({'measured by the last deploy' if cold_start_s else 'assumed, not measured yet'})")
        # each wake: the cold start before, the idle tail before zero and the empty node's removal after
        tail_h = lead_h + idle_minutes(cfg) / 60 + _duration_h(c.karpenter.consolidate_after)
        gpu = hours = 0.0
        begin, end = year_ahead()
        for index, window in enumerate(auto.schedule):
            on, starts = window_hours(window, begin, end)
            month = (on + starts * tail_h) * window.replicas / 12
            hours += month
            gpu += month * node_hourly(window.replicas)
            assumptions.append(f"schedule window {index}: {on / 12:.1f} h/month x {window.replicas} replica(s) "
                               f"({window.timezone} wall clock, daylight saving included; the year from "
                               f"{begin:%Y-%m-%d}), started {starts / 12:.1f} time(s) a month, each start adding the "
                               "cold start and each end the idle tail and the node's removal")
        active = active_hours_per_week
        if active is None:
            active = 0.0 if auto.schedule else DEFAULT_ACTIVE_HOURS_PER_WEEK
        if active:  # one wake per active hour
            week = active * (1 + tail_h)
            hours += week * WEEKS_PER_MONTH
            gpu += week * WEEKS_PER_MONTH * node_hourly(1)
        assumptions.append(f"{active:g} active hour(s) a week outside the schedule (one replica; each adds the "
                           f"{idle_minutes(cfg)} idle minutes before zero; --active-hours-per-week to change)")
    expected = fixed + gpu + hours * ebs_hourly
    return {"monthly_always_on": round(estimate.monthly_total, 2), "monthly_expected": round(expected, 2),
            "expected": {"gpu_node_hours_per_month": round(hours, 1), "gpu_monthly": round(gpu, 2),
                         "fixed_monthly": round(fixed, 2), "assumptions": assumptions}}


def _duration_h(text: str) -> float:
    """Karpenter's consolidateAfter (`1m`, `1h30m`, `Never`) in hours; Never counts as zero (nodes stay)."""
    import re

    units = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", text))
