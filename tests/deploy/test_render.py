"""The rendered endpoint objects: golden files, strict schema validation, and the rules they follow.

Goldens are compared as parsed YAML; regenerate with `LLMCTL_UPDATE_GOLDEN=1 pytest tests/deploy`.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from llmctl.actions.deploy import prune_selector, render, resolve_image, strategy
from llmctl.config import LlmctlConfig, Names
from llmctl.errors import ConfigError, LlmctlError

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llmctl/llama@sha256:" + "ab" * 32
ROLE = "arn:aws:iam::123456789012:role/llmctl/llama/llama-vllm-s3-access"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
K8S_VERSIONS = ("1.31", "1.33")

SCENARIOS = {
    # The reference: one T4 node, one replica.
    "default": {"model": {"bucket": "llama-models"}},
    # Scale-out: two replicas on up to three nodes, KEDA on the queue, the node-local model cache,
    # a GPU taint, and a public TLS NLB open to one source range.
    "scale-out": {
        "model": {"bucket": "llama-models", "quantization": "awq"},
        "cluster": {"nodes_min": 2, "nodes_desired": 2, "nodes_max": 3, "gpu_taint": True,
                    "node_labels": {"llmctl.io/gpu": "t4"}},
        "server": {"max_num_seqs": 64, "enforce_eager": True, "tool_call_parser": "hermes", "enable_lora": True,
                   "max_lora_rank": 16, "lora_modules": {"sql": "/models/adapters/sql"},
                   "vllm_extra_args": ["--enable-prefix-caching", "--structured-outputs-config", '{"backend": "xgrammar"}']},
        "deploy": {"replicas": 2, "node_cache": True, "exposure": "public", "load_balancer_source_ranges": ["203.0.113.0/24"],
                   "tls": {"certificate_arn": CERT}, "autoscaling": {"enabled": True, "max_replicas": 3}},
    },
    # LoRA adapters: one where `adapter push` puts it, one at a location of its own; rank set by hand.
    "adapters": {
        "model": {"bucket": "llama-models", "adapters": {"sql": None, "chat": "llama-2-7b-merged-vllm-adapters/chat-v2/"}},
        "server": {"enable_lora": True, "max_lora_rank": 32},
    },
    # Weights streamed from S3 (no init download), an HPA, an internal NLB.
    "streamer-hpa": {
        "model": {"bucket": "llama-models", "load_format": "runai_streamer"},
        "cluster": {"nodes_max": 2},
        "deploy": {"exposure": "internal", "autoscaling": {"enabled": True, "engine": "hpa", "max_replicas": 2}},
    },
    # Scale to zero on Karpenter capacity: the HTTP add-on's HTTPScaledObject and the waking responder.
    "scale-to-zero": {
        "model": {"bucket": "llama-models"},
        "cluster": {"capacity": "karpenter", "nodes_max": 2},
        "deploy": {"autoscaling": {"enabled": True, "max_replicas": 2, "idle_minutes": 15}},
    },
}


def rendered(name: str, api_key: str = "test-key") -> list[dict]:
    cfg = LlmctlConfig.model_validate(SCENARIOS[name])
    return render(cfg, Names.from_config(cfg), image=IMAGE, role_arn=ROLE, api_key=api_key)


def by_kind(docs: list[dict]) -> dict[str, dict]:
    """The first object of each kind: the endpoint's own (the waking responder's come after it)."""
    found: dict[str, dict] = {}
    for d in docs:
        found.setdefault(d["kind"], d)
    return found


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden(name: str) -> None:
    docs = rendered(name)
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("LLMCTL_UPDATE_GOLDEN"):
        path.write_text("---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs))
    assert path.exists(), f"{path} missing: run with LLMCTL_UPDATE_GOLDEN=1"
    assert docs == [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_built_in_kinds_pass_strict_validation(name: str, version: str) -> None:
    checked = 0
    for doc in rendered(name):
        if doc["apiVersion"].split("/")[0].endswith("keda.sh"):
            continue  # a CRD: kubernetes-validate has no schema for it (see the next test, test_scale_to_zero.py)
        kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked >= 6


def test_scaled_object_passes_keda_structural_schema() -> None:
    schema = json.loads((HERE / "keda_scaledobject.schema.json").read_text())
    scaled = by_kind(rendered("scale-out"))["ScaledObject"]
    jsonschema.validate(scaled, schema)
    bad = json.loads(json.dumps(scaled))
    bad["spec"]["triggers"][0]["metadata"]["threshold"] = 4  # KEDA wants strings
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_every_object_is_labelled_for_pruning_and_teardown() -> None:
    for name in SCENARIOS:
        for doc in rendered(name):
            labels = doc["metadata"]["labels"]
            assert labels["app.kubernetes.io/managed-by"] == "llmctl"
            assert labels["app.kubernetes.io/instance"] == "llama"
            if doc["kind"] != "Namespace":
                selector = dict(item.split("=") for item in prune_selector(Names.from_config(LlmctlConfig())).split(","))
                assert selector.items() <= labels.items(), doc["kind"]


def test_pod_spec_follows_the_reference() -> None:
    docs = by_kind(rendered("default"))
    assert docs["ServiceAccount"]["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE}
    assert base64.b64decode(docs["Secret"]["data"]["api-key"]).decode() == "test-key"
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    init, main = pod["initContainers"][0], pod["containers"][0]
    assert (init["name"], init["command"]) == ("model-download", ["python", "-m", "server.download_model"])
    assert (main["name"], main["command"]) == ("vllm", ["python", "-m", "server"])
    assert main["image"] == init["image"] == IMAGE
    env = docs["ConfigMap"]["data"]
    assert env["MODEL_PATH"] == "/models/llama-2-7b-merged-vllm"
    assert {env["S3_BUCKET"], env["MAX_MODEL_LEN"], env["GPU_MEMORY_UTILIZATION"], env["DTYPE"]} == {
        "llama-models", "512", "0.95", "float16"}
    assert main["env"] == [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "vllm-llama-api-key", "key": "api-key"}}}]
    assert main["resources"] == {"requests": {"cpu": "2", "memory": "12Gi", "nvidia.com/gpu": "1"},
                                 "limits": {"cpu": "3", "memory": "14Gi", "nvidia.com/gpu": "1"}}
    assert main["startupProbe"]["httpGet"]["path"] == "/health"
    assert main["startupProbe"]["periodSeconds"] * main["startupProbe"]["failureThreshold"] >= 1200
    assert main["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert main["livenessProbe"]["httpGet"]["path"] == "/health"
    assert "initialDelaySeconds" not in main["readinessProbe"]
    for container in (init, main):
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] > 30  # the server's 30 s drain fits
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["models"]["emptyDir"]["sizeLimit"] == "30Gi"
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert docs["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}
    svc = docs["Service"]
    # the default exposure is the cluster only: no load balancer, nothing to annotate
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["ports"][0]["port"] == 8000
    assert "annotations" not in svc["metadata"]
    assert "PodDisruptionBudget" not in docs


def test_scale_out_adds_pdb_rolling_update_and_cache() -> None:
    docs = by_kind(rendered("scale-out"))
    assert docs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert docs["Deployment"]["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["cache-permissions", "model-download"]
    assert pod["volumes"][0]["hostPath"]["path"] == "/var/lib/llmctl/models/llama"
    assert pod["nodeSelector"] == {"llmctl.io/gpu": "t4"}
    assert docs["Service"]["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert docs["ScaledObject"]["spec"]["maxReplicaCount"] == 3


def test_streamer_skips_the_download() -> None:
    docs = by_kind(rendered("streamer-hpa"))
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert docs["ConfigMap"]["data"]["MODEL_PATH"] == "s3://llama-models/llama-2-7b-merged-vllm"
    assert docs["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 2


def test_strategy_by_capacity() -> None:
    def cfg(**deploy_and_cluster):
        return LlmctlConfig.model_validate(deploy_and_cluster)

    assert strategy(cfg())["type"] == "Recreate"
    assert strategy(cfg(cluster={"nodes_max": 2}))["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    two = cfg(cluster={"nodes_max": 2, "nodes_desired": 2}, deploy={"replicas": 2})
    assert strategy(two)["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_config_change_rolls_the_pods() -> None:
    base = by_kind(rendered("default"))["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    cfg = LlmctlConfig.model_validate({"model": {"bucket": "llama-models", "max_model_len": 1024}})
    changed = by_kind(render(cfg, Names.from_config(cfg), image=IMAGE, role_arn=ROLE, api_key="x"))
    assert changed["Deployment"]["spec"]["template"]["metadata"]["annotations"] != base
    # the API key is not part of the hash: keeping it never restarts pods
    assert by_kind(rendered("default", api_key="other"))["Deployment"]["spec"]["template"]["metadata"]["annotations"] == base


def test_missing_bucket_is_a_config_error() -> None:
    cfg = LlmctlConfig()
    with pytest.raises(ConfigError, match="model.bucket"):
        render(cfg, Names.from_config(cfg), image=IMAGE, role_arn=ROLE, api_key="k")


def test_image_resolution() -> None:
    cfg = LlmctlConfig()
    build = {"uri": "1.dkr.ecr.us-east-1.amazonaws.com/llmctl/llama:abc", "digest": "sha256:" + "0" * 64}
    assert resolve_image(None, cfg, build) == "1.dkr.ecr.us-east-1.amazonaws.com/llmctl/llama:abc@sha256:" + "0" * 64
    assert resolve_image("repo@sha256:1", cfg, build) == "repo@sha256:1"
    with pytest.raises(LlmctlError, match="llmctl build"):
        resolve_image(None, cfg, None)


def test_declared_adapters_are_downloaded_by_the_init_container_and_served_from_the_start() -> None:
    env = by_kind(rendered("adapters"))["ConfigMap"]["data"]
    root = "/models/llama-2-7b-merged-vllm-adapters"
    assert env["ADAPTERS"] == ("chat=llama-2-7b-merged-vllm-adapters/chat-v2 "
                               "sql=llama-2-7b-merged-vllm-adapters/sql")
    assert env["ADAPTERS_PATH"] == root and env["ENABLE_LORA"] == "true" and env["MAX_LORA_RANK"] == "32"
    assert env["LORA_MODULES"] == f"chat={root}/chat sql={root}/sql" and env["MAX_LORAS"] == "3"
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "true"
    pod = by_kind(rendered("adapters"))["Deployment"]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["model-download"]
    assert pod["initContainers"][0]["envFrom"] == pod["containers"][0]["envFrom"]  # the same ADAPTERS
    assert "ADAPTERS" not in by_kind(rendered("default"))["ConfigMap"]["data"]
    with pytest.raises(ValueError, match="runai_streamer"):
        LlmctlConfig.model_validate({"model": {"bucket": "b", "load_format": "runai_streamer", "adapters": {"a": None}}})
    with pytest.raises(ValueError, match="outside llama-2-7b-merged-vllm-adapters/, the only adapters prefix"):
        LlmctlConfig.model_validate({"model": {"bucket": "b", "adapters": {"a": "elsewhere/a"}}})
