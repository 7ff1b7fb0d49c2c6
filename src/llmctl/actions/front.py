"""The NLB in front of the KEDA HTTP add-on's interceptor: how clients of an `internal` or `public` endpoint
reach it when it scales to zero.

At zero the endpoint has no pod a load balancer could send to, so the NLB's LoadBalancer Service lives in the
interceptor's namespace and selects the interceptor's proxy pods (the add-on's walkthrough puts a load
balancer in front of the interceptor). The interceptor holds each request until a replica is ready, then
forwards it to the endpoint's own Service, which is a ClusterIP then (the HTTPScaledObject's target). The
selector and target port are copied from the installed proxy Service, never assumed: in the chart they carry
the Helm release name, so they differ per install. Clients send the NLB's DNS name as Host: `deploy` adds it to
the HTTPScaledObject's hosts once AWS assigns it (`host_addresses`), and later renders keep it (`read`).
The endpoint's own Service names the front in an annotation, so `status` and `bench` find it without guessing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from llmctl.actions.autoscaling import INTERCEPTOR_PROXY

NAMESPACE = INTERCEPTOR_PROXY[0]
ANNOTATION = "llmctl.io/front"  # on the endpoint's own Service: `namespace/name` of the NLB Service clients reach
# The chart's proxy Service for a release named `http-add-on` (the install `deploy` suggests): only for a plan
# rendered without the cluster (`deploy --dry-run` that cannot read it), never applied.
CHART_SELECTOR = {"app.kubernetes.io/component": "interceptor", "app.kubernetes.io/name": "http-add-on",
                  "app.kubernetes.io/part-of": "keda-add-ons-http", "app.kubernetes.io/instance": "http-add-on"}
MAX_NAME = 63  # a Service name is a DNS-1035 label


@dataclass(frozen=True)
class Front:
    """What the front Service copies from the installed interceptor proxy Service, and its own NLB names."""

    selector: dict[str, str]
    target_port: int | str
    hostnames: tuple[str, ...] = ()  # the NLB's DNS names once assigned: hosts the interceptor routes


CHART_DEFAULT = Front(CHART_SELECTOR, "proxy")


def fronted(cfg) -> bool:
    """An NLB exposure that scales to zero: its load balancer goes to the interceptor, not to the pods."""
    return cfg.deploy.exposure != "cluster" and cfg.deploy.autoscaling.scales_to_zero


def front_name(names) -> str:
    """`<app>-<namespace>`: unique in the interceptor's namespace, which every endpoint's front shares."""
    name = f"{names.app}-{names.namespace}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_NAME - 9].rstrip('-')}-{digest}"


def front_ref(names) -> str:
    return f"{NAMESPACE}/{front_name(names)}"


def service_contexts(cfg, names, ex, annotations: dict, front: Front | None) -> tuple[dict, dict | None]:
    """service.yaml.j2's contexts: the endpoint's own Service, and the NLB in front of the interceptor (None
    unless `fronted`: the own Service is the NLB then). `ex`: the exposure; `annotations`: the NLB's."""
    nlb = {"service_type": ex.service_type, "source_ranges": list(ex.source_ranges), "service_annotations": annotations,
           "service_port": ex.port, "port_name": "https" if ex.scheme == "https" else "http", "target_port": "http"}
    if not fronted(cfg):
        return nlb, None
    front = front or CHART_DEFAULT
    own = {"service_type": "ClusterIP", "source_ranges": [], "service_port": cfg.server.port, "port_name": "http",
           "service_annotations": {ANNOTATION: front_ref(names)}, "target_port": "http"}
    return own, {**nlb, "namespace": NAMESPACE, "app": front_name(names), "revision_selector": front.selector,
                 "target_port": front.target_port}


def hostnames(service: dict | None) -> tuple[str, ...]:
    ingress = (((service or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(i["hostname"] for i in ingress if i.get("hostname"))


def read(kube, names) -> Front | None:
    """The installed proxy Service's selector and target port, with the front's NLB names when it has them;
    None when the add-on's proxy Service is not there (`deploy` then refuses scale to zero before applying)."""
    _, proxy, _ = INTERCEPTOR_PROXY
    service = kube.get("v1", "Service", proxy, NAMESPACE)
    if service is None:
        return None
    spec = service.get("spec") or {}
    port = next((p for p in spec.get("ports") or [] if p.get("name") == "proxy"), (spec.get("ports") or [{}])[0])
    return Front(dict(spec.get("selector") or {}), port.get("targetPort") or port.get("port"),
                 hostnames(kube.get("v1", "Service", front_name(names), NAMESPACE)))


def client_service(kube, names, own: dict | None) -> dict | None:
    """The Service clients reach: the front its annotation names, else the endpoint's own."""
    ref = (((own or {}).get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if not ref:
        return own
    namespace, _, name = ref.partition("/")
    return kube.get("v1", "Service", name, namespace)


def host_addresses(kube, documents: list[dict], names: tuple[str, ...]):
    """Add the NLB's DNS names to the HTTPScaledObject's hosts (the interceptor answers 404 to a Host it does
    not route); None when they are there already. `documents`: what was applied last (the Service routed)."""
    import copy

    routing = next(d for d in documents if d["kind"] == "HTTPScaledObject")
    missing = [n for n in names if n not in routing["spec"]["hosts"]]
    if not missing:
        return None
    routing = copy.deepcopy(routing)
    routing["spec"]["hosts"] += missing
    return kube.apply(routing)
