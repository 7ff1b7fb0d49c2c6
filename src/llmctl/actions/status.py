"""`llmctl status` and `llmctl logs`: what the endpoint looks like now (read-only, but for a kept previous
revision whose `deploy.keep_previous_minutes` window ended: status removes it, llmctl not running meanwhile)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from llmctl.actions.deploy import LABEL_CONFIG_HASH, pod_selector, prune_selector, revision_name
from llmctl.actions.exposure import describe_service, load_balancer_url
from llmctl.actions.front import client_service
from llmctl.actions.rollout.pods import MAIN_CONTAINER, is_ready, pod_phase
from llmctl.config import LlmctlConfig, Names
from llmctl.errors import LlmctlError

RECENT_EVENTS = 10
METRICS_PORT_NAME = "metrics"  # the server's /metrics listener: a container port no Service carries
# /metrics series summarised by `status` (llmctl server names, then vLLM's own)
METRIC_SUMMARY = {
    "vllm_model_loaded": "model_loaded",
    "vllm_active_requests": "active_requests",
    "vllm_tokens_generated_total": "tokens_generated",
    "vllm_prompt_tokens_total": "prompt_tokens",
    "vllm:num_requests_running": "engine_running",
    "vllm:num_requests_waiting": "engine_waiting",
    "vllm:kv_cache_usage_perc": "kv_cache_usage",
}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict:
    """A summary of Prometheus text: requests by status, and the series in METRIC_SUMMARY (summed)."""
    summary: dict = {"requests": {}}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or line.startswith("#"):
            continue
        name, labels, value = match.group(1), dict(_LABEL.findall(match.group(2) or "")), match.group(3)
        try:
            number = float(value)
        except ValueError:
            continue
        if name == "vllm_requests_total":
            status = labels.get("status", "unknown")
            summary["requests"][status] = summary["requests"].get(status, 0) + number
        elif name in METRIC_SUMMARY:
            key = METRIC_SUMMARY[name]
            summary[key] = summary.get(key, 0) + number
    return summary


def fetch_metrics(base_url: str, timeout_s: float = 5.0) -> dict:
    import urllib.request

    from llmctl.actions.rollout.endpoint import tls_context

    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/metrics", timeout=timeout_s,
                                    context=tls_context(base_url)) as response:
            return parse_metrics(response.read().decode(errors="replace"))
    except (OSError, ValueError) as exc:
        return {"error": f"{base_url}/metrics unreachable: {getattr(exc, 'reason', exc)}"}


def _pod_summary(pod: dict) -> dict:
    status = pod.get("status") or {}
    containers = {c["name"]: c for c in status.get("containerStatuses") or []}
    main = containers.get(MAIN_CONTAINER, {})
    return {
        "name": pod["metadata"]["name"],
        "phase": pod_phase(pod),
        "pod_phase": status.get("phase", "Pending"),
        "ready": is_ready(pod),
        "restarts": sum(c.get("restartCount", 0) for c in containers.values()),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "image_id": main.get("imageID") or None,
    }


def _serving_revision(kube, names: Names, pods: list[dict]) -> dict | None:
    """The recorded revision the Ready pods run (by their config hash), and the one recorded as serving."""
    from llmctl.actions import revisions

    records = revisions.history(kube, names)
    running, recorded = revisions.pods_revision(records, pods), revisions.serving(records)
    if running is None and recorded is None:
        return None
    return {"number": (running or recorded).number, "recorded_serving": recorded.number if recorded else None,
            "image": (running or recorded).image, "outcome": (running or recorded).outcome,
            "grown": revisions.grown(records)}  # a surge's temporary node not given back yet (a stopped run)


def collect_status(kube, cfg: LlmctlConfig, names: Names,
                   metrics: Callable[[str], dict] = fetch_metrics, cold_start_s: float | None = None) -> dict:
    kept = _kept_revisions(kube, cfg, names)
    service = kube.get("v1", "Service", names.app, names.namespace)
    deployment = serving_deployment(kube, names, service)
    if deployment is None:
        return {"deployed": False, "deployment": f"{names.namespace}/{names.app}"}
    selector = ",".join(f"{k}={v}" for k, v in pod_selector(names).items())
    pods = [p for p in kube.list("v1", "Pod", namespace=names.namespace, label_selector=selector)
            if not p["metadata"].get("deletionTimestamp")]
    pod_names = {p["metadata"]["name"] for p in pods}
    events = [e for e in kube.events(names.namespace) if e.get("type") == "Warning"
              and ((e.get("involvedObject") or {}).get("name") in pod_names | {names.app})]
    spec, state = deployment.get("spec") or {}, deployment.get("status") or {}
    container = next((c for c in spec["template"]["spec"]["containers"] if c["name"] == MAIN_CONTAINER), {})
    env_name = next((s["configMapRef"]["name"] for s in container.get("envFrom") or [] if "configMapRef" in s), None)
    env = ((kube.get("v1", "ConfigMap", env_name, names.namespace) or {}).get("data") or {}) if env_name else {}
    reached = client_service(kube, names, service)  # an NLB that scales to zero: its Service in front of the interceptor
    endpoint = load_balancer_url(reached) if reached else None
    data = {
        "deployed": True,
        "deployment": f"{names.namespace}/{names.app}",
        "image": container.get("image"),
        "model": {"source": f"s3://{env.get('S3_BUCKET')}/{env.get('S3_PREFIX')}" if env else None,
                  "served_name": env.get("SERVED_MODEL_NAME"), "max_model_len": env.get("MAX_MODEL_LEN")},
        "replicas": spec.get("replicas", 0),
        "ready_replicas": state.get("readyReplicas", 0),
        "pods": [_pod_summary(p) for p in sorted(pods, key=lambda p: p["metadata"]["name"])],
        "endpoint": endpoint,
        "exposure": _exposure(reached, reached is not service) if reached else None,
        "events": [{"reason": e.get("reason"), "object": (e.get("involvedObject") or {}).get("name"),
                    "message": e.get("message"), "count": e.get("count", 1)} for e in events[-RECENT_EVENTS:]],
        "metrics": None,
        "revision": _serving_revision(kube, names, pods),
        "scaled_to_zero": None,
        "kept_revisions": kept,
    }
    if data["replicas"] == 0 and not pods:
        data["scaled_to_zero"] = scaled_to_zero(kube, names, cold_start_s)
    if service and any(p["ready"] for p in data["pods"]):
        data["metrics"] = _metrics_through_port_forward(kube, names, metrics)
    return data


def _exposure(service: dict, fronted: bool) -> dict:
    about = describe_service(service)
    if fronted:
        meta = service["metadata"]
        about["service"] = f"{meta['namespace']}/{meta['name']}"
        about["reachable_from"] += ", through the KEDA HTTP add-on's interceptor (it holds requests while the endpoint wakes)"
    return about


def serving_deployment(kube, names: Names, service: dict | None) -> dict | None:
    """The Deployment of the revision the Service selects (one per revision), else the endpoint's only one."""
    wanted = ((service or {}).get("spec") or {}).get("selector", {}).get(LABEL_CONFIG_HASH)
    deployments = kube.list("apps/v1", "Deployment", names.namespace, label_selector=prune_selector(names)) \
        if kube.get("v1", "Namespace", names.namespace) else []
    by_name = {d["metadata"]["name"]: d for d in deployments}
    if wanted and revision_name(names, wanted) in by_name:
        return by_name[revision_name(names, wanted)]
    return by_name.get(names.app) or (deployments[0] if len(deployments) == 1 else None)


def _kept_revisions(kube, cfg: LlmctlConfig, names: Names) -> list[dict]:
    """Previous revisions kept scaled up (`deploy.keep_previous_minutes`): until when, their pods and GPUs,
    and what they cost by the hour; expired ones are removed first."""
    from llmctl import pricing
    from llmctl.actions import revisions
    from llmctl.actions.rollout import traffic

    records = revisions.history(kube, names)
    traffic.expire(kube, names, records)
    out = []
    for record in traffic.kept(records):
        live = traffic.live_deployment(kube, names, record)
        if live is None:
            continue
        pods = (live.get("status") or {}).get("replicas", 0)
        gpus = pods * cfg.deploy.gpus
        try:
            spec = pricing.instance(cfg.cluster.instance_types[0])
            per_gpu = pricing.hourly(spec.instance_type, cfg.aws.region) / max(1, spec.gpus)
        except (KeyError, IndexError):
            per_gpu = 0.0
        out.append({"number": record.number, "until": record.kept_until, "deployment": live["metadata"]["name"],
                    "pods": pods, "gpus": gpus, "hourly_usd": round(gpus * per_gpu, 4)})
    return out


def scaled_to_zero(kube, names: Names, cold_start_s: float | None) -> dict | None:
    """Zero replicas under KEDA: since when (the ScaledObject's last active time), and whether a request
    wakes it (an HTTPScaledObject: the interceptor holds it while a replica starts, about a cold start;
    `host` is the first Host it routes; `wake_url` what pods call to wake it, with exposure cluster). None unless a ScaledObject with a minimum of zero owns it."""
    from llmctl.actions.autoscaling import DEFAULT_COLD_START_S, wake_name

    if not kube.has_kind("keda.sh/v1alpha1", "ScaledObject"):
        return None
    scaled = kube.get("keda.sh/v1alpha1", "ScaledObject", names.app, names.namespace)
    if scaled is None or (scaled.get("spec") or {}).get("minReplicaCount", 1) != 0:
        return None
    http = kube.get("http.keda.sh/v1alpha1", "HTTPScaledObject", names.app, names.namespace) \
        if kube.has_kind("http.keda.sh/v1alpha1", "HTTPScaledObject") else None
    zero = {"idle_since": (scaled.get("status") or {}).get("lastActiveTime"), "wakes_on_request": http is not None,
            "wake_s": round(cold_start_s or DEFAULT_COLD_START_S), "wake_measured": cold_start_s is not None}
    if http is not None:
        spec = http.get("spec") or {}
        wait = str((spec.get("timeouts") or {}).get("conditionWait") or "")
        zero["host"] = (spec.get("hosts") or [None])[0]
        zero["hold_s"] = int(wait[:-1]) if wait.endswith("s") and wait[:-1].isdigit() else None  # as rendered: "Ns"
        wake = kube.get("v1", "Service", wake_name(names), names.namespace)
        if wake is not None and (wake.get("spec") or {}).get("type") == "ExternalName":  # exposure cluster
            port = ((wake["spec"].get("ports") or [{}])[0]).get("port")
            zero["wake_url"] = f"http://{wake_name(names)}.{names.namespace}.svc.cluster.local:{port}"
    return zero


def _metrics_through_port_forward(kube, names: Names, metrics: Callable[[str], dict]) -> dict:
    """A ready pod's /metrics, through a short port-forward to its metrics port (whatever the exposure: the
    load balancer does not carry that port, and the NetworkPolicy admits only the monitoring namespace)."""
    from llmctl.k8s.portforward import forward_container_port

    try:
        with forward_container_port(kube, names.namespace, names.app, METRICS_PORT_NAME) as forward:
            return metrics(forward.url)
    except LlmctlError as exc:
        return {"error": f"/metrics through a port-forward: {exc.message}"}


def forward_endpoint(kube, names: Names, local_port: int = 0, wait_s: float = 30.0,
                     on_error: Callable[[LlmctlError], None] | None = None):
    """A (not yet started) port-forward from 127.0.0.1 to a ready pod behind the endpoint's Service, as
    `kubectl port-forward svc/<app>`: how a `cluster` exposure is used from outside the cluster."""
    from llmctl.k8s.portforward import forward_service

    service = kube.get("v1", "Service", names.app, names.namespace)
    if service is None:
        raise LlmctlError(f"Service {names.namespace}/{names.app} does not exist", hint="run `llmctl deploy` first")
    port = int(((service.get("spec") or {}).get("ports") or [{}])[0].get("port", 0))
    return forward_service(kube, names.namespace, names.app, port, local_port, wait_s=wait_s, on_error=on_error)


def pick_pod(kube, names: Names) -> str:
    """The newest pod of the endpoint (the one a rollout is about)."""
    selector = ",".join(f"{k}={v}" for k, v in pod_selector(names).items())
    pods = [p for p in kube.list("v1", "Pod", namespace=names.namespace, label_selector=selector)
            if not p["metadata"].get("deletionTimestamp")]
    if not pods:
        raise LlmctlError(f"no pods of {names.namespace}/{names.app}",
                          hint="run `llmctl deploy` (or `llmctl status` to see why none runs)")
    return max(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))["metadata"]["name"]


def logs(kube, names: Names, *, container: str, follow: bool, previous: bool,
         tail_lines: int | None = None) -> Iterator[str]:
    pod = pick_pod(kube, names)
    return kube.pod_logs(pod, names.namespace, container=container, follow=follow, previous=previous,
                         tail_lines=tail_lines)
