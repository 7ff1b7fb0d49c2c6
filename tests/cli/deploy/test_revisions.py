"""The second deploy: revisions in the cluster, the rollout planner, automatic rollback, history and rollback.

Each test deploys revision 1 (image A), then changes what serves (image B) against the Kubernetes double, whose
Deployment controller surges or recreates as the Deployment's strategy says, and checks what the user sees.
"""

from __future__ import annotations

import json
import threading
import time

from llmctl.actions.rollout.run import deploy
from llmctl.actions.rollout.update import GateFailed
from llmctl.config import LlmctlConfig, Names
from llmctl.k8s.client import Kube
from tests.cli.deploy.conftest import IMAGE, config_text
from tests.fixtures.kube import ENDPOINT_PODS, Scenario

APP = "vllm-llama"
IMAGE_B = IMAGE.replace("ab" * 32, "cd" * 32)


def run(project, *args: str, image: str = IMAGE, timeout: str = "20"):
    return project("deploy", "--image", image, "--timeout", timeout, *args, timeout=180)


def history(project) -> dict:
    done = project("history", "--output", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def serving_deployment(kube) -> dict:
    """The Deployment of the revision the Service selects (each revision has its own)."""
    selected = kube.get("v1", "Service", APP, "vllm")["spec"]["selector"]["llmctl.io/config-hash"]
    return kube.get("apps/v1", "Deployment", f"{APP}-{selected[:10]}", "vllm")


def deployment_image(kube) -> str:
    return serving_deployment(kube)["spec"]["template"]["spec"]["containers"][0]["image"]


def revision_deployments(kube) -> list[str]:
    return sorted(d["metadata"]["name"] for d in kube.list("apps/v1", "Deployment", "vllm"))


class ServiceSampler:
    """Every 100 ms: how many Ready, not terminating pods the Service's selector matches (`samples`), and the
    config hashes of those pods (`revisions`: which revision's pods take traffic)."""

    def __init__(self, kube):
        self.kube, self.samples, self.revisions, self.stop = kube, [], [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self._sample()
            if self.stop.wait(0.1):
                return

    def _sample(self) -> None:
        svc = self.kube.get("v1", "Service", APP, "vllm")
        selector = (svc or {}).get("spec", {}).get("selector") or {}
        ready = [p for p in self.kube.list("v1", "Pod", "vllm")
                 if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                 and not p["metadata"].get("deletionTimestamp")
                 and any(c["type"] == "Ready" and c["status"] == "True"
                         for c in p.get("status", {}).get("conditions") or [])]
        self.samples.append(len(ready))
        self.revisions.append(frozenset(p["metadata"]["annotations"]["llmctl.io/config-hash"] for p in ready))

    def __enter__(self):
        self._sample()  # before the deploy starts
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
        self._sample()  # after the deploy returned

    def served(self) -> list[frozenset]:
        """The revisions that took traffic, in order (consecutive repeats folded)."""
        out: list[frozenset] = []
        for hashes in self.revisions:
            if not out or out[-1] != hashes:
                out.append(hashes)
        return out


def test_surge_with_a_free_gpu_keeps_serving_and_records_both_revisions(project, kube) -> None:
    first = run(project)
    assert first.returncode == 0, first.stderr
    assert "revision 1 serves (initial" in first.stdout
    kube.add_node("gpu-node-2")
    with ServiceSampler(kube) as sampler:
        second = run(project, "--output", "json", image=IMAGE_B)
    assert second.returncode == 0, second.stderr
    assert "revision 2: surge: 1 GPU(s) free now on 2 fitting node(s)" in second.stderr
    data = json.loads(second.stdout)
    assert data["plan"]["strategy"] == "surge" and data["revision"]["number"] == 2
    assert serving_deployment(kube)["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert len(sampler.samples) > 10 and min(sampler.samples) >= 1, sampler.samples  # never zero ready pods
    # blue-green: one revision's pods at a time take traffic, the old one's until the new one passed its gate
    old, new = (r["config_hash"] for r in history(project)["revisions"])
    assert sampler.served() == [frozenset({old}), frozenset({new})], sampler.served()
    assert revision_deployments(kube) == [f"{APP}-{new[:10]}"]  # the old revision's Deployment is gone
    recorded = history(project)
    assert [(r["number"], r["outcome"], r["strategy"]) for r in recorded["revisions"]] == [
        (1, "superseded", "initial"), (2, "serving", "surge")]
    assert recorded["serving"] == 2 and recorded["revisions"][1]["image_digest"] == "sha256:" + "cd" * 32
    assert recorded["revisions"][1]["model"] == "s3://llama-models/llama-2-7b-merged-vllm"
    # kept in the cluster, where a teammate sees them
    cms = kube.list("v1", "ConfigMap", "vllm", label_selector="app.kubernetes.io/part-of=llmctl-revisions")
    assert sorted(c["metadata"]["name"] for c in cms) == ["vllm-llama-revision-1", "vllm-llama-revision-2"]
    table = project("history")
    assert "revisions of vllm/vllm-llama" in table.stdout and "* 2" in table.stdout
    status = project("status")
    assert "revision: 2 serves" in status.stdout, status.stdout
    # the same config again is no new revision
    again = run(project, "--output", "json", image=IMAGE_B)
    assert again.returncode == 0, again.stderr
    assert "revision 2 already serves" in again.stderr and json.loads(again.stdout)["changed"] is False
    assert len(history(project)["revisions"]) == 2


def test_recreate_needs_consent_and_says_the_downtime(project, kube) -> None:
    assert run(project).returncode == 0
    refused = run(project, image=IMAGE_B)
    assert refused.returncode == 2, refused.stderr
    assert "recreate: no GPU for a second pod (0 free, 1 needed; no managed GPU node group to grow)" in refused.stderr
    assert "downtime about" in refused.stderr and "--allow-downtime" in refused.stderr
    assert deployment_image(kube) == IMAGE  # nothing applied
    done = run(project, "--allow-downtime", image=IMAGE_B)
    assert done.returncode == 0, done.stderr
    assert deployment_image(kube) == IMAGE_B
    assert serving_deployment(kube)["spec"]["strategy"] == {"type": "Recreate"}
    assert [r["outcome"] for r in history(project)["revisions"]] == ["superseded", "serving"]


def test_a_surge_that_cannot_schedule_is_refused_at_plan_time(project, kube, stub_endpoint) -> None:
    assert run(project).returncode == 0
    project.write_config(config_text(stub_endpoint.port, extra="  strategy: surge\n"))
    dry = project("deploy", "--dry-run", "--image", IMAGE_B)
    assert dry.returncode == 1 and "a surge cannot schedule: 0 GPU(s) free, 1 needed" in dry.stderr
    refused = run(project, image=IMAGE_B)
    assert refused.returncode == 1
    assert "a surge cannot schedule: 0 GPU(s) free, 1 needed; no managed GPU node group to grow" in refused.stderr
    assert "raise cluster.nodes_max" in refused.stderr and "Traceback" not in refused.stderr
    assert deployment_image(kube) == IMAGE
    assert not [p for p in kube.list("v1", "Pod", "vllm") if not p["spec"].get("nodeName")]  # nothing Pending


def test_surge_grows_the_node_group_and_shrinks_it_after(project, kube, aws) -> None:
    eks = aws.client("eks")
    eks.create_cluster(name="llama", roleArn="arn:aws:iam::123456789012:role/eks",
                       resourcesVpcConfig={"subnetIds": []})
    eks.create_nodegroup(clusterName="llama", nodegroupName="gpu-nodes", nodeRole="arn:aws:iam::123456789012:role/n",
                         subnets=["subnet-1"], instanceTypes=["g5.xlarge"],
                         scalingConfig={"minSize": 1, "maxSize": 2, "desiredSize": 1})
    assert run(project).returncode == 0
    sizes: list[int] = []
    stop = threading.Event()

    def cloud() -> None:  # the node group's instances join the cluster as EKS would start them
        while not stop.is_set():
            size = eks.describe_nodegroup(clusterName="llama", nodegroupName="gpu-nodes")["nodegroup"][
                "scalingConfig"]["desiredSize"]
            if not sizes or sizes[-1] != size:
                sizes.append(size)
                if size == 2:
                    kube.add_node("gpu-node-2")
            time.sleep(0.1)

    thread = threading.Thread(target=cloud, daemon=True)
    thread.start()
    try:
        done = run(project, image=IMAGE_B)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert done.returncode == 0, done.stderr
    assert "node group gpu-nodes grows 1 -> 2 (max 2)" in done.stderr
    assert "temporary node: one g5.xlarge at $" in done.stderr
    assert "back to 1" in done.stderr
    assert sizes[0] == 1 and 2 in sizes
    assert eks.describe_nodegroup(clusterName="llama", nodegroupName="gpu-nodes")["nodegroup"][
        "scalingConfig"]["desiredSize"] == 1
    assert deployment_image(kube) == IMAGE_B


def test_crash_loop_rolls_back_and_rollback_to_serves_an_earlier_revision(project, kube) -> None:
    kube.add_node("gpu-node-2")
    assert run(project).returncode == 0
    kube.script(ENDPOINT_PODS, Scenario.crash_loop(lines=["Traceback (most recent call last):", "ValueError: bad weights"]))
    failed = run(project, image=IMAGE_B)
    assert failed.returncode == 1
    assert "keeps crashing" in failed.stderr and "ValueError: bad weights" in failed.stderr
    assert "rolling back: revision 2 failed; revision 1 serves again" in failed.stderr
    assert deployment_image(kube) == IMAGE
    recorded = history(project)
    assert [(r["number"], r["outcome"]) for r in recorded["revisions"]] == [(1, "serving"), (2, "failed")]
    assert "keeps crashing" in recorded["revisions"][1]["diagnosis"]
    kube.script(ENDPOINT_PODS, Scenario.success())
    assert run(project, image=IMAGE_B).returncode == 0  # fixed: revision 3 (the same config as 2) serves
    back = project("rollback", "--to", "1", "--timeout", "20", "--output", "json", timeout=180)
    assert back.returncode == 0, back.stderr
    assert "rolling back to revision 1" in back.stderr
    assert json.loads(back.stdout)["revision"]["rollback_of"] == 1
    assert deployment_image(kube) == IMAGE
    recorded = history(project)
    assert recorded["revisions"][-1]["rollback_of"] == 1 and recorded["revisions"][-1]["outcome"] == "serving"
    unknown = project("rollback", "--to", "9", "--output", "json")
    assert unknown.returncode == 1
    assert "no revision 9 to roll back to (recorded: 1, 2, 3, 4)" in json.loads(unknown.stdout)["error"]


def test_timeout_rolls_back(project, kube) -> None:
    kube.add_node("gpu-node-2")
    assert run(project).returncode == 0
    kube.script(ENDPOINT_PODS, Scenario.never_ready(main_lines=["loading weights"]))
    failed = run(project, image=IMAGE_B, timeout="3")
    assert failed.returncode == 1 and "not ready after 3s" in failed.stderr
    assert deployment_image(kube) == IMAGE
    assert [r["outcome"] for r in history(project)["revisions"]] == ["serving", "failed"]


def failing_report(seen: str):
    from llmctl.actions.gate import GateCheck, GateReport

    return GateReport((GateCheck("golden 1", False, f"saw {seen!r}", 0.01),))


def test_a_failing_gate_keeps_the_previous_revision(kube, aws, stub_endpoint) -> None:
    """In-process, with the gate injected: it reaches the new pod through a port-forward, fails, and the
    previous revision's documents are applied back."""
    import urllib.request

    kube.add_node("gpu-node-2")
    kube.expose(ENDPOINT_PODS, stub_endpoint.port, ("127.0.0.1", stub_endpoint.port))
    cfg = LlmctlConfig.model_validate({"model": {"bucket": "llama-models"}, "server": {"port": stub_endpoint.port},
                                       "cluster": {"nodes_max": 2}})
    names, client = Names.from_config(cfg), Kube.from_kubeconfig(str(kube.kubeconfig_path))
    args = dict(role_arn="arn:aws:iam::123456789012:role/x", timeout_s=30, smoke=False)
    deploy(cfg, names, client, image=IMAGE, **args)
    gated: list[str] = []

    def gate(url: str, api_key: str, baseline):
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            gated.append(url)
            return failing_report(response.read().decode()[:20])

    try:
        deploy(cfg, names, client, image=IMAGE_B, gate=gate, **args)
        raise AssertionError("the gate failed: deploy must raise")
    except GateFailed as exc:
        assert "failed its promotion gate (golden 1)" in exc.message
    assert gated and gated[0].startswith("http://127.0.0.1:")
    assert deployment_image(kube) == IMAGE
    from llmctl.actions import revisions

    records = revisions.history(client, names)
    assert [(r.number, r.outcome) for r in records] == [(1, "serving"), (2, "failed")]
    assert records[1].gate["passed"] is False
    assert records[1].gate["checks"][0]["detail"] == "saw '# HELP vllm_requests'"


def test_a_failing_golden_prompt_rolls_back_and_a_passing_one_promotes(project, kube, stub_endpoint) -> None:
    (project.cwd / "goldens.jsonl").write_text('{"prompt": "Who are you?", "expect": "tea"}\n'
                                               '{"prompt": "Capital of France?", "regex": "^Paris"}\n')
    project.write_config(config_text(stub_endpoint.port, nodes_max=2, extra="  gate:\n    prompts: goldens.jsonl\n"))
    kube.add_node("gpu-node-2")
    assert run(project).returncode == 0
    failed = run(project, image=IMAGE_B)
    assert failed.returncode == 1, failed.stderr
    assert "promotion gate on the new pod" in failed.stderr and "does not match /^Paris/" in failed.stderr
    assert "failed its promotion gate (golden line 2)" in failed.stderr
    assert deployment_image(kube) == IMAGE
    recorded = history(project)["revisions"]
    assert [r["outcome"] for r in recorded] == ["serving", "failed"]
    assert [c["status"] for c in recorded[1]["gate"]["checks"]] == ["pass", "pass", "pass", "fail"]
    (project.cwd / "goldens.jsonl").write_text('{"prompt": "Who are you?", "expect": "tea"}\n')
    done = run(project, "--output", "json", image=IMAGE_B)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["revision"]["gate"]["passed"] is True
    assert [r["outcome"] for r in history(project)["revisions"]] == ["superseded", "failed", "serving"]


def test_an_interrupted_update_converges_on_re_run(project, kube) -> None:
    """SIGKILL llmctl while the new revision loads: the old one still serves; the re-run finishes the same
    revision (not a third), and history says which serves."""
    import signal
    import subprocess
    import sys

    kube.add_node("gpu-node-2")
    assert run(project).returncode == 0
    kube.script(ENDPOINT_PODS, Scenario.success(delay=0.6))  # the new pod takes a few seconds to load
    proc = subprocess.Popen([sys.executable, "-m", "llmctl", "deploy", "--image", IMAGE_B, "--timeout", "60"],
                            cwd=project.cwd, env=project.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        kube.wait_for(lambda: [p for p in kube.list("v1", "Pod", "vllm")
                               if p["spec"]["containers"][0]["image"] == IMAGE_B], timeout=60)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    ready = [p for p in kube.list("v1", "Pod", "vllm") if not p["metadata"].get("deletionTimestamp") and
             any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]
    assert ready  # never neither: the old revision serves until the new one is ready
    recorded = history(project)
    assert [(r["number"], r["outcome"]) for r in recorded["revisions"]] == [(1, "serving"), (2, "rolling-out")]
    again = run(project, image=IMAGE_B, timeout="60")
    assert again.returncode == 0, again.stderr
    assert [(r["number"], r["outcome"]) for r in history(project)["revisions"]] == [(1, "superseded"), (2, "serving")]
