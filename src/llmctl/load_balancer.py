"""The AWS Load Balancer Controller's annotations for a LoadBalancer Service, derived in one place for every
Service llmctl exposes through an NLB: the endpoint (`deploy.exposure`) and the monitoring stack's Grafana and
Prometheus (`monitoring.expose: load-balancer`).

Without them the in-tree cloud provider would make an internet-facing Classic ELB whatever the config said.
With them: an NLB the controller owns (`type: external`), IP targets (the pods, not node ports), the scheme
asked for, cross-zone balancing, llmctl's tags on the AWS resources it creates. Who may connect is the
Service's `loadBalancerSourceRanges` (the controller turns it into the NLB's security group rules), set by
the caller beside these. Pure.
"""

from __future__ import annotations

PREFIX = "service.beta.kubernetes.io/aws-load-balancer-"
SCHEMES = ("internal", "internet-facing")


def nlb_annotations(scheme: str, tags: dict[str, str], deregistration_delay_s: int | None = None) -> dict[str, str]:
    """`deregistration_delay_s`: how long connections to a leaving pod are kept (its drain); None leaves
    the target group's default."""
    if scheme not in SCHEMES:
        raise ValueError(f"load balancer scheme {scheme!r} is not one of {', '.join(SCHEMES)}")
    annotations = {
        PREFIX + "type": "external",
        PREFIX + "nlb-target-type": "ip",
        PREFIX + "scheme": scheme,
        PREFIX + "attributes": "load_balancing.cross_zone.enabled=true",
    }
    if deregistration_delay_s is not None:
        annotations[PREFIX + "target-group-attributes"] = f"deregistration_delay.timeout_seconds={deregistration_delay_s}"
    annotations[PREFIX + "additional-resource-tags"] = ",".join(f"{k}={v}" for k, v in tags.items())
    return annotations
