"""An NLB endpoint that scales to zero (issue 21): its load balancer is a Service in the KEDA HTTP add-on's
namespace that selects the interceptor's proxy pods (the selector and target port copied from the installed
proxy Service), the endpoint's own Service is the ClusterIP the interceptor forwards to, the NLB's DNS name is
among the hosts the interceptor routes, and the apply prunes the NLB Service in `keda` once it is no longer
rendered."""

from __future__ import annotations

import kubernetes_validate
import pytest

from llmctl.actions import front as fronts
from llmctl.actions.deploy import apply_documents, render, revision_selector, route
from llmctl.config import LlmctlConfig, Names
from llmctl.k8s.client import Kube
from tests.deploy.test_render import CERT, IMAGE, ROLE
from tests.deploy.test_security import PREFIX
from tests.doubles.kube.cluster import INTERCEPTOR_LABELS
from tests.fixtures.crd import validate_crd

ZERO = {"enabled": True, "max_replicas": 1, "idle_minutes": 15}
PUBLIC = {"exposure": "public", "tls": {"certificate_arn": CERT, "host_name": "llm.example.com"},
          "load_balancer_source_ranges": ["203.0.113.0/24"], "autoscaling": ZERO}
# an install under another release name than the chart's default, with a numeric target port
INSTALLED = fronts.Front({**INTERCEPTOR_LABELS, "app.kubernetes.io/instance": "keda-http"}, 8080,
                         ("k8s-keda-vllmllam-0123456789-abcdef.elb.us-east-1.amazonaws.com",))


def _render(deploy: dict, front: fronts.Front | None = INSTALLED) -> tuple[list[dict], Names]:
    cfg = LlmctlConfig.model_validate({"model": {"bucket": "llama-models"}, "deploy": deploy})
    names = Names.from_config(cfg)
    return render(cfg, names, image=IMAGE, role_arn=ROLE, api_key="k", front=front), names


def _services(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if d["kind"] == "Service"}


def test_the_nlb_selects_the_installed_interceptor_and_the_pods_get_a_cluster_ip() -> None:
    docs, _ = _render(PUBLIC)
    services = _services(docs)
    nlb, own = services[("keda", "vllm-llama-vllm")], services[("vllm", "vllm-llama")]
    for svc in (nlb, own):
        kubernetes_validate.validate(svc, "1.33", strict=True)
    # the NLB: the exposure's annotations, source ranges and TLS on 443, to the installed proxy pods' port
    assert nlb["spec"]["type"] == "LoadBalancer"
    assert nlb["spec"]["selector"] == INSTALLED.selector  # copied, release name and all
    assert nlb["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": 8080, "protocol": "TCP"}]
    assert nlb["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    annotations = nlb["metadata"]["annotations"]
    assert annotations[PREFIX + "scheme"] == "internet-facing" and annotations[PREFIX + "ssl-cert"] == CERT
    assert nlb["metadata"]["labels"] == own["metadata"]["labels"]  # found by the prune's and teardown's selectors
    # the endpoint's own Service: a ClusterIP on the server's port (the HTTPScaledObject's target), no NLB
    assert own["spec"]["type"] == "ClusterIP" and "loadBalancerSourceRanges" not in own["spec"]
    assert own["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert own["metadata"]["annotations"] == {fronts.ANNOTATION: "keda/vllm-llama-vllm"}
    routing = next(d for d in docs if d["kind"] == "HTTPScaledObject")
    validate_crd(routing)
    assert routing["spec"]["scaleTargetRef"]["service"] == "vllm-llama"
    assert routing["spec"]["scaleTargetRef"]["port"] == 8000
    # clients send the certificate's name or the NLB's own: both routed, after the in-cluster names
    assert routing["spec"]["hosts"][-2:] == ["llm.example.com", INSTALLED.hostnames[0]]


def test_an_nlb_that_stays_warm_keeps_targeting_the_pods() -> None:
    docs, _ = _render({**PUBLIC, "autoscaling": {**ZERO, "idle_minutes": 0}})
    services = _services(docs)
    assert list(services) == [("vllm", "vllm-llama")]
    assert services[("vllm", "vllm-llama")]["spec"]["type"] == "LoadBalancer"


def test_routing_a_revision_moves_the_endpoint_service_not_the_nlb() -> None:
    docs, names = _render(PUBLIC)
    moved = _services(route(docs, "vllm-llama-0123456789", revision_selector(names, "0123456789abcdef")))
    assert moved[("vllm", "vllm-llama")]["spec"]["selector"]["llmctl.io/config-hash"] == "0123456789abcdef"
    assert moved[("keda", "vllm-llama-vllm")]["spec"]["selector"] == INSTALLED.selector


def test_without_the_cluster_the_plan_uses_the_chart_labels_and_no_nlb_name() -> None:
    docs, _ = _render(PUBLIC, front=None)
    nlb = _services(docs)[("keda", "vllm-llama-vllm")]
    assert nlb["spec"]["selector"]["app.kubernetes.io/instance"] == "http-add-on"
    assert nlb["spec"]["ports"][0]["targetPort"] == "proxy"
    assert next(d for d in docs if d["kind"] == "HTTPScaledObject")["spec"]["hosts"][-1] == "llm.example.com"


def test_a_long_name_is_cut_to_a_service_name_with_a_hash() -> None:
    def name(namespace: str) -> str:
        cfg = LlmctlConfig.model_validate({"project": {"name": "a" * 24}, "deploy": {"namespace": namespace}})
        return fronts.front_name(Names.from_config(cfg))

    assert name("vllm") == f"vllm-{'a' * 24}-vllm"
    assert len(name("n" * 40)) == 63 and name("n" * 40) != name("n" * 39 + "m")


def test_reads_the_proxy_service_as_installed(kube) -> None:
    names = _render(PUBLIC)[1]
    assert fronts.read(Kube.from_kubeconfig(str(kube.kubeconfig_path)), names) is None  # no add-on: deploy refuses before applying
    kube.install_keda(http_add_on=True)
    found = fronts.read(Kube.from_kubeconfig(str(kube.kubeconfig_path)), names)
    assert found == fronts.Front(INTERCEPTOR_LABELS, "proxy", ())


def test_apply_writes_both_namespaces_and_prunes_the_nlb_once_warm(kube) -> None:
    kube.install_keda(http_add_on=True)
    kube.install_aws_load_balancer_controller()
    client = Kube.from_kubeconfig(str(kube.kubeconfig_path))
    docs, names = _render(PUBLIC, front=fronts.read(client, _render(PUBLIC)[1]))
    applied = apply_documents(client, docs, names)
    assert ("Service", "keda", "vllm-llama-vllm", "created") in {(r.kind, r.namespace, r.name, r.action) for r in applied}
    again = apply_documents(client, docs, names)
    assert {r.action for r in again} == {"unchanged"}
    warm, _ = _render({**PUBLIC, "autoscaling": {**ZERO, "idle_minutes": 0}})
    pruned = [r for r in apply_documents(client, warm, names) if r.action == "deleted"]
    assert ("Service", "keda", "vllm-llama-vllm") in {(r.kind, r.namespace, r.name) for r in pruned}
    kube.wait_for(lambda: client.get("v1", "Service", "vllm-llama-vllm", "keda") is None, 10)  # its NLB first
    assert client.get("v1", "Service", "keda-add-ons-http-interceptor-proxy", "keda") is not None  # not ours


@pytest.mark.parametrize("exposure", ["internal", "public"])
def test_the_plan_says_clients_go_through_the_interceptor(exposure: str) -> None:
    from llmctl.actions.exposure import exposure as exposure_of

    deploy = PUBLIC if exposure == "public" else {"exposure": "internal", "autoscaling": ZERO}
    cfg = LlmctlConfig.model_validate({"model": {"bucket": "llama-models"}, "deploy": deploy})
    assert "through the KEDA HTTP add-on's interceptor" in exposure_of(cfg).reachable_from


def test_a_dry_run_without_the_cluster_says_the_nlb_selector_is_the_charts(llmctl) -> None:
    import yaml

    from tests.deploy.test_scale_to_zero import ZERO as ZERO_CONFIG

    config = {**ZERO_CONFIG, "deploy": {**ZERO_CONFIG["deploy"], "exposure": "internal"}}
    llmctl.write_config(yaml.safe_dump(config))
    done = llmctl("deploy", "--dry-run", "--output-dir", "out", "--image", IMAGE, check=True)
    assert "the NLB's Service in `keda` selects the chart's interceptor pods of a release named `http-add-on`" in \
        " ".join(done.stderr.split()), done.stderr
    nlb = yaml.safe_load(next((llmctl.cwd / "out").glob("*-service-vllm-llama-vllm.yaml")).read_text())
    assert nlb["metadata"]["namespace"] == "keda" and nlb["spec"]["selector"] == fronts.CHART_SELECTOR
