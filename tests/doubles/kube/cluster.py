"""`KubeDouble`: a Kubernetes API server double on loopback, with controllers and scripted kubelets.

    with KubeDouble(kubeconfig_path=tmp / "kubeconfig") as kube:
        kube.script("vllm-llama", Scenario.success(download_lines=['{"event": "progress", ...}']))
        ... point the real `kubernetes` client (or llmctl) at kube.kubeconfig_path ...
        kube.wait_for(lambda: kube.get("apps/v1", "Deployment", "vllm-llama", "vllm")["status"].get("readyReplicas"))

Tests usually get one from the function-scoped `kube` fixture (tests/fixtures/kube.py).
"""

from __future__ import annotations

import copy
import heapq
import itertools
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Self

import yaml

from .controllers import Controllers
from .kubelet import LogStore, PodSim, Scenario
from .portforward import Forwards
from .resources import Registry, ResourceType
from .selectors import parse_label_selector
from .faults import KubeFault
from .server import KubeHTTPServer, RequestRecord
from .store import ApiError, Store, now_rfc3339

DEFAULT_NODE = "ip-192-168-12-34.ec2.internal"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def write_kubeconfig(path: str | Path, url: str, token: str, context: str = "llmctl-test",
                     cluster: str = "llmctl-test", namespace: str | None = None) -> Path:
    """Write a kubeconfig that reaches `url` with a bearer token (plain http, no TLS)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ctx = {"cluster": cluster, "user": f"{context}-user"}
    if namespace:
        ctx["namespace"] = namespace
    doc = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster, "cluster": {"server": url}}],
        "users": [{"name": f"{context}-user", "user": {"token": token}}],
        "contexts": [{"name": context, "context": ctx}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _crd(group: str, kind: str, plural: str, versions: list[str], scope: str = "Namespaced",
         short: list[str] | None = None) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": scope,
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List",
                           **({"shortNames": short} if short else {})},
                 "versions": [{"name": v, "served": True, "storage": i == 0,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}
                              for i, v in enumerate(versions)]},
    }


PROMETHEUS_OPERATOR_CRDS = [
    _crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors", ["v1"], short=["smon"]),
    _crd("monitoring.coreos.com", "PodMonitor", "podmonitors", ["v1"], short=["pmon"]),
    _crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules", ["v1"], short=["promrule"]),
    _crd("monitoring.coreos.com", "Prometheus", "prometheuses", ["v1"], short=["prom"]),
    _crd("monitoring.coreos.com", "Alertmanager", "alertmanagers", ["v1"], short=["am"]),
]
KEDA_CRDS = [
    _crd("keda.sh", "ScaledObject", "scaledobjects", ["v1alpha1"], short=["so"]),
    _crd("keda.sh", "TriggerAuthentication", "triggerauthentications", ["v1alpha1"], short=["ta"]),
]
# The KEDA HTTP add-on's chart: the interceptor's routing object, wake-on-request.
KEDA_HTTP_CRDS = [_crd("http.keda.sh", "HTTPScaledObject", "httpscaledobjects", ["v1alpha1"], short=["httpso"])]
# The chart's interceptor proxy Service (kedacore/charts http-add-on/templates/interceptor/service-proxy.yaml,
# release `http-add-on` in `keda`): its selector carries the release name, so it differs per install.
INTERCEPTOR_LABELS = {"app.kubernetes.io/component": "interceptor", "app.kubernetes.io/name": "http-add-on",
                      "app.kubernetes.io/part-of": "keda-add-ons-http", "app.kubernetes.io/managed-by": "Helm",
                      "app.kubernetes.io/instance": "http-add-on"}
INTERCEPTOR_PROXY_SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "keda-add-ons-http-interceptor-proxy", "namespace": "keda", "labels": INTERCEPTOR_LABELS},
    "spec": {"selector": INTERCEPTOR_LABELS, "ports": [{"name": "proxy", "port": 8080, "targetPort": "proxy"}]}}
# Karpenter's chart (eksctl's karpenter section installs it).
KARPENTER_CRDS = [_crd("karpenter.sh", "NodePool", "nodepools", ["v1"], scope="Cluster"),
                  _crd("karpenter.sh", "NodeClaim", "nodeclaims", ["v1"], scope="Cluster"),
                  _crd("karpenter.k8s.aws", "EC2NodeClass", "ec2nodeclasses", ["v1"], scope="Cluster")]
# What the AWS Load Balancer Controller's chart installs and `deploy` looks for before it asks for an NLB.
AWS_LOAD_BALANCER_CONTROLLER_CRDS = [
    _crd("elbv2.k8s.aws", "TargetGroupBinding", "targetgroupbindings", ["v1beta1"], short=["tgb"]),
]


class KubeDouble:
    """A running double: HTTP API on 127.0.0.1:<free port>, controllers, scripted pods.

    Scripting and inspection (all thread-safe):
      script(target, scenario)       pods of workload `target` (a Deployment/DaemonSet/StatefulSet name or
                                     the pod's name) or matching a label selector ("app=x" / {"app": "x"})
                                     follow `scenario`; the latest matching script wins; others follow
                                     `default_scenario` (Scenario.success()).
      add_node / remove_node / set_allocatable(name, {"nvidia.com/gpu": "1"}, after=0.2)
      install_crds(PROMETHEUS_OPERATOR_CRDS) / install_keda() / install_aws_load_balancer_controller()
                                     (or apply the CRD objects through the API)
      on_load_balancer(create=fn(service)->hostname|None, delete=fn(service)); lb_delay (seconds)
      expose(target, container_port, ("127.0.0.1", port))  matching pods listen on container_port: the
                                     portforward subresource connects it to that real server
      create(obj) / get(...) / list(...) / events(...) / logs(ns, pod, container)
      requests (RequestRecord list), requests_matching(method=..., path=...), wait_for(predicate, timeout)
      errors: tracebacks from controller steps (the fixture fails a test that leaves any)
    """

    def __init__(self, kubeconfig_path: str | Path | None = None, *, context: str = "llmctl-test",
                 server_version: str = "1.31", gpu_node: bool = True, region: str = "us-east-1",
                 lb_delay: float = 0.05, namespace_delete_delay: float = 0.02, pod_termination_delay: float = 0.02):
        self.lock = threading.RLock()
        self.registry = Registry()
        self.store = Store(self.registry, self.lock)
        self.logs = LogStore(self.store.cond)
        self.controllers = Controllers(self)
        self.store.listeners.append(self.controllers.on_change)
        self.forwards = Forwards(self)
        self.store.listeners.append(self.forwards.on_change)
        self.token = uuid.uuid4().hex
        self.context = context
        self.server_version = server_version
        self.region = region
        self.lb_delay = lb_delay
        self.namespace_delete_delay = namespace_delete_delay
        self.pod_termination_delay = pod_termination_delay  # a deleted pod stays Terminating this long
        self.evictions_refused = 0  # evictions a PodDisruptionBudget refused (429)
        self.lb_create_hook: Callable[[dict], str | dict | None] | None = None
        self.lb_delete_hook: Callable[[dict], None] | None = None
        self.lb_pending: set = set()
        self.lb_deleting: set = set()
        self.default_scenario = Scenario.success()
        self.scripts: list[tuple[Callable[[dict], bool], Scenario]] = []
        self.sims: dict[str, PodSim] = {}
        self.requests: list[RequestRecord] = []
        self.faults: list[KubeFault] = []  # planted failures (faults.py)
        self.on_mutation: Callable[[RequestRecord], None] | None = None
        self.errors: list[str] = []
        self._tasks: list = []
        self._task_cond = threading.Condition()
        self._seq = itertools.count()
        self._stopping = False
        self._kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path else None
        self._http: KubeHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        with self.lock:
            for ns in DEFAULT_NAMESPACES:
                self.store.create(self.rt("v1", "Namespace"), None, {"metadata": {"name": ns}},
                                  manager="kube-apiserver")
            if gpu_node:
                self.add_node(DEFAULT_NODE)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> KubeDouble:
        self._http = KubeHTTPServer(self)
        worker = threading.Thread(target=self._work, name="kube-double-worker", daemon=True)
        serve = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                 name="kube-double-http", daemon=True)
        self._threads = [worker, serve]
        for t in self._threads:
            t.start()
        if self._kubeconfig_path:
            write_kubeconfig(self._kubeconfig_path, self.url, self.token, self.context)
        return self

    def stop(self) -> None:
        with self._task_cond:
            self._stopping = True
            self._task_cond.notify_all()
        if self._http is not None:
            self._http.stopping.set()
            with self.lock:
                self.store.cond.notify_all()
            self._http.shutdown()
            self._http.close_connections()
            self._http.server_close()  # joins the handler threads
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def kubeconfig_path(self) -> Path:
        if self._kubeconfig_path is None:
            raise RuntimeError("KubeDouble was started without a kubeconfig_path")
        return self._kubeconfig_path

    def write_kubeconfig(self, path: str | Path, context: str | None = None) -> Path:
        return write_kubeconfig(path, self.url, self.token, context or self.context)

    def api_client(self):
        """A real `kubernetes.client.ApiClient` configured from this double's kubeconfig."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig_path), context=self.context)

    def version_info(self) -> dict:
        major, minor = self.server_version.split(".")[:2]
        return {"major": major, "minor": minor, "gitVersion": f"v{major}.{minor}.0-eks-double",
                "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64"}

    # -- the worker: controller tasks and scenario steps -----------------------------------------

    def later(self, delay: float, fn: Callable[[], None], locked: bool = True) -> None:
        with self._task_cond:
            heapq.heappush(self._tasks, (time.monotonic() + delay, next(self._seq), fn, locked))
            self._task_cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._task_cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    if self._tasks and self._tasks[0][0] <= now:
                        _, _, fn, locked = heapq.heappop(self._tasks)
                        break
                    wait = min(self._tasks[0][0] - now, 0.5) if self._tasks else 0.5
                    self._task_cond.wait(timeout=wait)
            try:
                if locked:
                    with self.lock:
                        fn()
                else:
                    fn()
            except Exception:  # noqa: BLE001 - keep serving; the fixture reports these after the test
                self.errors.append(traceback.format_exc())

    def planted_fault(self, method: str, path: str, query: dict):
        """The ApiError of the first planted fault this request triggers, or None (faults.py)."""
        with self.lock:
            return next((err for fault in self.faults if (err := fault.take(method, path, query)) is not None), None)

    def record_request(self, record: RequestRecord) -> None:
        with self.lock:
            self.requests.append(record)

    # -- helpers used by controllers and kubelets --------------------------------------------------

    def rt(self, api_version: str, kind: str) -> ResourceType:
        rt = self.registry.by_kind(api_version, kind)
        if rt is None:
            raise KeyError(f"the double does not serve {api_version} {kind}")
        return rt

    def record_event(self, obj: dict, type_: str, reason: str, message: str, component: str,
                     field_path: str | None = None, host: str | None = None) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        ev_rt = self.rt("v1", "Event")
        if self.store.get(self.rt("v1", "Namespace"), None, ns) is None:
            return
        for ev in self.store.list(ev_rt, ns):
            inv = ev["involvedObject"]
            if (inv.get("uid"), inv.get("fieldPath"), ev["reason"], ev["message"], ev["type"]) == \
                    (meta["uid"], field_path, reason, message, type_):
                bumped = copy.deepcopy(ev)
                bumped["count"] = ev.get("count", 1) + 1
                bumped["lastTimestamp"] = now_rfc3339()
                self.store.put(ev_rt, bumped)
                return
        ts = now_rfc3339()
        involved = {"kind": obj["kind"], "namespace": meta.get("namespace"), "name": meta["name"],
                    "uid": meta["uid"], "apiVersion": obj["apiVersion"],
                    "resourceVersion": meta.get("resourceVersion")}
        if field_path:
            involved["fieldPath"] = field_path
        source = {"component": component, **({"host": host} if host else {})}
        try:
            self.store.create(ev_rt, ns, {
                "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": ns},
                "involvedObject": {k: v for k, v in involved.items() if v is not None},
                "reason": reason, "message": message, "type": type_, "source": source,
                "firstTimestamp": ts, "lastTimestamp": ts, "count": 1, "eventTime": None,
                "reportingComponent": component, "reportingInstance": host or ""}, manager=component)
        except ApiError:  # namespace terminating: the real API drops the event too
            pass

    def pick_node(self, pod: dict) -> tuple[str | None, str]:
        return self.controllers.pick_node(pod)

    def scenario_for(self, pod: dict) -> Scenario:
        for matches, scenario in reversed(self.scripts):
            if matches(pod):
                return scenario
        return self.default_scenario

    def _workload_name(self, pod: dict) -> str | None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "ReplicaSet":
                rs = self.store.get(self.rt("apps/v1", "ReplicaSet"), pod["metadata"]["namespace"], ref["name"])
                for owner in (rs or {}).get("metadata", {}).get("ownerReferences") or []:
                    return owner["name"]
            return ref.get("name")
        return None

    def start_pod(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self.sims:
            return
        sim = PodSim(self, pod, self.scenario_for(pod))
        self.sims[uid] = sim
        self._advance(sim)

    def _advance(self, sim: PodSim) -> None:
        if sim.next_step < len(sim.scenario.steps):
            self.later(sim.scenario.steps[sim.next_step].delay, lambda: self._run_step(sim))

    def _run_step(self, sim: PodSim) -> None:
        pod = sim.pod()
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            self.sims.pop(sim.uid, None)
            return
        if sim.scenario.steps[sim.next_step].run(sim) is False:
            return  # waiting for a node (retry_unscheduled resumes it)
        sim.next_step += 1
        self._advance(sim)

    def retry_unscheduled(self) -> None:
        for sim in list(self.sims.values()):
            if sim.waiting_for_nodes:
                sim.waiting_for_nodes = False
                self.later(0.005, lambda s=sim: self._run_step(s))

    # -- scripting ------------------------------------------------------------------------------

    def _pod_matcher(self, target: str | dict) -> Callable[[dict], bool]:
        """Pods of the workload named `target`, the pod named `target`, or pods matching a label selector."""
        if isinstance(target, dict) or "=" in target or " in " in target:
            selector = target if isinstance(target, str) else ",".join(f"{k}={v}" for k, v in target.items())
            label_ok = parse_label_selector(selector)

            def matches(pod: dict) -> bool:
                return label_ok(pod["metadata"].get("labels") or {})
        else:
            def matches(pod: dict) -> bool:
                return target in (self._workload_name(pod), pod["metadata"]["name"])
        return matches

    def script(self, target: str | dict, scenario: Scenario) -> None:
        """Pods created from now on that match `target` follow `scenario` (latest script wins)."""
        matches = self._pod_matcher(target)
        with self.lock:
            self.scripts.append((matches, scenario))

    def expose(self, target: str | dict, container_port: int, address: tuple[str, int]) -> None:
        """Pods matching `target` (as for `script`, existing ones too) listen on `container_port` while their
        container runs: a port-forward to it connects to `address`, a real server on this machine (the latest
        matching exposure wins)."""
        self.forwards.expose(self._pod_matcher(target), container_port, address)

    def add_node(self, name: str, *, gpus: int = 1, labels: dict | None = None, taints: list[dict] | None = None,
                 allocatable: dict | None = None, instance_type: str = "g4dn.xlarge",
                 provider_id: str | None = None) -> dict:
        resources = {"cpu": "4", "memory": "15896Mi", "pods": "29", "ephemeral-storage": "95551679124"}
        if gpus:
            resources["nvidia.com/gpu"] = str(gpus)
        resources.update(allocatable or {})
        node = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": instance_type, "topology.kubernetes.io/region": self.region,
                "topology.kubernetes.io/zone": f"{self.region}a", "eks.amazonaws.com/nodegroup": "gpu-nodes",
                **(labels or {})}},
            "spec": {"taints": taints or [], **({"providerID": provider_id} if provider_id else {})},
            "status": {"capacity": dict(resources), "allocatable": dict(resources),
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status",
                                       "lastHeartbeatTime": now_rfc3339(), "lastTransitionTime": now_rfc3339()}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.12.34"},
                                     {"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": f"v{self.server_version}.0-eks", "osImage": "Amazon Linux 2",
                                    "containerRuntimeVersion": "containerd://1.7.22", "architecture": "amd64",
                                    "operatingSystem": "linux", "kernelVersion": "5.10.0"}},
        }
        with self.lock:
            rt = self.rt("v1", "Node")
            created = self.store.create(rt, None, node, manager="kubelet")
            return self.store.put_status(rt, created, node["status"])

    def remove_node(self, name: str) -> None:
        with self.lock:
            rt = self.rt("v1", "Node")
            node = self.store.get(rt, None, name)
            if node is not None:
                self.store.remove(rt, node)

    def evict(self, namespace: str, name: str) -> bool:
        """The Eviction API (`pods/<name>/eviction`): the pod is deleted gracefully (its
        terminationGracePeriodSeconds) unless a PodDisruptionBudget that selects it allows no disruption now
        (the API's 429 "Cannot evict pod as it would violate the pod's disruption budget": False)."""
        from .controllers import is_ready
        from .selectors import match_label_selector_object

        with self.lock:
            pod = self.store.get(self.rt("v1", "Pod"), namespace, name)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                return True
            labels = pod["metadata"].get("labels") or {}
            live = [p for p in self.store.list(self.rt("v1", "Pod"), namespace) if not p["metadata"].get("deletionTimestamp")]
            for pdb in self.store.list(self.rt("policy/v1", "PodDisruptionBudget"), namespace):
                selector = pdb["spec"].get("selector")
                if not match_label_selector_object(selector, labels):
                    continue
                pods = [p for p in live if match_label_selector_object(selector, p["metadata"].get("labels") or {})]
                healthy = sum(is_ready(p) for p in pods)
                spec = pdb["spec"]
                expected = max(len(pods), self._scale_of(pod))  # the disruption controller counts the owner's scale
                floor = int(spec["minAvailable"]) if "minAvailable" in spec else expected - int(spec.get("maxUnavailable", 1))
                if is_ready(pod) and healthy - floor <= 0:
                    self.evictions_refused += 1
                    return False
            self.store.delete(self.rt("v1", "Pod"), namespace, name)
            return True

    def _scale_of(self, pod: dict) -> int:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "ReplicaSet":
                rs = self.store.get(self.rt("apps/v1", "ReplicaSet"), pod["metadata"]["namespace"], ref["name"])
                return int(((rs or {}).get("spec") or {}).get("replicas") or 0)
        return 0

    def set_allocatable(self, name: str, resources: dict, after: float = 0.0) -> None:
        """Change a node's allocatable and capacity after `after` seconds (e.g. the device plugin registering a
        GPU: {"nvidia.com/gpu": "1"}); a value of None removes that resource."""
        def change() -> None:
            rt = self.rt("v1", "Node")
            node = self.store.get(rt, None, name)
            if node is None:
                return
            status = copy.deepcopy(node["status"])
            for key in ("allocatable", "capacity"):
                status[key] = {**status.get(key, {}), **{k: str(v) for k, v in resources.items()}}
                status[key] = {k: v for k, v in status[key].items() if v not in ("None",)}
            self.store.put_status(rt, node, status)

        if after > 0:
            self.later(after, change)
        else:
            with self.lock:
                change()

    def install_crds(self, crds: list[dict]) -> None:
        with self.lock:
            rt = self.rt("apiextensions.k8s.io/v1", "CustomResourceDefinition")
            for crd in crds:
                if self.store.get(rt, None, crd["metadata"]["name"]) is None:
                    self.store.create(rt, None, copy.deepcopy(crd), manager="helm")

    def install_prometheus_operator(self) -> None:
        self.install_crds(PROMETHEUS_OPERATOR_CRDS)

    def install_keda(self, http_add_on: bool = False) -> None:
        """KEDA's CRDs; with `http_add_on`, the add-on's too and its interceptor proxy Service in `keda` (the
        interceptor's pods are the test's to create, with INTERCEPTOR_LABELS and a container port `proxy`)."""
        self.install_crds(KEDA_CRDS + (KEDA_HTTP_CRDS if http_add_on else []))
        for doc in ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "keda"}},
                    INTERCEPTOR_PROXY_SERVICE) if http_add_on else ():
            meta = doc["metadata"]
            if self.get(doc["apiVersion"], doc["kind"], meta["name"], meta.get("namespace")) is None:
                self.create(copy.deepcopy(doc), manager="helm")

    def install_karpenter(self) -> None:
        self.install_crds(KARPENTER_CRDS)

    def install_aws_load_balancer_controller(self) -> None:
        self.install_crds(AWS_LOAD_BALANCER_CONTROLLER_CRDS)

    def on_load_balancer(self, create: Callable[[dict], str | dict | None] | None = None,
                         delete: Callable[[dict], None] | None = None) -> None:
        """Hooks the cloud controller calls (outside the double's lock) when it provisions or removes a Service's
        load balancer. `create(service)` may return the hostname to publish, or a whole ingress entry such as
        {"ip": "127.0.0.1"}; None publishes an ELB-style hostname. `delete(service)` runs before the Service's
        load-balancer finalizer is released (so the Service disappears only after it returns)."""
        self.lb_create_hook, self.lb_delete_hook = create, delete

    # -- direct access for tests ----------------------------------------------------------------

    def create(self, obj: dict, manager: str = "test") -> dict:
        with self.lock:
            rt = self.rt(obj["apiVersion"], obj["kind"])
            return copy.deepcopy(self.store.create(rt, obj.get("metadata", {}).get("namespace"), obj, manager))

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        with self.lock:
            obj = self.store.get(self.rt(api_version, kind), namespace, name)
            return copy.deepcopy(obj)

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict]:
        label_ok = parse_label_selector(label_selector)
        with self.lock:
            return copy.deepcopy(self.store.list(self.rt(api_version, kind), namespace,
                                                 lambda o: label_ok(o["metadata"].get("labels") or {})))

    def events(self, namespace: str | None = None, involved_name: str | None = None) -> list[dict]:
        return [e for e in self.list("v1", "Event", namespace)
                if involved_name is None or e["involvedObject"].get("name") == involved_name]

    def pod_logs(self, namespace: str, pod: str, container: str) -> list[list[str]]:
        """Every run of a container, oldest first, as lists of lines."""
        with self.lock:
            return [[line for _, _, line in run["lines"]] for run in self.logs.instances.get((namespace, pod,
                                                                                              container), [])]

    def requests_matching(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method) and
                    (path is None or path in r.path)]

    def wait_for(self, predicate: Callable[[], object], timeout: float = 5.0) -> object:
        """Poll `predicate` (called without the lock held) until truthy; return its value or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(0.01)
