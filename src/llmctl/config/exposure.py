"""Who may reach the endpoint, as config: `deploy.tls`, and the checks of `deploy.exposure` against the
load balancer's settings and the interceptor's host names (`deploy.hostnames`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, Field

from llmctl.config.problems import Invalid
from llmctl.config.section import Section

if TYPE_CHECKING:
    from llmctl.config.model import DeployConfig

HOST_NAME = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"  # an exact DNS name


def _exact_names(value: list[str]) -> list[str]:
    """The interceptor matches Host against these; a wildcard (or an empty list of hosts, which llmctl never
    renders) is a catch-all there (the add-on's pkg/routing), taking other endpoints' requests."""
    import re

    for item in value:
        if "*" in item:
            raise Invalid(f"{item!r} is a wildcard (a catch-all for the interceptor, which would take other "
                          "endpoints' requests)", fix="list the exact DNS names clients send as Host")
        if len(item) > 253 or not re.match(HOST_NAME, item):
            raise Invalid(f"{item!r} is not a DNS name", fix="use a name such as llm.example.com")
    return value


HostNames = Annotated[list[str], AfterValidator(_exact_names)]


class TlsConfig(Section):
    """TLS on the NLB's listener (port 443), terminated by the load balancer with an ACM certificate."""

    certificate_arn: str | None = Field(
        None, pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$",
        description="ACM certificate for the NLB's TLS listener on port 443 (internal or public exposure).")
    ssl_policy: str = Field("ELBSecurityPolicy-TLS13-1-2-2021-06", pattern=r"^ELBSecurityPolicy-[A-Za-z0-9-]+$",
                            description="The NLB listener's security policy (TLS versions and ciphers).")
    host_name: str | None = Field(
        None, max_length=253, pattern=HOST_NAME,
        description="The DNS name on the certificate that clients use (pointed at the NLB): `bench` checks the "
                    "certificate against it, sends it as SNI and Host; unset, only the chain is checked.")


def check_exposure(deploy: "DeployConfig") -> "DeployConfig":
    """Refuse the exposures that would put the key and prompts in cleartext, or open the endpoint to all,
    without an explicit choice; and settings the chosen exposure cannot honour."""
    exposure, ranges, tls = deploy.exposure, deploy.load_balancer_source_ranges, deploy.tls.certificate_arn
    if exposure == "public" and not tls and not deploy.allow_plaintext:
        raise ValueError("deploy.exposure is public but deploy.tls.certificate_arn is not set (the key and prompts "
                         "would cross the internet in cleartext): set deploy.tls.certificate_arn to an ACM "
                         "certificate, or deploy.allow_plaintext: true, or use exposure internal or cluster")
    if exposure == "public" and not ranges:
        raise ValueError("deploy.exposure is public but deploy.load_balancer_source_ranges is empty: list the CIDRs "
                         "allowed to reach the endpoint (e.g. [203.0.113.0/24]), or [0.0.0.0/0] for the whole internet")
    if deploy.tls.host_name and not tls:
        raise ValueError(f"deploy.tls.host_name {deploy.tls.host_name} is set but deploy.tls.certificate_arn is not: "
                         "set the ACM certificate that names it, or remove deploy.tls.host_name")
    if deploy.hostnames and not deploy.autoscaling.scales_to_zero:
        raise ValueError(f"deploy.hostnames {', '.join(deploy.hostnames)} names the endpoint to the HTTP add-on's "
                         "interceptor, which only routes to an endpoint that scales to zero: set "
                         "deploy.autoscaling.idle_minutes (or a schedule), or remove deploy.hostnames")
    if exposure == "cluster" and (ranges or tls):
        field = "load_balancer_source_ranges" if ranges else "tls.certificate_arn"
        raise ValueError(f"deploy.{field} needs a load balancer but deploy.exposure is cluster (a ClusterIP): "
                         f"set deploy.exposure: internal or public, or remove deploy.{field}")
    return deploy
