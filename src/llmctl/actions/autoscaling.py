"""Scale to zero, schedules and the spot drain budget, as render contexts for `deploy` (pure).

* One KEDA ScaledObject drives the Deployment: the queue trigger (scale out), the server's own activity
  from Prometheus (`deploy.autoscaling.idle_minutes`: inactive once no request ran for that long), one
  cron trigger per schedule window (started early by the measured cold start), and the HTTP add-on's
  external-push trigger, which wakes the endpoint when the interceptor holds a request.
* The HTTPScaledObject configures the HTTP add-on's interceptor (hold time from the measured cold start);
  its own ScaledObject is skipped (the add-on's documented annotation), so one ScaledObject owns the
  Deployment and KEDA does not refuse the second.
* The waking responder (nginx, `waking.yaml.j2`) is the HTTPScaledObject's `coldStartTimeoutFailoverRef`:
  a request still held when the hold time passes gets 503, Retry-After and an OpenAI-shaped error from it
  instead of the add-on's bare 502.
* On spot capacity the pod's whole termination (preStop, SIGTERM drain, exit) fits inside the two-minute
  interruption notice: the drain is shortened when it would not.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from llmctl.actions.cluster.karpenter import NOTICE_DELIVERY_S, SPOT_NOTICE_S, uses_spot

# Before anything was measured: node launch, image pull, model download and engine load of a 7B model.
DEFAULT_COLD_START_S = 300
IDLE_WITH_SCHEDULE_MIN = 5  # a schedule without idle_minutes: zero this long after a window's last request
HOLD_MARGIN = 1.5  # the interceptor holds a request this many cold starts before giving up
HTTP_SCALER = "keda-add-ons-http-external-scaler.keda:9090"
# Where requests for a scaled-to-zero endpoint go: the add-on's interceptor proxy (namespace, Service, port),
# with a Host header the HTTPScaledObject lists.
INTERCEPTOR_PROXY = ("keda", "keda-add-ons-http-interceptor-proxy", 8080)
# The waking responder: a small pinned public image (ECR Public's mirror of Docker's official nginx, so nodes
# pull it without Docker Hub's rate limit), its port and its user (the image's `nginx`, uid 101).
WAKING_IMAGE = "public.ecr.aws/docker/library/nginx:1.27.5-alpine"
WAKING_PORT = 8080
WAKING_UID = 101
SKIP_SCALED_OBJECT = "httpscaledobject.keda.sh/skip-scaledobject-creation"
# Never drives the replica count: an activity signal only (inactive at 0), see `idle_trigger`.
ACTIVITY_ONLY_THRESHOLD = "1000000"


@dataclass(frozen=True)
class DrainBudget:
    drain_timeout_s: int
    termination_grace_s: int
    shortened_from_s: int | None = None  # the configured drain, when the spot notice shortened it

    @property
    def note(self) -> str | None:
        if self.shortened_from_s is None:
            return None
        return (f"server.drain_timeout_s {self.shortened_from_s}s shortened to {self.drain_timeout_s}s: on spot the "
                f"whole termination ({self.termination_grace_s}s) must fit the {SPOT_NOTICE_S}s interruption notice")


def drain_budget(cfg, prestop_s: int, exit_margin_s: int) -> DrainBudget:
    """The SIGTERM drain and terminationGracePeriodSeconds; on spot both fit inside the notice, less the time
    the notice takes to reach Karpenter and the pod (EventBridge, SQS, cordon, eviction)."""
    drain = cfg.server.drain_timeout_s
    if uses_spot(cfg):
        fits = SPOT_NOTICE_S - NOTICE_DELIVERY_S - prestop_s - exit_margin_s
        if drain > fits:
            return DrainBudget(fits, prestop_s + fits + exit_margin_s, shortened_from_s=drain)
    return DrainBudget(drain, prestop_s + drain + exit_margin_s)


def idle_minutes(cfg) -> int:
    auto = cfg.deploy.autoscaling
    return auto.idle_minutes or IDLE_WITH_SCHEDULE_MIN


def hold_s(cold_start_s: float | None) -> int:
    return math.ceil((cold_start_s or DEFAULT_COLD_START_S) * HOLD_MARGIN)


def retry_after_s(cold_start_s: float | None) -> int:
    """The waking answer's Retry-After: it comes once a request was held for the whole hold (HOLD_MARGIN cold
    starts), so the start overran; the retry is held again, after that margin once more."""
    return max(1, math.ceil((cold_start_s or DEFAULT_COLD_START_S) * (HOLD_MARGIN - 1)))


def waking_name(names) -> str:
    return f"{names.app}-waking"


def waking_body(cfg, retry_s: int) -> str:
    """The OpenAI-shaped error (the server's own shape, server/errors.py) the waking responder answers."""
    message = (f"the endpoint is waking from zero (it scales to zero after {idle_minutes(cfg)} idle minutes); "
               f"retry in {retry_s}s")
    return json.dumps({"error": {"message": message, "type": "endpoint_waking", "param": None, "code": 503}})


def waking_nginx_conf(body: str, retry_s: int, port: int = WAKING_PORT) -> str:
    from llmctl.render import render_text

    if "'" in body or "$" in body or "\\" in body:
        raise ValueError(f"the waking body cannot be written into nginx's quoted string: {body!r}")
    return render_text("deploy/waking-nginx.conf.j2", body=body, retry_after_s=retry_s, port=port)


def waking_context(cfg, names, labels: dict, cold_start_s: float | None) -> dict:
    """What waking.yaml.j2 needs: the responder's own labels (never the endpoint Service's selector)."""
    retry = retry_after_s(cold_start_s)
    conf = waking_nginx_conf(waking_body(cfg, retry), retry)
    selector = {**names.k8s_labels, "app.kubernetes.io/name": "vllm-waking"}
    return {"name": waking_name(names), "labels": {**labels, **selector}, "selector": selector,
            "nginx_conf": conf, "conf_hash": hashlib.sha256(conf.encode()).hexdigest()[:16],
            "image": WAKING_IMAGE, "port": WAKING_PORT, "uid": WAKING_UID,
            "system_node_affinity": cfg.cluster.capacity == "karpenter",
            "interceptor_namespace": INTERCEPTOR_PROXY[0]}


def idle_trigger(namespace: str, app: str, prometheus_url: str, minutes: int) -> dict:
    """Active while the server ran, queued or finished a request in the last `minutes` (its own metrics):
    KEDA scales to zero once every trigger is inactive for the cooldown."""
    pods = f'namespace="{namespace}", pod=~"{app}-.*"'
    query = (f"sum(vllm:num_requests_running{{{pods}}}) + sum(vllm:num_requests_waiting{{{pods}}}) + "
             f"sum(increase(vllm:request_success_total{{{pods}}}[{minutes}m]))")
    return {"type": "prometheus", "name": "activity", "metricType": "Value",
            "metadata": {"serverAddress": prometheus_url, "query": query, "threshold": ACTIVITY_ONLY_THRESHOLD,
                         "activationThreshold": "0", "ignoreNullValues": "true"}}


def cron_triggers(cfg, lead_s: float) -> tuple[list[dict], list[str]]:
    """One cron trigger per window, its start moved earlier by the cold start; notes for windows whose
    start cannot be moved (a start that is not one minute and hour, or that crosses a month day)."""
    triggers, notes = [], []
    lead_min = math.ceil(lead_s / 60)
    for index, window in enumerate(cfg.deploy.autoscaling.schedule):
        start = shift_earlier(window.start, lead_min)
        if start is None:
            start = window.start
            notes.append(f"schedule window {index}: start {window.start!r} is not moved {lead_min} min earlier "
                         "(write its minute and hour as single numbers to get the lead time)")
        triggers.append({"type": "cron", "name": f"window-{index}", "metadata": {
            "timezone": window.timezone, "start": start, "end": window.end, "desiredReplicas": str(window.replicas)}})
    return triggers, notes


def shift_earlier(expression: str, minutes: int) -> str | None:
    """`expression` (a start) `minutes` earlier, or None when that cannot be written as one cron line."""
    minute, hour, dom, month, dow = expression.split()
    if not (minute.isdigit() and hour.isdigit()):
        return None
    total = int(hour) * 60 + int(minute) - minutes
    if total >= 0:
        return f"{total % 60} {total // 60} {dom} {month} {dow}"
    if dom != "*" or total < -24 * 60:
        return None
    total += 24 * 60
    days = _day_set(dow)
    if days is None:
        return None
    before = sorted({(d - 1) % 7 for d in days})
    return f"{total % 60} {total // 60} {dom} {month} {','.join(map(str, before)) if dow != '*' else '*'}"


def _day_set(dow: str) -> set[int] | None:
    names = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
    if dow == "*":
        return set(range(7))
    days: set[int] = set()
    for item in dow.lower().split(","):
        if "/" in item:
            return None
        low, _, high = item.partition("-")
        try:
            a = names.index(low) if low in names else int(low)
            b = (names.index(high) if high in names else int(high)) if high else a
        except ValueError:
            return None
        days |= {d % 7 for d in range(a, b + 1)}
    return days


def scaled_object_context(cfg, names, prometheus_url: str, cold_start_s: float | None) -> dict:
    """What scaledobject.yaml.j2 needs beyond the queue trigger: the minimum, the cooldown and the extra triggers."""
    auto = cfg.deploy.autoscaling
    if not auto.scales_to_zero:
        return {"min_replicas": max(1, cfg.deploy.replicas), "cooldown_s": 300, "extra_triggers": [], "notes": []}
    minutes = idle_minutes(cfg)
    crons, notes = cron_triggers(cfg, cold_start_s or DEFAULT_COLD_START_S)
    wake = {"type": "external-push", "name": "wake-on-request",
            "metadata": {"scalerAddress": HTTP_SCALER, "httpScaledObject": names.app}}
    return {"min_replicas": 0, "cooldown_s": minutes * 60, "notes": notes,
            "extra_triggers": [idle_trigger(names.namespace, names.app, prometheus_url, minutes), *crons, wake]}


def wake_name(names) -> str:
    """`cluster` exposure at zero: the ExternalName Service in the endpoint's namespace that pods call to reach
    the endpoint through the interceptor (its name is one of the HTTPScaledObject's hosts)."""
    return f"{names.app}-wake"


def wake_context(names) -> dict:
    namespace, service, port = INTERCEPTOR_PROXY
    return {"wake_name": wake_name(names), "external_name": f"{service}.{namespace}.svc.cluster.local",
            "wake_port": port}


def _service_hosts(service: str, namespace: str) -> list[str]:
    """The names a pod may call a Service by, as the Host header it sends."""
    return [f"{service}.{namespace}.svc.cluster.local", f"{service}.{namespace}.svc", f"{service}.{namespace}", service]


def hosts(cfg, names, nlb_hostnames=()) -> list[str]:
    """What the interceptor routes to this endpoint (never empty: no hosts is a catch-all): the endpoint
    Service's names, the wake Service's (`cluster`), the certificate's name, `deploy.hostnames` and the NLB's
    DNS names in front of the interceptor (`actions/front.py`)."""
    d = cfg.deploy
    wake = _service_hosts(wake_name(names), names.namespace) if d.exposure == "cluster" else []
    extra = [d.tls.host_name] if d.tls.host_name else []
    return list(dict.fromkeys([*_service_hosts(names.app, names.namespace), *wake, *extra, *d.hostnames,
                               *nlb_hostnames]))


def http_scaled_object_context(cfg, names, cold_start_s: float | None, nlb_hostnames=()) -> dict:
    return {"service_port": cfg.server.port, "max_replicas": cfg.deploy.autoscaling.max_replicas,
            "scaledown_s": idle_minutes(cfg) * 60, "hold_s": hold_s(cold_start_s),
            "concurrency": cfg.server.max_concurrent_requests, "skip_annotation": SKIP_SCALED_OBJECT,
            "waking_service": waking_name(names), "waking_port": WAKING_PORT,
            "hosts": hosts(cfg, names, nlb_hostnames)}


def require_autoscaler_kinds(kube, documents: list[dict]) -> None:
    """KEDA (and, to scale to zero, its HTTP add-on with its interceptor proxy Service) must be installed before
    their objects are applied."""
    from llmctl.errors import LlmctlError

    kinds = {d["kind"] for d in documents}
    if "ScaledObject" in kinds and not kube.has_kind("keda.sh/v1alpha1", "ScaledObject"):
        raise LlmctlError(
            "deploy.autoscaling uses KEDA, but the cluster has no ScaledObject kind (KEDA is not installed)",
            hint="install KEDA (`helm install keda kedacore/keda -n keda --create-namespace`) or set "
                 "deploy.autoscaling.engine: hpa")
    if "HTTPScaledObject" in kinds and not kube.has_kind("http.keda.sh/v1alpha1", "HTTPScaledObject"):
        raise LlmctlError(
            "deploy.autoscaling scales to zero, but the cluster has no HTTPScaledObject kind (the KEDA HTTP add-on, "
            "which holds requests while the endpoint wakes, is not installed)",
            hint="install it (`helm install http-add-on kedacore/keda-add-ons-http -n keda`), or set "
                 "deploy.autoscaling.idle_minutes: 0 and remove deploy.autoscaling.schedule")
    namespace, proxy, _ = INTERCEPTOR_PROXY
    if "HTTPScaledObject" in kinds and kube.get("v1", "Service", proxy, namespace) is None:
        # the wake Service and bench reach the endpoint at zero through it; another name or namespace is
        # another install of the chart than llmctl reaches
        raise LlmctlError(
            f"deploy.autoscaling scales to zero, but the KEDA HTTP add-on's interceptor proxy Service "
            f"{namespace}/{proxy} is not there (the add-on is not installed as `keda-add-ons-http` in `{namespace}`)",
            hint=f"install it (`helm install http-add-on kedacore/keda-add-ons-http -n {namespace}`), or set "
                 "deploy.autoscaling.idle_minutes: 0 and remove deploy.autoscaling.schedule")
