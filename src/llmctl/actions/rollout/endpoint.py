"""The endpoint once its pods are Ready: the load balancer's address, and one request through it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmctl.errors import LlmctlError


def service_address(service: dict) -> str | None:
    """The load balancer's hostname (or IP) once the cloud published it."""
    for ingress in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        address = ingress.get("hostname") or ingress.get("ip")
        if address:
            return address
    return None


def wait_for_address(kube, namespace: str, name: str, timeout_s: float) -> str:
    """Watch the Service until its load balancer has an address."""
    service = kube.get("v1", "Service", name, namespace)
    if service and service_address(service):
        return service_address(service)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        remaining = max(1, int(deadline - time.monotonic()))
        for _, obj in kube.watch("v1", "Service", namespace=namespace, field_selector=f"metadata.name={name}",
                                 timeout_s=remaining):
            address = service_address(obj)
            if address:
                return address
            if time.monotonic() >= deadline:
                break
    raise LlmctlError(
        f"the load balancer of Service {namespace}/{name} got no address within {timeout_s:g}s",
        hint="the NLB needs the AWS Load Balancer Controller in the cluster; its events show why: `kubectl -n "
             f"{namespace} describe service {name}`",
    )


def tls_context(url: str):
    """For an https endpoint: the certificate chain is verified, the host name is not. The NLB's DNS name is
    never the name on the ACM certificate (a domain the user points at it), so checking it would always
    fail; the chain still proves the listener holds a certificate a public CA issued."""
    import ssl

    if not url.startswith("https://"):
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    return context


@dataclass
class SmokeResult:
    url: str
    status: int
    latency_s: float
    text: str

    def to_dict(self) -> dict:
        return {"url": self.url, "status": self.status, "latency_s": round(self.latency_s, 3), "text": self.text}


def smoke_request(base_url: str, api_key: str, model: str, timeout_s: float,
                  sleep: Callable[[float], None] = time.sleep, unrouted_s: float = 0.0) -> SmokeResult:
    """One completion through the endpoint. Connection failures are retried until `timeout_s`
    (a new load balancer's DNS name takes a few minutes to resolve); an HTTP error is final, but a 404 for
    `unrouted_s` (the interceptor's routing table follows a new host of the HTTPScaledObject within seconds)."""
    import urllib.error
    import urllib.request

    url = base_url.rstrip("/") + "/v1/completions"
    body = json.dumps({"model": model, "prompt": "Hello, my name is", "max_tokens": 8, "temperature": 0}).encode()
    deadline = time.monotonic() + timeout_s
    routed_by = time.monotonic() + unrouted_s
    last = ""
    while True:
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=max(5.0, min(60.0, deadline - started)),
                                        context=tls_context(url)) as response:
                data = json.loads(response.read() or b"{}")
                text = ((data.get("choices") or [{}])[0]).get("text", "")
                return SmokeResult(url, response.status, time.monotonic() - started, text)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            if exc.code == 404 and time.monotonic() < min(routed_by, deadline):
                sleep(1)
                continue
            raise LlmctlError(f"the smoke request to {url} failed with HTTP {exc.code}: {detail}",
                              hint="`llmctl logs` shows the server's side") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() + 2 >= deadline:
            raise LlmctlError(f"the endpoint {base_url} did not answer within {timeout_s:g}s ({last})",
                              hint="a new load balancer's DNS can take minutes: retry `llmctl status`; check "
                                   "deploy.load_balancer_source_ranges includes your address (an internal NLB "
                                   "answers only inside the VPC)")
        sleep(2)
