"""Applying and pruning in-process against the Kubernetes double (no CLI start-up per case)."""

from __future__ import annotations

import pytest

from llmctl.actions.deploy import apply_documents, render
from llmctl.actions.rollout.run import deploy
from llmctl.config import LlmctlConfig, Names
from llmctl.errors import LlmctlError
from llmctl.k8s.client import Kube
from tests.doubles.kube.cluster import KEDA_CRDS, KEDA_HTTP_CRDS
from tests.fixtures.kube import ENDPOINT_PODS

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llmctl/llama@sha256:" + "ab" * 32
ROLE = "arn:aws:iam::123456789012:role/llmctl/llama/llama-vllm-s3-access"


def config(**deploy) -> LlmctlConfig:
    return LlmctlConfig.model_validate({"model": {"bucket": "llama-models"}, "cluster": {"nodes_max": 3},
                                       "deploy": deploy})


def documents(cfg: LlmctlConfig) -> list[dict]:
    return render(cfg, Names.from_config(cfg), image=IMAGE, role_arn=ROLE, api_key="key")


@pytest.fixture
def client(kube) -> Kube:
    return Kube.from_kubeconfig(str(kube.kubeconfig_path))


def test_keda_missing_is_explained(client) -> None:
    cfg = config(autoscaling={"enabled": True})
    with pytest.raises(LlmctlError, match="KEDA is not installed") as info:
        apply_documents(client, documents(cfg), Names.from_config(cfg))
    assert "engine: hpa" in info.value.hint


def test_scale_to_zero_needs_the_interceptor_proxy_service(kube, client) -> None:
    # the add-on's CRD without its proxy Service in `keda` (another release, another namespace): nothing to
    # wake the endpoint through, refused before anything is applied
    kube.install_crds(KEDA_CRDS + KEDA_HTTP_CRDS)
    kube.wait_for(lambda: client.has_kind("http.keda.sh/v1alpha1", "HTTPScaledObject"))
    zero = config(autoscaling={"enabled": True, "idle_minutes": 15})
    with pytest.raises(LlmctlError, match="interceptor proxy Service keda/keda-add-ons-http-interceptor-proxy "
                                          "is not there") as info:
        apply_documents(client, documents(zero), Names.from_config(zero))
    assert "helm install http-add-on kedacore/keda-add-ons-http -n keda" in info.value.hint
    assert kube.get("apps/v1", "Deployment", "vllm-llama-waking", "vllm") is None
    kube.install_keda(http_add_on=True)  # the chart's proxy Service: the same deploy goes through
    applied = apply_documents(client, documents(zero), Names.from_config(zero))
    assert ("HTTPScaledObject", "created") in {(r.kind, r.action) for r in applied}


def test_scaled_object_applied_then_pruned_leaving_others_alone(kube, client) -> None:
    kube.install_keda()
    kube.wait_for(lambda: client.has_kind("keda.sh/v1alpha1", "ScaledObject"))  # the CRD is served
    cfg = config(autoscaling={"enabled": True})
    names = Names.from_config(cfg)
    first = apply_documents(client, documents(cfg), names)
    assert ("ScaledObject", "created") in {(r.kind, r.action) for r in first}
    rendered = next(d for d in documents(cfg) if d["kind"] == "Deployment")
    assert "replicas" not in rendered["spec"]  # KEDA's to set; applying ours would reset it
    # neighbours in the namespace: another deployment's ConfigMap, and a monitoring object of this one
    for name, labels in (("other-env", {"app.kubernetes.io/managed-by": "llmctl", "app.kubernetes.io/instance": "other",
                                        "app.kubernetes.io/part-of": "llmctl-endpoint"}),
                         ("llama-dashboards", {"app.kubernetes.io/managed-by": "llmctl",
                                               "app.kubernetes.io/instance": "llama",
                                               "app.kubernetes.io/part-of": "llmctl-monitoring"})):
        kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": name, "namespace": "vllm", "labels": labels}, "data": {}})
    off = config(autoscaling={"enabled": False})
    second = apply_documents(client, documents(off), names)
    # the PDB went with the autoscaler: one replica has no other to keep serving through a drain
    assert sorted((r.kind, r.action) for r in second if r.action != "unchanged") == [
        ("PodDisruptionBudget", "deleted"), ("ScaledObject", "deleted")]
    assert kube.get("keda.sh/v1alpha1", "ScaledObject", "vllm-llama", "vllm") is None
    assert kube.get("v1", "ConfigMap", "other-env", "vllm") and kube.get("v1", "ConfigMap", "llama-dashboards", "vllm")


def test_streamed_weights_skip_the_download_phase(kube, client) -> None:
    cfg = LlmctlConfig.model_validate({"model": {"bucket": "llama-models", "load_format": "runai_streamer"},
                                       "deploy": {"exposure": "cluster"}})
    outcome = deploy(cfg, Names.from_config(cfg), client, image=IMAGE, role_arn=ROLE, timeout_s=30, smoke=False)
    assert [p for p, _ in outcome.timeline.durations()] == ["Scheduling", "Pulling image", "Loading engine"]
    assert outcome.endpoint == "http://vllm-llama.vllm.svc.cluster.local:8000" and outcome.api_key_created


def test_the_waking_responder_comes_and_goes_with_scale_to_zero(kube, client) -> None:
    kube.install_keda(http_add_on=True)
    kube.wait_for(lambda: client.has_kind("http.keda.sh/v1alpha1", "HTTPScaledObject"))
    zero = config(autoscaling={"enabled": True, "idle_minutes": 15})
    names = Names.from_config(zero)
    first = apply_documents(client, documents(zero), names)
    waking = {(r.kind, r.action) for r in first if r.name == "vllm-llama-waking"}
    assert waking == {("ConfigMap", "created"), ("Deployment", "created"), ("Service", "created"),
                      ("NetworkPolicy", "created")}
    assert kube.get("apps/v1", "Deployment", "vllm-llama-waking", "vllm")["spec"]["replicas"] == 1
    wake = kube.get("v1", "Service", "vllm-llama-wake", "vllm")  # exposure cluster: pods wake it by this name
    assert wake["spec"]["type"] == "ExternalName" and "selector" not in wake["spec"]
    assert wake["spec"]["externalName"] == "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local"
    again = apply_documents(client, documents(zero), names)
    assert {r.action for r in again} == {"unchanged"}
    warm = apply_documents(client, documents(config(autoscaling={"enabled": True})), names)
    assert sorted((r.kind, r.name) for r in warm if r.action == "deleted") == [
        ("ConfigMap", "vllm-llama-waking"), ("Deployment", "vllm-llama-waking"), ("HTTPScaledObject", "vllm-llama"),
        ("NetworkPolicy", "vllm-llama-waking"), ("Service", "vllm-llama-wake"), ("Service", "vllm-llama-waking")]
    assert [d["metadata"]["name"] for d in kube.list("apps/v1", "Deployment", "vllm", ENDPOINT_PODS)] == [
        next(d["metadata"]["name"] for d in documents(zero) if d["kind"] == "Deployment")]  # the server's stays
