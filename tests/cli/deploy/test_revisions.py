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
from tests.doubles.kube.cluster import DEFAULT_NODE
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


class Cloud:
    """EKS as it runs a managed node group, over moto: the group's Auto Scaling group follows its desired size,
    and each instance in service is a Ready GPU node (its providerID naming the instance); a terminated
    instance's node leaves the cluster."""

    def __init__(self, aws, kube, first_node: str = "gpu-node-1"):
        self.eks, self.asg, self.kube = aws.client("eks"), aws.client("autoscaling"), kube
        self.eks.create_cluster(name="llama", roleArn="arn:aws:iam::123456789012:role/eks",
                                resourcesVpcConfig={"subnetIds": []})
        group = self.eks.create_nodegroup(
            clusterName="llama", nodegroupName="gpu-nodes", nodeRole="arn:aws:iam::123456789012:role/n",
            subnets=["subnet-1"], instanceTypes=["g5.xlarge"],
            scalingConfig={"minSize": 1, "maxSize": 2, "desiredSize": 1})["nodegroup"]
        self.group = group["resources"]["autoScalingGroups"][0]["name"]
        self.asg.create_launch_configuration(LaunchConfigurationName="gpu", ImageId="ami-12c6146b",
                                             InstanceType="g5.xlarge")
        self.asg.create_auto_scaling_group(AutoScalingGroupName=self.group, MinSize=1, MaxSize=2, DesiredCapacity=1,
                                           LaunchConfigurationName="gpu", AvailabilityZones=["us-east-1a"])
        self.nodes = {self.instances()[0]: first_node}  # the instance the cluster's first node runs on
        kube.remove_node(DEFAULT_NODE)  # the double's own node: here it is the group's first instance
        self._join(self.instances()[0], first_node)
        self.sizes: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def instances(self) -> list[str]:
        group = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])["AutoScalingGroups"][0]
        return [i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"]

    def desired(self) -> int:
        return self.eks.describe_nodegroup(clusterName="llama", nodegroupName="gpu-nodes")["nodegroup"][
            "scalingConfig"]["desiredSize"]

    def _join(self, instance: str, name: str) -> None:
        self.nodes[instance] = name
        self.kube.add_node(name, provider_id=f"aws:///us-east-1a/{instance}")

    def _run(self) -> None:
        while not self.stop.is_set():
            size = self.desired()
            if not self.sizes or self.sizes[-1] != size:
                self.sizes.append(size)
                self.asg.set_desired_capacity(AutoScalingGroupName=self.group, DesiredCapacity=size)
            running = self.instances()
            for instance in running:
                if instance not in self.nodes:
                    self._join(instance, f"gpu-node-{len(self.nodes) + 1}")
            for instance, name in self.nodes.items():
                if instance not in running:
                    self.kube.remove_node(name)
            time.sleep(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)


def pod_nodes(kube) -> set[str]:
    return {p["spec"].get("nodeName") for p in kube.list("v1", "Pod", "vllm")
            if not p["metadata"].get("deletionTimestamp")}


def test_surge_grows_the_node_group_and_gives_back_the_node_it_emptied(project, kube, aws) -> None:
    """Two nodes after the surge, the new pod on the new one: the node the old pod left is cordoned, drained
    and its instance terminated (the group's desired size lowered with it), so the serving node stays."""
    cloud = Cloud(aws, kube)
    first_instance = cloud.instances()[0]
    assert run(project).returncode == 0
    assert pod_nodes(kube) == {"gpu-node-1"}
    with cloud:
        done = run(project, image=IMAGE_B)
        assert done.returncode == 0, done.stderr
        kube.wait_for(lambda: kube.get("v1", "Node", "gpu-node-1") is None, timeout=10)
    assert "node group gpu-nodes grows 1 -> 2 (max 2)" in done.stderr
    assert "temporary node: one g5.xlarge at $" in done.stderr
    assert f"cordoned node gpu-node-1 ({first_instance})" in done.stderr
    assert f"node gpu-node-1 ({first_instance}) terminated; node group gpu-nodes shrinks by it" in done.stderr
    assert cloud.sizes[0] == 1 and 2 in cloud.sizes and cloud.desired() == 1
    (left,) = cloud.instances()
    assert left != first_instance and cloud.nodes[left] == "gpu-node-2"  # the node the new pod runs on stays
    assert pod_nodes(kube) == {"gpu-node-2"} and deployment_image(kube) == IMAGE_B
    assert [n["metadata"]["name"] for n in kube.list("v1", "Node")] == ["gpu-node-2"]


def test_a_rolled_back_surge_gives_back_the_surge_node(project, kube, aws) -> None:
    cloud = Cloud(aws, kube)
    first_instance = cloud.instances()[0]
    assert run(project).returncode == 0
    kube.script(ENDPOINT_PODS, Scenario.crash_loop(lines=["ValueError: bad weights"]))
    with cloud:
        failed = run(project, image=IMAGE_B)
        assert failed.returncode == 1, failed.stderr
        kube.wait_for(lambda: len(kube.list("v1", "Node")) == 1, timeout=10)
    assert "rolling back: revision 2 failed; revision 1 serves again" in failed.stderr
    assert "cordoned node gpu-node-2" in failed.stderr and "node gpu-node-2 (i-" in failed.stderr
    assert cloud.instances() == [first_instance] and cloud.desired() == 1  # revision 1's node stays
    assert pod_nodes(kube) == {"gpu-node-1"} and deployment_image(kube) == IMAGE


def test_a_run_killed_during_the_give_back_leaves_the_next_run_to_finish_it(project, kube, aws) -> None:
    """SIGKILL while the emptied node drains (the old pod held there by a finalizer): the group stays grown and
    the revision records the temporary node; the re-run (nothing else to change) gives that node back."""
    import copy
    import signal
    import subprocess
    import sys

    cloud = Cloud(aws, kube)
    first_instance = cloud.instances()[0]
    assert run(project).returncode == 0
    with kube.lock:  # the old pod cannot finish terminating: llmctl waits in the drain
        rt = kube.rt("v1", "Pod")
        (old,) = [copy.deepcopy(p) for p in kube.store.list(rt, "vllm")]
        old["metadata"]["finalizers"] = ["test.llmctl.io/hold"]
        kube.store.put(rt, old)
    with cloud:
        proc = subprocess.Popen([sys.executable, "-m", "llmctl", "deploy", "--image", IMAGE_B, "--timeout", "20"],
                                cwd=project.cwd, env=project.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            lines = []
            for line in proc.stderr:
                lines.append(line)
                if f"cordoned node gpu-node-1 ({first_instance})" in line:
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            proc.kill()
            proc.wait(timeout=30)
        assert any("cordoned node gpu-node-1" in line for line in lines), "".join(lines)
        assert cloud.desired() == 2 and len(cloud.instances()) == 2  # killed: the group is still grown
        recorded = history(project)["revisions"]
        assert [(r["number"], r["outcome"]) for r in recorded] == [(1, "superseded"), (2, "serving")]
        assert recorded[1]["grown"] == {"name": "gpu-nodes", "size": 1}
        status = project("status")
        assert "surge:    a temporary node of node group gpu-nodes is still out" in status.stdout, status.stdout
        assert "`llmctl deploy` takes the group back to 1" in status.stdout
        with kube.lock:  # the old pod's shutdown ends
            kube.store.remove(rt, kube.store.get(rt, "vllm", old["metadata"]["name"]))
        again = run(project, image=IMAGE_B)
        assert again.returncode == 0, again.stderr
        kube.wait_for(lambda: kube.get("v1", "Node", "gpu-node-1") is None, timeout=10)
    assert "revision 2 already serves" in again.stderr
    assert "a temporary node of node group gpu-nodes is still out" in again.stderr
    assert f"node gpu-node-1 ({first_instance}) terminated; node group gpu-nodes shrinks by it" in again.stderr
    assert cloud.desired() == 1 and [cloud.nodes[i] for i in cloud.instances()] == ["gpu-node-2"]
    assert pod_nodes(kube) == {"gpu-node-2"} and deployment_image(kube) == IMAGE_B
    assert all(r["grown"] is None for r in history(project)["revisions"])
    assert "temporary node" not in run(project, image=IMAGE_B).stderr  # given back: nothing left to do


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


def upload_weights(project, aws, weights: bytes) -> str:
    """`llmctl model upload` of a tiny model folder to the configured prefix (moto S3); its manifest digest."""
    import hashlib

    folder = project.cwd / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    done = project("model", "upload", str(folder), timeout=120)
    assert done.returncode == 0, done.stderr
    body = aws.client("s3").get_object(Bucket="llama-models", Key="llama-2-7b-merged-vllm/llmctl-manifest.json")
    return "sha256:" + hashlib.sha256(body["Body"].read()).hexdigest()


def test_new_weights_under_the_same_prefix_are_a_new_revision(project, kube, aws) -> None:
    aws.client("s3").create_bucket(Bucket="llama-models")
    first_digest = upload_weights(project, aws, b"weights one")
    kube.add_node("gpu-node-2")
    assert run(project).returncode == 0
    pod_annotations = serving_deployment(kube)["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations["llmctl.io/model-manifest"] == first_digest
    env_name = serving_deployment(kube)["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    assert kube.get("v1", "ConfigMap", env_name, "vllm")["data"]["MODEL_MANIFEST_DIGEST"] == first_digest  # the init container's check
    again = run(project)  # the same image, config and weights: no new revision
    assert again.returncode == 0 and "revision 1 already serves" in again.stderr, again.stderr
    second_digest = upload_weights(project, aws, b"weights two")  # same prefix, same image, new weights
    assert second_digest != first_digest
    done = run(project, "--output", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["revision"]["number"] == 2 and data["revision"]["manifest_digest"] == second_digest
    pod_annotations = serving_deployment(kube)["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations["llmctl.io/model-manifest"] == second_digest  # the pods restart onto the new weights
    recorded = history(project)["revisions"]
    assert [(r["number"], r["outcome"], r["manifest_digest"]) for r in recorded] == [
        (1, "superseded", first_digest), (2, "serving", second_digest)]
    assert recorded[0]["image"] == recorded[1]["image"] and recorded[0]["config_hash"] != recorded[1]["config_hash"]
    table = project("history")
    assert "weights" in table.stdout and second_digest.removeprefix("sha256:")[:6] in table.stdout, table.stdout
    # revision 1's weights are gone from S3: rolling back to it would serve revision 2's
    refused = project("rollback", "--to", "1", "--timeout", "20")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"revision 1 loaded the model whose manifest is {first_digest}" in refused.stderr, refused.stderr
    assert f"now holds {second_digest}: its weights are gone" in refused.stderr
    assert upload_weights(project, aws, b"weights one") == first_digest
    back = project("rollback", "--to", "1", "--timeout", "20", timeout=180)
    assert back.returncode == 0, back.stderr
    assert history(project)["revisions"][-1]["manifest_digest"] == first_digest


def test_a_deploy_without_a_model_manifest_says_so(project, kube) -> None:
    done = run(project, "--output", "json")
    assert done.returncode == 0, done.stderr
    assert "no model manifest at s3://llama-models/llama-2-7b-merged-vllm/llmctl-manifest.json" in done.stderr
    assert json.loads(done.stdout)["revision"]["manifest_digest"] is None
