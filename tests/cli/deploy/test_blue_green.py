"""Blue-green on the Kubernetes double: each revision has its own Deployment; the Service selects the new
revision's pods only after its gate passed; a failed gate leaves traffic where it was; the previous revision can
be kept up for an instant rollback; a cluster deployed with the single Deployment of before migrates.

In-process (`rollout.run.deploy`) where the gate is injected, as in test_revisions.py; the sampler there checks
every 100 ms that the Service selects at least one Ready pod and whose pods those are.
"""

from __future__ import annotations

import copy
import json

import pytest

from llmctl.actions import deploy as manifests
from llmctl.actions import revisions
from llmctl.actions.rollout.run import deploy
from llmctl.actions.rollout.update import GateFailed, wait_for_revision
from llmctl.config import LlmctlConfig, Names
from llmctl.errors import LlmctlError
from llmctl.k8s.client import Kube
from tests.cli.deploy.conftest import IMAGE
from tests.cli.deploy.test_revisions import APP, IMAGE_B, ServiceSampler, deployment_image, failing_report
from tests.fixtures.kube import ENDPOINT_PODS, Scenario

ROLE = "arn:aws:iam::123456789012:role/x"


@pytest.fixture
def endpoint(kube, stub_endpoint):
    kube.add_node("gpu-node-2")
    kube.expose(ENDPOINT_PODS, stub_endpoint.port, ("127.0.0.1", stub_endpoint.port))
    kube.script(ENDPOINT_PODS, Scenario.success(delay=0.1))

    def setup(nodes_max: int = 2, **deploy_section):
        cfg = LlmctlConfig.model_validate({"model": {"bucket": "llama-models"}, "server": {"port": stub_endpoint.port},
                                           "cluster": {"nodes_max": nodes_max}, "deploy": deploy_section})
        return cfg, Names.from_config(cfg), Kube.from_kubeconfig(str(kube.kubeconfig_path))
    return setup


def run(cfg, names, client, image, **kwargs):
    """One deploy in-process (the new pods take a few samples to load: the sampler sees the rollout)."""
    return deploy(cfg, names, client, image=image, role_arn=ROLE, timeout_s=30, smoke=False, **kwargs)


def selected_hash(kube) -> str:
    return kube.get("v1", "Service", APP, "vllm")["spec"]["selector"].get("llmctl.io/config-hash")


def deployments(kube) -> list[str]:
    return sorted(d["metadata"]["name"] for d in kube.list("apps/v1", "Deployment", "vllm"))


def env_configmaps(kube) -> list[str]:
    return sorted(c["metadata"]["name"] for c in kube.list("v1", "ConfigMap", "vllm") if "-env" in c["metadata"]["name"])


def passing_report():
    from llmctl.actions.gate import GateCheck, GateReport

    return GateReport((GateCheck("golden 1", True, "ok", 0.01),))


def test_the_gate_judges_the_new_pod_before_the_service_selects_it(kube, endpoint) -> None:
    cfg, names, client = endpoint()
    first = run(cfg, names, client, IMAGE).update.record
    at_gate: list[tuple] = []

    def gate(url, api_key, baseline):
        new = [d for d in deployments(kube) if d != f"{APP}-{first.config_hash[:10]}"]
        at_gate.append((selected_hash(kube), new))
        return passing_report()

    with ServiceSampler(kube) as sampler:
        second = run(cfg, names, client, IMAGE_B, gate=gate).update.record
    # while the gate ran, the new revision's Deployment was up and the Service still on the old pods
    assert at_gate == [(first.config_hash, [f"{APP}-{second.config_hash[:10]}"])]
    assert min(sampler.samples) >= 1, sampler.samples
    assert sampler.served() == [frozenset({first.config_hash}), frozenset({second.config_hash})]
    assert selected_hash(kube) == second.config_hash and deployment_image(kube) == IMAGE_B
    assert deployments(kube) == [f"{APP}-{second.config_hash[:10]}"]
    assert env_configmaps(kube) == [f"{APP}-env-{second.config_hash[:10]}"]  # the old revision's went with it


def test_a_failing_gate_never_moves_traffic_and_removes_the_new_revision(kube, endpoint) -> None:
    cfg, names, client = endpoint()
    first = run(cfg, names, client, IMAGE).update.record
    with ServiceSampler(kube) as sampler:
        with pytest.raises(GateFailed):
            run(cfg, names, client, IMAGE_B, gate=lambda url, key, baseline: failing_report("no"))
    assert min(sampler.samples) >= 1, sampler.samples
    assert sampler.served() == [frozenset({first.config_hash})]  # the new pods never took public traffic
    kube.wait_for(lambda: deployments(kube) == [f"{APP}-{first.config_hash[:10]}"], 10)
    assert env_configmaps(kube) == [f"{APP}-env-{first.config_hash[:10]}"]
    assert [(r.number, r.outcome) for r in revisions.history(client, names)] == [(1, "serving"), (2, "failed")]


def test_the_previous_revision_is_kept_for_an_instant_rollback_then_expires(kube, endpoint, project) -> None:
    from llmctl.actions.status import collect_status

    cfg, names, client = endpoint(keep_previous_minutes=30)
    first = run(cfg, names, client, IMAGE).update.record
    second = run(cfg, names, client, IMAGE_B, gate=lambda url, key, baseline: passing_report()).update.record
    old, new = f"{APP}-{first.config_hash[:10]}", f"{APP}-{second.config_hash[:10]}"
    assert deployments(kube) == sorted([old, new]) and selected_hash(kube) == second.config_hash
    kept = revisions.find(revisions.history(client, names), 1)
    assert kept.outcome == "superseded" and kept.kept_until
    table = project("history")  # the table says until when (as the JSON does)
    assert table.returncode == 0 and f"revision 1 is kept up until {kept.kept_until}" in table.stdout, table.stdout
    status = collect_status(client, cfg, names)
    assert [(k["number"], k["deployment"], k["pods"], k["gpus"]) for k in status["kept_revisions"]] == [(1, old, 1, 1)]
    assert status["kept_revisions"][0]["hourly_usd"] > 0  # its GPU is not free
    # rollback inside the window: the kept pods serve at once (no new pod starts), then the Service moves back
    with ServiceSampler(kube) as sampler:
        back = run(cfg, names, client, IMAGE, documents=kept.documents, rollback_of=1,
                   gate=lambda url, key, baseline: passing_report())
    assert back.timeline is None  # already Ready: nothing rolled out
    assert min(sampler.samples) >= 1 and sampler.served()[-1] == frozenset({first.config_hash})
    assert selected_hash(kube) == first.config_hash and deployment_image(kube) == IMAGE
    # the window ends: the next status removes what it kept (revision 2 now)
    records = revisions.history(client, names)
    two = revisions.find(records, 2)
    assert two.kept_until
    two.kept_until = "2020-01-01T00:00:00Z"
    revisions.save(client, names, two)
    assert collect_status(client, cfg, names)["kept_revisions"] == []
    kube.wait_for(lambda: deployments(kube) == [old], 10)
    assert revisions.find(revisions.history(client, names), 2).kept_until is None


def test_history_tells_which_revision_serves_after_a_kill_past_the_switch(kube, endpoint, project) -> None:
    """A deploy killed between the Service's switch and its record's update: the records still say revision 1,
    the Service already selects revision 2's pods; `history` says what serves and how to settle it."""
    cfg, names, client = endpoint()
    run(cfg, names, client, IMAGE)
    second = run(cfg, names, client, IMAGE_B, gate=lambda url, key, baseline: passing_report()).update.record
    one, two = revisions.find(revisions.history(client, names), 1), revisions.find(revisions.history(client, names), 2)
    one.outcome, two.outcome = revisions.SERVING, revisions.ROLLING_OUT  # the records as the kill left them
    revisions.save(client, names, one)
    revisions.save(client, names, two)
    assert selected_hash(kube) == second.config_hash
    data = json.loads(project("history", "--output", "json", check=True).stdout)
    assert (data["serving"], data["routed"]) == (1, 2)
    table = project("history", check=True).stdout
    assert "* 2" in table and "* 1" not in table, table
    assert ("the Service selects revision 2's pods, while the records say 1 serves: a deploy was interrupted after "
            "moving traffic; `llmctl deploy` again records it") in " ".join(table.split()), table


def legacy_documents(documents: list[dict], names: Names) -> list[dict]:
    """The layout llmctl wrote before per-revision Deployments: one Deployment and env ConfigMap, unhashed."""
    out = copy.deepcopy(documents)
    for doc in out:
        if doc["kind"] == "Deployment":
            doc["metadata"]["name"] = names.app
            doc["spec"]["selector"]["matchLabels"] = manifests.pod_selector(names)
            tpl = doc["spec"]["template"]
            tpl["metadata"]["labels"].pop(manifests.LABEL_CONFIG_HASH)
            for c in tpl["spec"]["initContainers"] + tpl["spec"]["containers"]:
                c["envFrom"] = [{"configMapRef": {"name": f"{names.app}-env"}}]
        elif manifests.is_env_configmap(doc, names):
            doc["metadata"]["name"] = f"{names.app}-env"
        elif doc["kind"] == "Service":
            doc["spec"]["selector"] = manifests.pod_selector(names)
    return out


def deploy_legacy(cfg, names, client) -> revisions.RevisionRecord:
    legacy = legacy_documents(manifests.render(cfg, names, image=IMAGE, role_arn=ROLE, api_key="k"), names)
    manifests.apply_documents(client, legacy, names)
    h = next(d for d in legacy if d["kind"] == "Deployment")["spec"]["template"]["metadata"]["annotations"][
        manifests.ANNOTATION_CONFIG_HASH]
    record = revisions.RevisionRecord(
        number=1, created=revisions.now_iso(), image=IMAGE, config_hash=h, model="s3://llama-models/x",
        manifest_digest=None, engine={}, strategy="initial", reason="deployed by an earlier llmctl",
        outcome=revisions.SERVING, documents=revisions.revision_documents(legacy))
    revisions.save(client, names, record)
    assert wait_for_revision(client, names, record, 1, 30)
    return record


@pytest.mark.parametrize("image", [IMAGE_B, IMAGE], ids=["new-revision", "same-revision"])
def test_a_single_deployment_cluster_migrates_without_a_gap(kube, endpoint, image) -> None:
    cfg, names, client = endpoint()
    legacy = deploy_legacy(cfg, names, client)
    assert deployments(kube) == [APP]
    with ServiceSampler(kube) as sampler:
        done = run(cfg, names, client, image, gate=lambda url, key, baseline: passing_report()).update.record
    assert min(sampler.samples) >= 1, sampler.samples
    assert sampler.served()[0] == frozenset({legacy.config_hash})
    assert sampler.served()[-1] == frozenset({done.config_hash})
    kube.wait_for(lambda: deployments(kube) == [f"{APP}-{done.config_hash[:10]}"], 10)
    assert env_configmaps(kube) == [f"{APP}-env-{done.config_hash[:10]}"]
    assert selected_hash(kube) == done.config_hash
    numbers = [(r.number, r.outcome) for r in revisions.history(client, names)]
    assert numbers == ([(1, "superseded"), (2, "serving")] if image == IMAGE_B else [(1, "serving")])


def test_rolling_gates_a_canary_before_traffic_then_trades_pod_by_pod(kube, endpoint) -> None:
    """Two replicas on two GPU nodes, none spare: one old pod makes room for the canary, which is judged
    before the Service selects it; then both serve, and pod by pod the new revision takes over."""
    cfg, names, client = endpoint(replicas=2)
    first = run(cfg, names, client, IMAGE).update.record
    at_gate: list[int] = []

    def gate(url, api_key, baseline):
        at_gate.append(len(sampler.revisions))
        return passing_report()

    said: list[str] = []
    with ServiceSampler(kube) as sampler:
        done = run(cfg, names, client, IMAGE_B, gate=gate, say=said.append)
    second = done.update.record
    assert done.update.plan.strategy == "rolling"
    assert min(sampler.samples) >= 1, sampler.samples
    assert at_gate and all(second.config_hash not in hashes for hashes in sampler.revisions[:at_gate[0]])
    assert sampler.served()[0] == frozenset({first.config_hash})
    assert sampler.served()[-1] == frozenset({second.config_hash})
    assert any("gives up one of its 2 pods" in m for m in said)
    assert any("the canary passed: both revisions serve" in m for m in said)
    kube.wait_for(lambda: deployments(kube) == [f"{APP}-{second.config_hash[:10]}"], 10)
    ready = [p for p in kube.list("v1", "Pod", "vllm") if not p["metadata"].get("deletionTimestamp")]
    assert len(ready) == 2


def autoscaled_at_three(kube, endpoint, nodes: int):
    """An autoscaled endpoint whose serving revision the autoscaler scaled to 3 (the double runs no HPA: its
    scale is applied as the HPA's controller would), on `nodes` single-GPU nodes."""
    for n in range(3, nodes + 1):
        kube.add_node(f"gpu-node-{n}")
    cfg, names, client = endpoint(nodes_max=nodes, autoscaling={"enabled": True, "max_replicas": 3, "engine": "hpa"})
    first = run(cfg, names, client, IMAGE).update.record
    client.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": f"{APP}-{first.config_hash[:10]}", "namespace": "vllm"},
                  "spec": {"replicas": 3}}, field_manager="horizontal-pod-autoscaler")
    assert wait_for_revision(client, names, first, 3, 30)
    return cfg, names, client, first


def test_under_an_autoscaler_the_new_revision_starts_at_the_serving_count(kube, endpoint) -> None:
    cfg, names, client, first = autoscaled_at_three(kube, endpoint, nodes=6)
    at_gate: list[int] = []

    def gate(url, api_key, baseline):
        at_gate.append(sum(1 for p in kube.list("v1", "Pod", "vllm") if p["metadata"]["annotations"][
            "llmctl.io/config-hash"] != first.config_hash and not p["metadata"].get("deletionTimestamp")))
        return passing_report()

    with ServiceSampler(kube) as sampler:
        done = run(cfg, names, client, IMAGE_B, gate=gate)
    second = done.update.record
    assert done.update.plan.strategy == "surge" and "need 3" in done.update.plan.reason
    assert at_gate == [3]  # all three new pods were up (and judged) before the Service moved
    assert min(sampler.samples) >= 3, sampler.samples  # capacity never dipped below the serving count
    assert sampler.served() == [frozenset({first.config_hash}), frozenset({second.config_hash})]
    new = kube.get("apps/v1", "Deployment", f"{APP}-{second.config_hash[:10]}", "vllm")
    assert new["spec"]["replicas"] == 3
    hpa = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", APP, "vllm")
    assert hpa["spec"]["scaleTargetRef"]["name"] == new["metadata"]["name"]
    kube.wait_for(lambda: deployments(kube) == [new["metadata"]["name"]], 10)


def test_under_an_autoscaler_a_surge_counts_gpus_for_the_serving_count(kube, endpoint) -> None:
    from llmctl.actions.rollout.planner import SurgeRefused

    cfg, names, client, first = autoscaled_at_three(kube, endpoint, nodes=4)
    cfg.deploy.strategy = "surge"
    with pytest.raises(SurgeRefused, match="1 GPU\\(s\\) free, 3 needed"):
        run(cfg, names, client, IMAGE_B, gate=lambda url, key, baseline: passing_report())
    assert deployments(kube) == [f"{APP}-{first.config_hash[:10]}"] and selected_hash(kube) == first.config_hash


def test_under_an_autoscaler_with_no_spare_gpu_rolling_swaps_at_the_serving_count(kube, endpoint) -> None:
    """Three pods on three single-GPU nodes, none spare: `rolling` at the autoscaler's count (3), never fewer
    than 2 Ready pods behind the Service; the new revision ends at 3 and the HPA scales its Deployment."""
    cfg, names, client, first = autoscaled_at_three(kube, endpoint, nodes=3)
    said: list[str] = []
    with ServiceSampler(kube) as sampler:
        done = run(cfg, names, client, IMAGE_B, gate=lambda url, key, baseline: passing_report(), say=said.append)
    second = done.update.record
    assert done.update.plan.strategy == "rolling" and second.strategy == "rolling"
    assert done.update.replicas == 3
    assert any("gives up one of its 3 pods" in m for m in said), said
    assert len(sampler.samples) > 10 and min(sampler.samples) >= 2, sampler.samples  # count - 1 at worst
    assert sampler.served()[0] == frozenset({first.config_hash})
    assert sampler.served()[-1] == frozenset({second.config_hash})
    assert sampler.samples[-1] == 3
    new = f"{APP}-{second.config_hash[:10]}"
    kube.wait_for(lambda: deployments(kube) == [new], 10)
    assert kube.get("apps/v1", "Deployment", new, "vllm")["spec"]["replicas"] == 3
    assert wait_for_revision(client, names, second, 3, 30)
    hpa = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", APP, "vllm")
    assert hpa["spec"]["scaleTargetRef"]["name"] == new
    assert [(r.number, r.outcome) for r in revisions.history(client, names)] == [(1, "superseded"), (2, "serving")]


def rolling_on_two(kube, endpoint):
    cfg, names, client = endpoint(replicas=2)
    first = run(cfg, names, client, IMAGE).update.record
    return cfg, names, client, first


def assert_rolled_back(kube, client, names, first, sampler, exc) -> None:
    assert "the rolling update stalled" in str(exc.value)
    assert min(sampler.samples) >= 1, sampler.samples
    old = f"{APP}-{first.config_hash[:10]}"
    kube.wait_for(lambda: deployments(kube) == [old], 10)
    assert kube.get("apps/v1", "Deployment", old, "vllm")["spec"]["replicas"] == 2
    assert selected_hash(kube) == first.config_hash
    assert wait_for_revision(client, names, first, 2, 30)  # the old revision back at its count
    records = revisions.history(client, names)
    assert [(r.number, r.outcome) for r in records] == [(1, "serving"), (2, "failed")]
    assert "the rolling update stalled" in revisions.find(records, 2).diagnosis


def test_a_rolling_swap_that_stalls_on_a_new_pod_rolls_back(kube, endpoint) -> None:
    """The canary passed; the next new pod never gets Ready: the old revision gets its pods back and serves
    alone, the new one is removed, the record failed."""
    cfg, names, client, first = rolling_on_two(kube, endpoint)

    def gate(url, api_key, baseline):  # pods of the new revision started from now on never get Ready
        new = next(d for d in kube.list("apps/v1", "Deployment", "vllm") if d["metadata"]["name"] !=
                   f"{APP}-{first.config_hash[:10]}")
        kube.script(new["spec"]["selector"]["matchLabels"], Scenario.never_ready(probe_failures=100))
        return passing_report()

    with ServiceSampler(kube) as sampler, pytest.raises(LlmctlError) as exc:
        deploy(cfg, names, client, image=IMAGE_B, role_arn=ROLE, timeout_s=4, smoke=False, gate=gate)
    assert sampler.served()[-1] == frozenset({first.config_hash})
    assert_rolled_back(kube, client, names, first, sampler, exc)


def test_a_rolling_swap_that_cannot_free_the_first_pod_rolls_back(kube, endpoint) -> None:
    """The old pod that makes room for the canary does not terminate in time: nothing new starts, the old
    Deployment is back at 2 and the Service never left it."""
    cfg, names, client, first = rolling_on_two(kube, endpoint)
    kube.pod_termination_delay = 6.0
    with ServiceSampler(kube) as sampler, pytest.raises(LlmctlError) as exc:
        deploy(cfg, names, client, image=IMAGE_B, role_arn=ROLE, timeout_s=2, smoke=False,
               gate=lambda url, key, baseline: passing_report())
    kube.pod_termination_delay = 0.02
    assert "the old revision's pods down to 1" in str(exc.value)
    assert sampler.served() == [frozenset({first.config_hash})]
    assert_rolled_back(kube, client, names, first, sampler, exc)
