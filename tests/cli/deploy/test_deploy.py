"""`llmctl deploy` against the Kubernetes double with scripted pod lifecycles."""

from __future__ import annotations

import base64
import json
import time

from llmctl.actions.rollout.run import deploy
from llmctl.actions.rollout.events import READY, PhaseStarted
from llmctl.config import LlmctlConfig, Names
from llmctl.k8s.client import Kube
from tests.cli.deploy.conftest import IMAGE, config_text
from tests.fixtures.kube import ENDPOINT_PODS, GPU_UNSCHEDULABLE, Scenario, Step

APP = "vllm-llama"
PROGRESS = [json.dumps({"event": "progress", "bytes_done": done, "bytes_total": 4_000_000_000, "files_done": i,
                        "files_total": 4, "rate_bps": 250_000_000}) for i, done in
            enumerate((1_000_000_000, 2_000_000_000, 4_000_000_000))]


def run_deploy(project, *args: str, timeout: str = "20"):
    return project("deploy", "--image", IMAGE, "--timeout", timeout, *args, timeout=120)


def test_successful_rollout_shows_phases_timeline_endpoint_and_smoke(project, kube, stub_endpoint) -> None:
    # steps 0.2 s apart: the download is still running when the watcher starts (after the apply and prune)
    kube.script(ENDPOINT_PODS, Scenario.success(download_lines=PROGRESS, main_lines=['{"msg": "engine ready"}'], delay=0.2))
    done = run_deploy(project)
    assert done.returncode == 0, done.stderr
    err, out = done.stderr, done.stdout
    for line in ("created  Namespace vllm", "created  ServiceAccount vllm/vllm-sa",
                 "created  Secret vllm/vllm-llama-api-key", "created  Deployment vllm/vllm-llama",
                 "created  Service vllm/vllm-llama"):
        assert line in err
    positions = [err.index(phase) for phase in ("Scheduling...", "Pulling image...", "Downloading model...",
                                                "Loading engine...", "] Ready")]
    assert positions == sorted(positions)
    assert "4.0 GB / 4.0 GB (100%) at 250.0 MB/s" in err
    assert "cold-start timeline" in out and "Downloading model" in out and "total (to Ready)" in out
    # the default exposure: a ClusterIP, smoke-tested through a port-forward to the pod
    assert f"endpoint: http://vllm-llama.vllm.svc.cluster.local:{stub_endpoint.port} (in the cluster" in out
    assert "exposure cluster: reachable from pods in the cluster" in err
    assert "smoke request: HTTP 200" in out
    # the smoke request carried the key from the Secret, which was never printed
    secret = kube.get("v1", "Secret", "vllm-llama-api-key", "vllm")
    key = base64.b64decode(secret["data"]["api-key"]).decode()
    assert stub_endpoint.requests[-1]["auth"] == f"Bearer {key}"
    assert key not in out + err
    sa = kube.get("v1", "ServiceAccount", "vllm-sa", "vllm")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == \
        "arn:aws:iam::123456789012:role/llmctl/llama/llama-vllm-s3-access"
    # server-side apply with the llmctl field manager
    patches = kube.requests_matching(method="PATCH")
    assert patches and {(r.content_type, r.field_manager) for r in patches} == {
        ("application/apply-patch+yaml", "llmctl")}


def test_internal_exposure_smoke_tests_through_the_load_balancer(project, kube, stub_endpoint) -> None:
    project.write_config(config_text(stub_endpoint.port, metrics_port=stub_endpoint.metrics_port, extra="  exposure: internal\n"))
    missing = run_deploy(project)
    assert missing.returncode != 0 and "no AWS Load Balancer Controller" in missing.stderr
    assert "deploy.exposure: cluster" in missing.stderr and "Traceback" not in missing.stderr
    assert kube.get("v1", "Service", APP, "vllm") is None  # refused before anything was applied
    kube.install_aws_load_balancer_controller()
    done = run_deploy(project, "--output", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["endpoint"] == f"http://127.0.0.1:{stub_endpoint.port}"
    assert data["smoke"]["url"] == f"http://127.0.0.1:{stub_endpoint.port}/v1/completions"
    assert data["exposure"]["kind"] == "internal" and data["exposure"]["source_ranges"] == ["192.168.0.0/16"]
    assert not any(kube.forwards.sessions.values())  # no port-forward: the NLB's address carried the request
    service = kube.get("v1", "Service", APP, "vllm")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    policy = kube.get("networking.k8s.io/v1", "NetworkPolicy", APP, "vllm")
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": stub_endpoint.port}]


def test_public_without_tls_is_refused_before_the_cluster_is_touched(project, kube, stub_endpoint) -> None:
    project.write_config(config_text(stub_endpoint.port, metrics_port=stub_endpoint.metrics_port, extra="  exposure: public\n"
                                     "  load_balancer_source_ranges: [0.0.0.0/0]\n"))
    done = run_deploy(project)
    assert done.returncode != 0
    assert "deploy.exposure is public but deploy.tls.certificate_arn is not set" in done.stderr
    assert "deploy.allow_plaintext: true" in done.stderr and "Traceback" not in done.stderr
    assert not kube.requests_matching(method="PATCH")


def test_reapply_reports_no_changes_and_keeps_the_key(project, kube) -> None:
    assert run_deploy(project).returncode == 0
    key = kube.get("v1", "Secret", "vllm-llama-api-key", "vllm")["data"]["api-key"]
    again = run_deploy(project, "--output", "json")
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["changed"] is False
    assert data["timeline"] is None and data["ready_replicas"] == 1  # the same pods, already ready
    assert {o["action"] for o in data["objects"]} == {"unchanged"}
    assert "api_key" not in data
    assert kube.get("v1", "Secret", "vllm-llama-api-key", "vllm")["data"]["api-key"] == key
    shown = run_deploy(project, "--output", "json", "--show-api-key")
    assert json.loads(shown.stdout)["api_key"] == base64.b64decode(key).decode()


def test_pruning_removes_a_dropped_object(project, kube, stub_endpoint) -> None:
    project.write_config(config_text(stub_endpoint.port, metrics_port=stub_endpoint.metrics_port, replicas=2, nodes_max=2))
    kube.add_node("gpu-node-2")
    first = run_deploy(project, "--output", "json")
    assert first.returncode == 0, first.stderr
    assert kube.get("policy/v1", "PodDisruptionBudget", APP, "vllm") is not None
    project.write_config(config_text(stub_endpoint.port, metrics_port=stub_endpoint.metrics_port, replicas=1, nodes_max=2))
    second = run_deploy(project, "--output", "json")
    assert second.returncode == 0, second.stderr
    actions = {(o["kind"], o["action"]) for o in json.loads(second.stdout)["objects"]}
    assert ("PodDisruptionBudget", "deleted") in actions and ("Deployment", "updated") in actions
    assert kube.get("policy/v1", "PodDisruptionBudget", APP, "vllm") is None


def test_dry_run_writes_files_and_changes_nothing_in_the_cluster(llmctl, kube, tmp_path) -> None:
    llmctl.env["KUBECONFIG"] = str(kube.kubeconfig_path)
    llmctl.write_config(config_text(8000))
    before = len(kube.requests)
    done = llmctl("deploy", "--dry-run", "--image", IMAGE, "--output-dir", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    revision = files[-1].removeprefix("07-deployment-vllm-llama-").removesuffix(".yaml")  # its config hash
    assert len(revision) == 10
    assert files == ["01-namespace-vllm.yaml", "02-serviceaccount-vllm-sa.yaml", "03-secret-vllm-llama-api-key.yaml",
                     f"04-configmap-vllm-llama-env-{revision}.yaml", "05-networkpolicy-vllm-llama.yaml",
                     "06-service-vllm-llama.yaml", f"07-deployment-vllm-llama-{revision}.yaml"]
    assert "ACCOUNT_ID" in (tmp_path / "out" / "02-serviceaccount-vllm-sa.yaml").read_text()
    assert "placeholder ACCOUNT_ID" in done.stderr
    assert "plan: revision 1: initial: nothing serves yet" in done.stderr  # the planner read the cluster
    assert {r.method for r in kube.requests[before:]} == {"GET"}


def test_no_image_says_how_to_get_one(llmctl) -> None:
    llmctl.write_config(config_text(8000))
    done = llmctl("deploy", "--dry-run")
    assert done.returncode == 1
    assert "run `llmctl build`, or pass `--image" in done.stderr


def test_ready_is_reported_within_a_second_of_the_ready_condition(kube, aws) -> None:
    """In-process: the watch sees the Ready condition as it is written, not on a poll."""
    ready_at: list[float] = []

    def mark_ready(sim):
        ready_at.append(time.monotonic())
        sim.set_ready("main")

    base = Scenario.success(download_lines=PROGRESS).steps[:-1]
    kube.script(ENDPOINT_PODS, Scenario(base + [Step(mark_ready, delay=1.0)]))
    cfg = LlmctlConfig.model_validate({"model": {"bucket": "llama-models"}, "deploy": {"exposure": "cluster"}})
    seen: dict[str, float] = {}

    def emit(event) -> None:
        if isinstance(event, PhaseStarted):
            seen[event.phase] = time.monotonic()

    outcome = deploy(cfg, Names.from_config(cfg), Kube.from_kubeconfig(str(kube.kubeconfig_path)), image=IMAGE,
                     role_arn="arn:aws:iam::123456789012:role/x", timeout_s=30, emit=emit, smoke=False)
    assert outcome.ready_replicas == 1
    assert 0 <= seen[READY] - ready_at[0] < 1.0
    assert [p for p, _ in outcome.timeline.durations()] == ["Scheduling", "Pulling image", "Downloading model",
                                                            "Loading engine"]


def test_failed_scheduling_no_free_gpu(project, kube) -> None:
    kube.script(ENDPOINT_PODS, Scenario.unschedulable(GPU_UNSCHEDULABLE))
    done = run_deploy(project)
    assert done.returncode == 1
    assert "no free GPU for the endpoint's pod" in done.stderr and "nodes_max" in done.stderr


def test_failed_scheduling_without_gpu_node(project, kube) -> None:
    kube.remove_node(kube.list("v1", "Node")[0]["metadata"]["name"])
    kube.add_node("cpu-node", gpus=0)
    done = run_deploy(project)
    assert done.returncode == 1
    assert "no node in the cluster offers an nvidia.com/gpu" in done.stderr


def test_failed_scheduling_untolerated_taint(project, kube) -> None:
    kube.remove_node(kube.list("v1", "Node")[0]["metadata"]["name"])
    kube.add_node("gpu-tainted", taints=[{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}])
    done = run_deploy(project)
    assert done.returncode == 1
    assert "taint the endpoint does not tolerate: dedicated: ml" in done.stderr


def test_image_tag_missing(project, kube) -> None:
    kube.script(ENDPOINT_PODS, Scenario.image_pull_error())
    done = run_deploy(project)
    assert done.returncode == 1
    assert "does not exist in the registry" in done.stderr and "llmctl build" in done.stderr


def test_image_pull_denied(project, kube) -> None:
    kube.script(ENDPOINT_PODS, Scenario.image_pull_error(
        message="failed to authorize: failed to fetch anonymous token: unexpected status: 403 Forbidden"))
    done = run_deploy(project)
    assert done.returncode == 1
    assert "may not pull" in done.stderr and "AmazonEC2ContainerRegistryReadOnly" in done.stderr


def test_crash_loop_shows_last_log_lines(project, kube) -> None:
    kube.script(ENDPOINT_PODS, Scenario.crash_loop(lines=["Traceback (most recent call last):", "ValueError: bad DTYPE"]))
    done = run_deploy(project)
    assert done.returncode == 1
    assert "keeps crashing" in done.stderr and "ValueError: bad DTYPE" in done.stderr


def test_oom_killed_suggests_memory_or_context(project, kube) -> None:
    kube.script(ENDPOINT_PODS, Scenario.oom_killed())
    done = run_deploy(project)
    assert done.returncode == 1
    assert "OOMKilled at its 14Gi limit" in done.stderr and "max_model_len" in done.stderr


def test_download_access_denied_points_at_irsa(project, kube) -> None:
    kube.script(ENDPOINT_PODS, Scenario.init_failure(download_lines=[
        '{"event": "error", "error": "AccessDenied", "message": "s3:ListBucket on llama-models denied"}']))
    done = run_deploy(project)
    assert done.returncode == 1
    assert "denied access to s3://llama-models/llama-2-7b-merged-vllm" in done.stderr
    assert "arn:aws:iam::123456789012:role/llmctl/llama/llama-vllm-s3-access" in done.stderr


def test_readiness_timeout(project, kube) -> None:
    kube.script(ENDPOINT_PODS, Scenario.never_ready(main_lines=["loading weights", "CUDA out of memory while warming up"]))
    done = run_deploy(project, timeout="3")
    assert done.returncode == 1
    assert "not ready after 3s" in done.stderr and "Loading engine" in done.stderr
    assert "Readiness probe failed" in done.stderr and "CUDA out of memory while warming up" in done.stderr


def test_the_service_account_names_the_irsa_role_where_it_is(project, aws) -> None:
    """Under the deployment's IAM path (where `cluster up` creates it), or, for a role an earlier llmctl
    made at `/` (kept there: IAM cannot move a role), at its own ARN."""
    def role_arn() -> str:
        done = project("deploy", "--dry-run", "--image", IMAGE, "-o", "json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["role_arn"]

    assert role_arn() == "arn:aws:iam::123456789012:role/llmctl/llama/llama-vllm-s3-access"
    aws.client("iam").create_role(RoleName="llama-vllm-s3-access", AssumeRolePolicyDocument="{}")
    assert role_arn() == "arn:aws:iam::123456789012:role/llama-vllm-s3-access"
