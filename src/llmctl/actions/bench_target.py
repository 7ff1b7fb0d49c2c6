"""Which endpoint `llmctl bench` loads, first match wins.

`--url` (+ `--api-key`); the local endpoint `llmctl local up` recorded in the state store (key
"local"); the deployed endpoint (the Service's load-balancer address, or a port-forward to a
ClusterIP Service, and the API key Secret, through the Kubernetes adapter).

The cross-check scrapes `metrics_url`: the server's own metrics listener (a port-forward to a pod's
"metrics" port when deployed: no load balancer carries it; the recorded one locally), or, for `--url`,
`--metrics-url` or the URL itself (where `vllm serve` and METRICS_PORT=0 serve it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmctl.actions.exposure import load_balancer_url
from llmctl.actions.front import ANNOTATION, client_service
from llmctl.errors import ConfigError, LlmctlError


@dataclass
class ResolvedTarget:
    base_url: str
    api_key: str | None
    source: str  # flag | local | cluster
    model: str | None = None
    tokenizer_path: str | None = None
    instance_type: str | None = None
    replicas: int = 1
    region: str = "us-east-1"
    spot: bool = False
    forward: Any = None  # the port-forward base_url goes through (a ClusterIP endpoint), open until close()
    metrics_url: str | None = None  # whose /metrics the cross-check reads (cluster: None when none was found)
    metrics_forward: Any = None  # the port-forward metrics_url goes through, open until close()
    tls_server_name: str | None = None  # the name the certificate is checked against, sent as SNI and Host
    tls_check_hostname: bool = True  # False: a TLS NLB whose name on its certificate llmctl does not know
    # deployed and scaled to zero (status's `scaled_to_zero`): the first request wakes it, through the KEDA HTTP
    # add-on's interceptor (`host` is the Host header it routes on)
    zero: dict | None = None
    host: str | None = None

    def __post_init__(self) -> None:
        if self.metrics_url is None and self.source != "cluster":  # a URL's own /metrics unless told otherwise
            self.metrics_url = self.base_url

    def close(self) -> None:
        for name in ("forward", "metrics_forward"):
            if getattr(self, name) is not None:
                getattr(self, name).stop()
                setattr(self, name, None)


def resolve_target(
    url: str | None,
    api_key: str | None,
    *,
    local: dict | None,
    config_loader: Callable[[], Any],
    names_loader: Callable[[], Any],
    kube_factory: Callable[[], Any],
    metrics_url: str | None = None,
    tls_server_name: str | None = None,
    cold_start_s: float | None = None,
) -> ResolvedTarget:
    for flag, value in (("--url", url), ("--metrics-url", metrics_url)):
        if value and not value.startswith(("http://", "https://")):
            raise ConfigError(f"{flag} {value!r} is not an http(s) URL", hint=f"e.g. {flag} http://127.0.0.1:8000")
    if (metrics_url or tls_server_name) and not url:
        flag = "--metrics-url" if metrics_url else "--tls-server-name"
        raise ConfigError(f"{flag} needs --url", hint="the local and deployed endpoints bring their own")
    if tls_server_name and not url.startswith("https://"):
        raise ConfigError(f"--tls-server-name {tls_server_name} needs an https --url (got {url})")
    if url:
        return ResolvedTarget(url.rstrip("/"), api_key, "flag", metrics_url=(metrics_url or url).rstrip("/"),
                              tls_server_name=tls_server_name)
    if local and local.get("url"):
        tokenizer = None
        if local.get("model_path"):
            tokenizer = local["model_path"]
        elif local.get("state_dir"):
            try:
                candidate = Path(local["state_dir"]) / "models" / config_loader().model.prefix
                tokenizer = str(candidate) if candidate.is_dir() else None
            except LlmctlError:
                tokenizer = None
        return ResolvedTarget(local["url"].rstrip("/"), api_key or local.get("api_key"), "local", model=local.get("model"),
                              tokenizer_path=tokenizer, metrics_url=local.get("metrics_url") or local["url"].rstrip("/"))
    return _cluster_target(api_key, config_loader(), names_loader(), kube_factory, cold_start_s)


def _cluster_target(api_key: str | None, cfg, names, kube_factory, cold_start_s: float | None) -> ResolvedTarget:
    hint = "pass --url (and --api-key), run `llmctl local up`, or `llmctl deploy` first"
    try:
        kube = kube_factory()
        service = kube.get("v1", "Service", names.app, names.namespace)
    except LlmctlError as exc:
        raise LlmctlError(f"no endpoint to benchmark: {exc.message}", hint=hint) from None
    except Exception as exc:  # no kubeconfig, unreachable cluster: the user needs the same hint
        raise LlmctlError(f"no endpoint to benchmark: cannot reach the cluster ({type(exc).__name__}: {exc})", hint=hint) from None
    if not service:
        raise LlmctlError(f"no endpoint to benchmark: Service {names.namespace}/{names.app} does not exist", hint=hint)
    forward, zero = None, _zero(kube, names, service, cold_start_s)
    if zero is not None and not zero["wakes_on_request"]:
        raise LlmctlError(f"{names.namespace}/{names.app} is scaled to zero and no HTTPScaledObject wakes it on "
                          "request", hint="set deploy.autoscaling.idle_minutes and `llmctl deploy` again, or wait "
                          "for a schedule window")
    reached = client_service(kube, names, service)  # an NLB in front of the interceptor, when there is one
    fronted_url = load_balancer_url(reached) if reached and reached is not service else None
    if fronted_url:  # through the NLB and the interceptor, at zero or not: what the endpoint's clients do
        base_url = fronted_url
        zero = {**zero, "host": None} if zero is not None else None  # the NLB's own name is the Host
    elif zero is not None:  # no pod to reach: the interceptor holds the first request while one starts
        from llmctl.actions.autoscaling import INTERCEPTOR_PROXY
        from llmctl.k8s.portforward import forward_service

        namespace, proxy, port = INTERCEPTOR_PROXY
        forward = forward_service(kube, namespace, proxy, port, wait_s=10.0)
        forward.start()
        base_url = forward.url
    elif reached is not service or (service.get("spec") or {}).get("type") == "LoadBalancer":
        base_url = load_balancer_url(reached) if reached else None
        if not base_url:
            ref = service.get("metadata", {}).get("annotations", {}).get(ANNOTATION)  # the NLB in front, if any
            where = f"{names.namespace}/{names.app}" if not ref else ref if reached else f"{ref} (missing)"
            raise LlmctlError(
                f"Service {where} has no load-balancer address yet",
                hint="wait for the load balancer (`llmctl status`), or pass --url",
            )
    else:  # exposure cluster: the same path `llmctl endpoint` takes
        from llmctl.k8s.portforward import forward_service

        ports = (service.get("spec") or {}).get("ports") or []
        port = int(ports[0].get("port", cfg.server.port)) if ports else cfg.server.port
        forward = forward_service(kube, names.namespace, names.app, port, wait_s=10.0)
        forward.start()
        base_url = forward.url
    if api_key is None:
        from llmctl.actions.deploy import existing_api_key

        api_key = existing_api_key(kube, names)
    metrics_forward = _metrics_forward(kube, names)
    host_name = cfg.deploy.tls.host_name if base_url.startswith("https://") else None
    return ResolvedTarget(
        base_url,
        api_key,
        "cluster",
        model=cfg.model.served_name,
        instance_type=cfg.cluster.instance_types[0],
        replicas=cfg.deploy.replicas or 1,
        region=cfg.aws.region,
        spot=cfg.cluster.spot,
        forward=forward,
        metrics_url=metrics_forward.url if metrics_forward else None,
        metrics_forward=metrics_forward,
        tls_server_name=host_name,
        tls_check_hostname=bool(host_name) or not base_url.startswith("https://"),
        zero=zero,
        host=zero.get("host") if zero else None,
    )


def _zero(kube, names, service: dict, cold_start_s: float | None) -> dict | None:
    """status's scaled-to-zero document when the serving revision's Deployment has no replica and no pod, else None."""
    from llmctl.actions.deploy import pod_selector
    from llmctl.actions.status import scaled_to_zero, serving_deployment

    deployment = serving_deployment(kube, names, service)
    if deployment is None or (deployment.get("spec") or {}).get("replicas", 1) != 0:
        return None
    selector = ",".join(f"{k}={v}" for k, v in pod_selector(names).items())
    if kube.list("v1", "Pod", namespace=names.namespace, label_selector=selector):
        return None
    return scaled_to_zero(kube, names, cold_start_s)


def _metrics_forward(kube, names):
    """A started port-forward to a ready pod's metrics port, or None (the cross-check then says so)."""
    from llmctl.actions.status import METRICS_PORT_NAME
    from llmctl.k8s.portforward import forward_container_port

    try:
        forward = forward_container_port(kube, names.namespace, names.app, METRICS_PORT_NAME)
        forward.start()
    except LlmctlError:
        return None
    return forward
