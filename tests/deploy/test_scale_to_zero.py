"""Scale to zero, schedules and the spot drain: the ScaledObject (KEDA's own CRD, strictly), the HTTP add-on's
HTTPScaledObject (../shared/schemas, strictly), lead and hold times from the measured cold start, the drain
that fits the spot notice, the PDB, and `deploy --dry-run --output-dir`."""

from __future__ import annotations

import pytest
import yaml

from llmctl.actions.autoscaling import shift_earlier
from llmctl.actions.deploy import render
from llmctl.config import LlmctlConfig, Names
from tests.deploy.test_render import by_kind
from tests.fixtures.crd import validate_crd

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llmctl/llama@sha256:" + "ab" * 32
ROLE = "arn:aws:iam::123456789012:role/llama-vllm-s3-access"
ZERO = {"model": {"bucket": "llama-models"}, "cluster": {"capacity": "karpenter", "nodes_max": 3},
        "deploy": {"autoscaling": {"enabled": True, "max_replicas": 3, "idle_minutes": 15, "schedule": [
            {"start": "0 8 * * 1-5", "end": "0 20 * * 1-5", "timezone": "Europe/Berlin", "replicas": 2},
            {"start": "2 0 * * MON", "end": "0 6 * * MON"}]}}}


def _render(data: dict, cold_start_s: float | None = None) -> dict[str, dict]:
    cfg = LlmctlConfig.model_validate(data)
    docs = render(cfg, Names.from_config(cfg), image=IMAGE, role_arn=ROLE, api_key="k", cold_start_s=cold_start_s)
    return by_kind(docs)


def test_scale_to_zero_objects_pass_their_crds_strictly():
    docs = _render(ZERO, cold_start_s=170)
    validate_crd(docs["ScaledObject"])
    validate_crd(docs["HTTPScaledObject"])


def test_scaled_object_goes_to_zero_after_idle_and_warms_before_each_window():
    spec = _render(ZERO, cold_start_s=170)["ScaledObject"]["spec"]
    assert spec["minReplicaCount"] == 0 and spec["maxReplicaCount"] == 3 and spec["cooldownPeriod"] == 15 * 60
    triggers = {t.get("name", t["type"]): t for t in spec["triggers"]}
    activity = triggers["activity"]["metadata"]
    assert "vllm:num_requests_running" in activity["query"] and "[15m]" in activity["query"]
    assert activity["activationThreshold"] == "0"
    # lead time: a 170 s cold start starts each window 3 minutes early (across midnight: the day before)
    assert triggers["window-0"]["metadata"] == {"timezone": "Europe/Berlin", "start": "57 7 * * 1-5",
                                                "end": "0 20 * * 1-5", "desiredReplicas": "2"}
    assert triggers["window-1"]["metadata"]["start"] == "59 23 * * 0"
    assert triggers["wake-on-request"] == {"type": "external-push", "name": "wake-on-request", "metadata": {
        "scalerAddress": "keda-add-ons-http-external-scaler.keda:9090", "httpScaledObject": "vllm-llama"}}


def test_http_scaled_object_holds_for_the_measured_cold_start():
    http = _render(ZERO, cold_start_s=170)["HTTPScaledObject"]
    assert http["metadata"]["annotations"] == {"httpscaledobject.keda.sh/skip-scaledobject-creation": "true"}
    spec = http["spec"]
    assert spec["timeouts"]["conditionWait"] == "255s"  # 1.5 x the 170 s cold start
    assert spec["replicas"] == {"min": 0, "max": 3} and spec["scaledownPeriod"] == 900
    assert spec["scaleTargetRef"]["service"] == "vllm-llama" and spec["scaleTargetRef"]["port"] == 8000
    assert spec["coldStartTimeoutFailoverRef"]["timeoutSeconds"] == 255  # the add-on's wait with a failover
    unmeasured = _render(ZERO)["HTTPScaledObject"]["spec"]["timeouts"]["conditionWait"]
    assert unmeasured == "450s"  # nothing measured yet: 300 s assumed


def test_without_idle_minutes_or_schedule_the_minimum_stays_one():
    data = {"model": {"bucket": "llama-models"}, "cluster": {"nodes_max": 2}, "deploy": {"autoscaling": {"enabled": True}}}
    docs = _render(data)
    assert docs["ScaledObject"]["spec"]["minReplicaCount"] == 1 and "HTTPScaledObject" not in docs
    cfg = LlmctlConfig.model_validate(data)
    every = render(cfg, Names.from_config(cfg), image=IMAGE, role_arn=ROLE, api_key="k")
    assert [d["metadata"]["name"] for d in every if d["metadata"]["name"].endswith("-waking")] == []  # no responder
    assert len(docs["ScaledObject"]["spec"]["triggers"]) == 1


@pytest.mark.parametrize("start, minutes, moved", [
    ("0 8 * * 1-5", 3, "57 7 * * 1-5"), ("30 9 1 * *", 10, "20 9 1 * *"), ("5 0 * * *", 10, "55 23 * * *"),
    ("0 0 * * sun,wed", 1, "59 23 * * 2,6"), ("0 0 1 * *", 5, None), ("*/5 8 * * *", 1, None),
])
def test_a_start_moves_earlier_by_the_lead_time(start, minutes, moved):
    assert shift_earlier(start, minutes) == moved


def test_an_unmovable_start_is_said_on_the_object():
    data = {**ZERO, "deploy": {"autoscaling": {**ZERO["deploy"]["autoscaling"],
                                               "schedule": [{"start": "0 0 1 * *", "end": "0 6 1 * *"}]}}}
    meta = _render(data)["ScaledObject"]["metadata"]
    assert "is not moved 5 min earlier" in meta["annotations"]["llmctl.io/scaling-notes"]


def test_on_spot_the_drain_fits_the_interruption_notice():
    spot = {**ZERO, "server": {"drain_timeout_s": 300}, "deploy": {"replicas": 2, "exposure": "internal"}}
    docs = _render(spot)
    pod = docs["Deployment"]["spec"]["template"]
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    drain = int(docs["ConfigMap"]["data"]["DRAIN_TIMEOUT_S"])
    assert grace <= 120 - 15 and drain == 120 - 15 - 15 - 5  # notice - delivery - NLB preStop - exit
    assert "shortened to 85s" in pod["metadata"]["annotations"]["llmctl.io/drain"]
    assert docs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1  # two replicas: one keeps serving
    on_demand = {**spot, "cluster": {"capacity": "karpenter", "karpenter": {"spot": False}}}
    assert _render(on_demand)["ConfigMap"]["data"]["DRAIN_TIMEOUT_S"] == "300"


def test_dry_run_output_dir_writes_the_autoscaling_objects(llmctl):
    llmctl.write_config(yaml.safe_dump(ZERO))
    done = llmctl("deploy", "--dry-run", "--output-dir", "out", "--image", IMAGE, check=True)
    files = sorted(p.name for p in (llmctl.cwd / "out").iterdir())
    assert any("-scaledobject-vllm-llama.yaml" in f for f in files), done.stdout
    assert any("-httpscaledobject-vllm-llama.yaml" in f for f in files)
    http = next(f for f in files if "httpscaledobject" in f)
    validate_crd(yaml.safe_load((llmctl.cwd / "out" / http).read_text()))
