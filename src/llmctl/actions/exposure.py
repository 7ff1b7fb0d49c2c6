"""Who can reach the endpoint (`deploy.exposure`), as the Service, the NetworkPolicy and words.

cluster   a ClusterIP: pods in the cluster, and `llmctl endpoint` / `bench` / `deploy`'s smoke test through
          a port-forward (the Kubernetes API's authentication and RBAC guard it).
internal  an internal NLB (the AWS Load Balancer Controller, IP targets): the VPC and the networks routed to
          it, narrowed by `load_balancer_source_ranges`.
public    an internet-facing NLB: only with `load_balancer_source_ranges` (0.0.0.0/0 spelled out) and TLS on
          port 443 (an ACM certificate) unless `allow_plaintext` (the config refuses anything else).

The NLB's IP targets send the load balancer's own VPC addresses (client IP preservation is off for IP
targets by default), so the pod's NetworkPolicy admits the VPC CIDR, plus the source ranges for when
preservation is turned on. Pure: config in, data out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from llmctl.config import LlmctlConfig, Names
from llmctl.load_balancer import PREFIX, nlb_annotations

HTTPS_PORT = 443
# How long the pod keeps serving after it is marked for deletion, before SIGTERM: the endpoint leaves the
# EndpointSlice, the controller deregisters the IP target and the NLB stops opening connections to it
# (AWS documents up to about 10 s for the NLB); kube-proxy needs a few seconds for a ClusterIP.
PRESTOP_LOAD_BALANCER_S = 15
PRESTOP_CLUSTER_S = 5
SCHEMES = {"internal": "internal", "public": "internet-facing"}


@dataclass(frozen=True)
class Exposure:
    kind: str  # cluster | internal | public
    service_type: str  # ClusterIP | LoadBalancer
    port: int  # the Service's port
    scheme: str  # http | https
    source_ranges: tuple[str, ...]  # who the NLB lets in (empty for cluster)
    reachable_from: str  # in words, for the plan and `status`

    @property
    def load_balancer(self) -> bool:
        return self.service_type == "LoadBalancer"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["source_ranges"] = list(self.source_ranges)
        return data


def exposure(cfg: LlmctlConfig) -> Exposure:
    d = cfg.deploy
    tls = bool(d.tls.certificate_arn)
    scheme = "https" if tls else "http"
    port = HTTPS_PORT if tls else cfg.server.port
    if d.exposure == "cluster":
        return Exposure("cluster", "ClusterIP", port, "http", (),
                        "pods in the cluster, and `llmctl endpoint` (a port-forward for whoever may port-forward "
                        "in the namespace)")
    ranges = tuple(d.load_balancer_source_ranges) or (cfg.cluster.vpc_cidr,)
    where = "the internet" if d.exposure == "public" else "the VPC"
    words = f"{where} via an {SCHEMES[d.exposure]} NLB, {scheme.upper()} on port {port}, from {', '.join(ranges)}"
    if d.exposure == "public" and not tls:
        words += " (plaintext: allow_plaintext is set)"
    if d.autoscaling.scales_to_zero:
        words += ", through the KEDA HTTP add-on's interceptor (it holds requests while the endpoint wakes)"
    return Exposure(d.exposure, "LoadBalancer", port, scheme, ranges, words)


def service_annotations(cfg: LlmctlConfig, names: Names, termination_grace_s: int) -> dict[str, str]:
    """The AWS Load Balancer Controller's annotations: an NLB with IP targets, its scheme, TLS on 443."""
    d = cfg.deploy
    if d.exposure == "cluster":
        return {}
    # connections still open when a pod leaves get as long as the pod itself takes to drain
    annotations = nlb_annotations(SCHEMES[d.exposure], names.aws_tags, deregistration_delay_s=termination_grace_s)
    if d.tls.certificate_arn:
        annotations.update({
            PREFIX + "ssl-cert": d.tls.certificate_arn,
            PREFIX + "ssl-ports": str(HTTPS_PORT),
            PREFIX + "ssl-negotiation-policy": d.tls.ssl_policy,
            PREFIX + "backend-protocol": "tcp",
        })
    return annotations


def prestop_s(cfg: LlmctlConfig) -> int:
    """Behind the interceptor (a ClusterIP, or an NLB that scales to zero) no load balancer targets the pods."""
    from llmctl.actions.front import fronted

    direct = cfg.deploy.exposure != "cluster" and not fronted(cfg)
    return PRESTOP_LOAD_BALANCER_S if direct else PRESTOP_CLUSTER_S


def ingress_peers(cfg: LlmctlConfig) -> list[dict]:
    """NetworkPolicy peers allowed to the server port: the whole cluster for a ClusterIP (a port-forward
    enters the pod's own network namespace, which no NetworkPolicy filters); behind a load balancer, the
    NLB's VPC addresses and the source ranges; an NLB that scales to zero sends to the HTTP add-on's
    interceptor instead, which alone is admitted then, by its namespace (a pod peer: an ipBlock need not
    match pod addresses). (Prometheus scrapes the metrics port: metrics_peers.)"""
    from llmctl.actions.autoscaling import INTERCEPTOR_PROXY
    from llmctl.actions.front import fronted

    if cfg.deploy.exposure == "cluster":
        return [{"namespaceSelector": {}}]
    if fronted(cfg):
        return [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": INTERCEPTOR_PROXY[0]}}}]
    ranges = dict.fromkeys([cfg.cluster.vpc_cidr, *cfg.deploy.load_balancer_source_ranges])
    return [{"ipBlock": {"cidr": cidr}} for cidr in ranges]


def metrics_peers(cfg: LlmctlConfig) -> list[dict]:
    """NetworkPolicy peers allowed to the metrics port (`server.metrics_port`), whatever the exposure: the
    monitoring namespace. The Service never carries that port, so no load balancer forwards to it."""
    return [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cfg.monitoring.namespace}}}]


def endpoint_url(address: str, ex: Exposure) -> str:
    return _url(address, ex.scheme, ex.port)


def _url(address: str, scheme: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    if scheme == "https" and port == HTTPS_PORT:
        return f"https://{host}"
    return f"{scheme}://{host}:{port}"


def load_balancer_url(service: dict) -> str | None:
    """The URL through a live Service's load balancer, once it has an address (None for a ClusterIP)."""
    from llmctl.actions.rollout.endpoint import service_address

    address = service_address(service)
    if not address or (service.get("spec") or {}).get("type") != "LoadBalancer":
        return None
    about = describe_service(service)
    return _url(address, about["scheme"], about["port"])


def cluster_url(names: Names, ex: Exposure) -> str:
    """The Service's in-cluster address (what pods use; from outside, `llmctl endpoint` forwards it)."""
    return f"http://{names.app}.{names.namespace}.svc.cluster.local:{ex.port}"


def describe_service(service: dict) -> dict:
    """What a live Service exposes, to whom (for `status`): read from the object, not the config."""
    spec = service.get("spec") or {}
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    port = ((spec.get("ports") or [{}])[0]).get("port")
    if spec.get("type") != "LoadBalancer":
        return {"exposure": "cluster", "port": port, "scheme": "http",
                "reachable_from": "pods in the cluster, and `llmctl endpoint` (a port-forward)"}
    scheme = annotations.get(PREFIX + "scheme", "internal")
    tls = bool(annotations.get(PREFIX + "ssl-cert"))
    ranges = spec.get("loadBalancerSourceRanges") or []
    kind = "public" if scheme == "internet-facing" else "internal"
    return {"exposure": kind, "port": port, "scheme": "https" if tls else "http", "source_ranges": ranges,
            "reachable_from": f"{'the internet' if kind == 'public' else 'the VPC'} via an {scheme} NLB"
                              f"{', from ' + ', '.join(ranges) if ranges else ''}"}
