"""`llmctl cost`: the estimate from the config and the rate of what is running, one price table."""

from __future__ import annotations

import json
import zoneinfo
from datetime import datetime, timedelta, timezone

import pytest

from llmctl import pricing
from llmctl.actions.cost import window_hours
from llmctl.config.autoscaling import ScheduleWindow

CONFIG = """project:
  name: llama
cluster:
  instance_types: [g5.xlarge]
  nodes_min: 2
  nodes_desired: 2
  nodes_max: 2
  volume_size_gb: 50
deploy:
  exposure: internal
"""
TAGS = [{"Key": "llmctl.io/deployment", "Value": "llama"}, {"Key": "llmctl.io/managed-by", "Value": "llmctl"}]


def test_estimate_from_config_uses_the_shared_price_table(llmctl):
    llmctl.write_config(CONFIG)
    done = llmctl("cost", "-o", "json", "--image-gb", "5", "--model-gb", "10")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["mode"] == "estimate" and data["prices_as_of"] == pricing.PRICES_AS_OF
    lines = {line["item"]: line for line in data["lines"]}
    assert lines["EKS control plane"]["hourly"] == pricing.EKS_CONTROL_PLANE_HOURLY
    nodes = lines["GPU nodes (2 x g5.xlarge)"]
    assert nodes["hourly"] == round(2 * pricing.INSTANCES["g5.xlarge"].on_demand_hourly, 4)
    assert lines["NAT gateway (1)"]["hourly"] == pricing.NAT_GATEWAY_HOURLY
    assert "Network load balancer (1)" in lines
    assert lines["EBS gp3 (100 GB)"]["monthly"] == round(100 * pricing.EBS_GP3_GB_MONTH, 2)
    assert lines["ECR image (5.0 GB)"]["monthly"] == round(5 * pricing.ECR_GB_MONTH, 2)
    assert lines["S3 model (10.0 GB)"]["monthly"] == round(10 * pricing.S3_GB_MONTH, 2)
    assert data["monthly_total"] == round(sum(line["monthly"] for line in data["lines"]), 2)
    assert abs(data["monthly_total"] - data["hourly_total"] * pricing.HOURS_PER_MONTH) < 0.1


def test_estimate_text_names_the_assumed_sizes(llmctl):
    llmctl.write_config(CONFIG)
    done = llmctl("cost", env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert "GPU nodes (2 x g5.xlarge)" in done.stdout and "total" in done.stdout
    assert "ECR image size assumed 8 GB" in done.stdout and "model size assumed 13.5 GB" in done.stdout


def test_running_prices_only_what_exists_for_this_deployment(llmctl, aws):
    llmctl.write_config(CONFIG)
    empty = json.loads(llmctl("cost", "--running", "-o", "json", check=True).stdout)
    assert empty["lines"] == [] and empty["monthly_total"] == 0

    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
    role = aws.client("iam").create_role(RoleName="eks", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    aws.client("eks").create_cluster(name="llama", roleArn=role, resourcesVpcConfig={"subnetIds": [subnet]},
                                     tags={t["Key"]: t["Value"] for t in TAGS})
    ec2.create_volume(AvailabilityZone="us-east-1a", Size=40, TagSpecifications=[{"ResourceType": "volume", "Tags": TAGS}])
    ec2.create_volume(AvailabilityZone="us-east-1a", Size=500)  # not ours: not priced
    aws.client("elbv2").create_load_balancer(Name="k8s-vllm", Subnets=[subnet], Type="network",
                                             Tags=[{"Key": "kubernetes.io/cluster/llama", "Value": "owned"},
                                                   {"Key": "kubernetes.io/service-name", "Value": "vllm/vllm-llama"}])
    data = json.loads(llmctl("cost", "--running", "-o", "json", check=True).stdout)
    lines = {line["item"].split(" ")[0]: line for line in data["lines"]}
    assert set(lines) == {"aws_eks_cluster", "aws_ebs_volume", "aws_lb"}
    assert lines["aws_eks_cluster"]["monthly"] == round(pricing.EKS_CONTROL_PLANE_HOURLY * pricing.HOURS_PER_MONTH, 2)
    assert lines["aws_ebs_volume"]["monthly"] == round(40 * pricing.EBS_GP3_GB_MONTH, 2)
    assert lines["aws_lb"]["monthly"] == round(pricing.NLB_HOURLY * pricing.HOURS_PER_MONTH, 2)
    assert data["monthly_total"] == round(sum(line["monthly"] for line in data["lines"]), 2)


SCALED = """project:
  name: llama
cluster:
  capacity: karpenter
  instance_types: [g5.xlarge]
  nodes_max: 2
deploy:
  autoscaling:
    enabled: true
    idle_minutes: 10
    schedule:
      - {start: "0 8 * * 1-5", end: "0 16 * * 1-5", timezone: Europe/Berlin}
"""


def test_expected_cost_follows_the_schedule_idle_policy_and_spot(llmctl):
    """40 scheduled hours a week cost about 40 GPU hours a week (plus each wake's cold start and idle tail),
    at the spot price; the control plane, NAT and system node are paid all month."""
    llmctl.write_config(SCALED)
    data = json.loads(llmctl("cost", "-o", "json", check=True).stdout)
    spot = pricing.hourly("g5.xlarge", spot=True)
    begin = datetime.now(timezone.utc).date().replace(day=1)
    weekdays = sum((begin + timedelta(days=d)).weekday() < 5 for d in range(365))  # the year ahead's
    wake_h = 300 / 3600 + 10 / 60 + 1 / 60  # assumed cold start, idle tail, consolidateAfter 1m
    hours = weekdays * (8 + wake_h) / 12
    expected = data["expected"]
    assert abs(expected["gpu_node_hours_per_month"] - hours) < 0.1
    assert abs(expected["gpu_monthly"] - hours * spot) < 0.05
    assert data["monthly_always_on"] == data["monthly_total"]
    assert data["monthly_expected"] < data["monthly_always_on"] / 1.5
    lines = {line["item"] for line in data["lines"]}
    assert "system nodes (1 x t3.large)" in lines
    said = " ".join(expected["assumptions"])
    assert f"{weekdays * 8 / 12:.1f} h/month" in said and "daylight saving included" in said and "assumed, not measured yet" in said and "spot (g5.xlarge" in said
    # the measured cold start (from the last deploy) replaces the assumption; busier weeks cost more
    (llmctl.cwd / ".llmctl").mkdir()
    (llmctl.cwd / ".llmctl" / "llama.json").write_text(json.dumps({"cold_start_s": 120}))
    busier = json.loads(llmctl("cost", "-o", "json", "--active-hours-per-week", "10", check=True).stdout)
    assert "cold start 120 s (measured by the last deploy)" in " ".join(busier["expected"]["assumptions"])
    assert busier["monthly_expected"] > data["monthly_expected"]
    text = llmctl("cost", check=True).stdout
    assert "always on: $" in text and "assumed: schedule window 0" in text


def test_always_on_without_scale_to_zero(llmctl):
    llmctl.write_config(CONFIG)
    data = json.loads(llmctl("cost", "-o", "json", check=True).stdout)
    assert abs(data["monthly_expected"] - data["monthly_always_on"]) < 1.0  # two replicas all month


BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("start, end, march, october, january", [
    ("0 8 * * 1-5", "0 20 * * 1-5", (264, 22), (264, 22), (264, 22)),  # 22 weekdays x 12 h, DST or not
    ("0 1 * * 0", "0 4 * * 0", (14, 5), (13, 4), (12, 4)),  # Sunday 1-4: 2 h on Mar 29, 4 h on Oct 25
    ("0 20 * * 5", "0 8 * * 1", (271, 4), (269, 5), (268, 5)),  # weekends: 59 h across Mar 28-29, 61 h Oct 24-25
    ("30 2 * * *", "0 5 * * *", (75, 30), (78.5, 31), (77.5, 31)),  # 02:30 never comes on Mar 29, twice on Oct 25
])
def test_schedule_hours_follow_the_wall_clock_across_daylight_saving(start, end, march, october, january):
    """KEDA's cron scaler runs on the window's wall clock: a window across a change is an hour shorter (spring
    forward) or longer (fall back); a start the clock skips does not happen."""
    window = ScheduleWindow(start=start, end=end, timezone="Europe/Berlin")
    for month, want in ((3, march), (10, october), (1, january)):
        got = window_hours(window, datetime(2026, month, 1, tzinfo=BERLIN), datetime(2026, month + 1, 1, tzinfo=BERLIN))
        assert got == want, (month, got)
