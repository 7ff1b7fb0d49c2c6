"""The rollout planner's choice and its reason (pure), and what it reads from Nodes and Pods."""

from __future__ import annotations

import pytest

from llmctl.actions.rollout.planner import (
    ClusterFacts,
    NodeGroup,
    PlanRequest,
    SurgeRefused,
    free_gpus,
    plan,
)

GROUP = NodeGroup("gpu-nodes", size=1, max_size=2, instance_type="g5.xlarge", hourly_usd=1.006, quota_vcpus=8,
                  vcpus_per_node=4)


def request(strategy: str = "auto", replicas: int = 1, allow_downtime: bool = False) -> PlanRequest:
    return PlanRequest(strategy, replicas, 1, allow_downtime, serving=True)


def test_a_free_gpu_means_surge() -> None:
    chosen = plan(request(), ClusterFacts(1, 2))
    assert chosen.strategy == "surge" and not chosen.grow_node_group


def test_no_free_gpu_grows_the_node_group_within_max_and_quota() -> None:
    chosen = plan(request(), ClusterFacts(0, 1, GROUP))
    assert chosen.strategy == "surge" and chosen.grow_node_group == "gpu-nodes"
    assert chosen.temporary_node == {"instance_type": "g5.xlarge", "hourly_usd": 1.006}
    assert "grows 1 -> 2 (max 2)" in chosen.reason


@pytest.mark.parametrize(("group", "why"), [
    (NodeGroup("gpu-nodes", 2, 2, "g5.xlarge", 1.0, 16, 4), "at its max size (2/2)"),
    (NodeGroup("gpu-nodes", 1, 3, "g5.xlarge", 1.0, 4, 4), "needs 8 vCPUs of quota, the account has 4"),
    (None, "no managed GPU node group to grow"),
])
@pytest.mark.parametrize("asked", ["surge", "blue-green"])
def test_a_surge_that_cannot_schedule_is_refused_with_the_numbers(group, why, asked) -> None:
    with pytest.raises(SurgeRefused) as refused:
        plan(request(asked), ClusterFacts(0, 1, group))
    assert "0 GPU(s) free, 1 needed" in refused.value.message and why in refused.value.message


def test_auto_without_a_gpu_recreates_with_consent_and_the_measured_downtime() -> None:
    chosen = plan(request(), ClusterFacts(0, 1, None, last_cold_start_s=184.2))
    assert chosen.strategy == "recreate" and chosen.needs_consent and chosen.downtime_s == 184.2
    assert "downtime about 184s (the last measured cold start)" in chosen.reason
    assert not plan(request(allow_downtime=True), ClusterFacts(0, 1)).needs_consent


def test_replicas_roll_one_at_a_time_when_no_gpu_is_spare() -> None:
    assert plan(request(replicas=3), ClusterFacts(0, 3)).strategy == "rolling"


def test_blue_green_needs_a_gpu_for_every_new_pod() -> None:
    assert plan(request(replicas=2), ClusterFacts(2, 3)).strategy == "surge"
    short = plan(request(replicas=2), ClusterFacts(1, 3, GROUP))  # one more node would not be enough either
    assert short.strategy == "rolling" and not short.grow_node_group
    assert "1 free, 2 needed; 2 new pods need 2 GPUs beside the serving ones" in short.reason


def test_nothing_serving_is_the_initial_rollout() -> None:
    assert plan(PlanRequest("auto", 1, 1, False, serving=False), None).strategy == "initial"


def node(name: str, gpus: int, taints=(), labels=None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": list(taints)},
            "status": {"allocatable": {"nvidia.com/gpu": str(gpus)},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(node_name: str, gpus: int, phase: str = "Running") -> dict:
    return {"spec": {"nodeName": node_name, "containers": [{"resources": {"requests": {"nvidia.com/gpu": str(gpus)}}}]},
            "status": {"phase": phase}}


def test_free_gpus_count_only_nodes_the_pod_fits() -> None:
    taint = {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}
    nodes = [node("a", 1), node("b", 1), node("c", 4, taints=[taint]), node("d", 2, labels={"pool": "x"})]
    pods = [pod("a", 1), pod("b", 1, phase="Succeeded")]
    spec = {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    assert free_gpus(nodes, pods, spec) == (3, 3)  # b's GPU is free again, c is tainted, d has no selector
    assert free_gpus(nodes, pods, {**spec, "nodeSelector": {"pool": "x"}}) == (2, 1)


def test_a_resumed_rollout_counts_its_own_pods_gpus_as_its_own() -> None:
    """An interrupted update's new pod already holds its GPU: the re-run plans the same surge, not a recreate."""
    old, new = pod("a", 1), pod("b", 1)
    new["metadata"] = {"annotations": {"llmctl.io/config-hash": "new"}}
    assert free_gpus([node("a", 1), node("b", 1)], [old, new], {}) == (0, 2)
    assert free_gpus([node("a", 1), node("b", 1)], [old, new], {}, own_hash="new") == (1, 2)
