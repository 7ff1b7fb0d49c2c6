"""Port-forward to a pod the way `kubectl port-forward` does, over the kubernetes client's own
implementation (`kubernetes.stream.portforward`: the pod `portforward` subresource as a websocket,
subprotocol `v4.channel.k8s.io`).

`PortForward` listens on 127.0.0.1 and, like kubectl, opens one port-forward stream per accepted
connection and pumps bytes both ways, so concurrent (streaming) HTTP requests do not share a stream.
What the kubelet reports on a stream's error channel (nothing listens on the port, ...) becomes a
one-line `PortForwardError` with a hint, handed to `on_error`; when the pod itself is gone or stops
running, forwarding stops (new connections are refused) and `wait()` raises that error, as kubectl
exits with "lost connection to pod".
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Self

from llmctl.errors import LlmctlError
from llmctl.failures import KUBE_UNREACHABLE_HINT
from llmctl.k8s.client import Kube, KubeApiError
from llmctl.k8s.pump import Pump

Reason = Literal["not-found", "not-running", "refused", "failed"]
_KEEP_ERRORS = 100
_JOIN_S = 5.0
_POD_CHECK_S = 2.0


class PortForwardError(LlmctlError):
    """A port-forward failed; `reason` says why, `detail` is what the API server or kubelet said."""

    def __init__(self, message: str, *, reason: Reason, detail: str = "", hint: str | None = None):
        super().__init__(message, hint=hint)
        self.reason = reason
        self.detail = detail


# --- which pod --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodPort:
    pod: str
    port: int


def _is_ready(pod: dict) -> bool:
    status = pod.get("status") or {}
    return (status.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
            and any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []))


def _ready_since(pod: dict) -> str:
    ready = next(c for c in pod["status"]["conditions"] if c.get("type") == "Ready")
    return ready.get("lastTransitionTime") or ""


def _container_port(pod: dict, name: str) -> int | None:
    for container in pod["spec"].get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name:
                return int(port["containerPort"])
    return None


def pod_for_service(kube: Kube, namespace: str, service: str, port: int, wait_s: float = 0.0) -> PodPort:
    """The pod and container port `kubectl port-forward svc/<service> <port>` would use: a ready pod the
    Service selects (the one ready longest), `port` (a Service port) mapped through its targetPort, a port
    name looked up in the pod's containers. Waits up to `wait_s` for a pod to become ready."""
    spec, pod = _ready_pod(kube, namespace, service, wait_s, port)
    entry = next(p for p in spec.get("ports") or [] if int(p.get("port", 0)) == port)
    return _named_or_number(pod, entry.get("targetPort", port), namespace, service)


def pod_for_container_port(kube: Kube, namespace: str, service: str, name: str, wait_s: float = 0.0) -> PodPort:
    """A ready pod behind the Service, as pod_for_service picks it, and its container port called `name`:
    for a port the Service does not carry (the metrics port, kept off the load balancer)."""
    _, pod = _ready_pod(kube, namespace, service, wait_s)
    return _named_or_number(pod, name, namespace, service)


def _ready_pod(kube: Kube, namespace: str, service: str, wait_s: float, port: int | None = None) -> tuple[dict, dict]:
    """(the Service's spec, its ready pod); `port`, when given, must be one of the Service's ports."""
    svc = kube.get("v1", "Service", service, namespace)
    where = f"Service {namespace}/{service}"
    if svc is None:
        raise PortForwardError(f"{where} does not exist", reason="not-found")
    spec = svc.get("spec") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    if not selector:
        raise PortForwardError(f"{where} has no selector, so no pod to forward to", reason="not-found")
    if port is not None and not any(int(p.get("port", 0)) == port for p in spec.get("ports") or []):
        known = ", ".join(str(p.get("port")) for p in spec.get("ports") or []) or "none"
        raise PortForwardError(f"{where} has no port {port}", reason="not-found", hint=f"its ports: {known}")
    ready = sorted((p for p in kube.list("v1", "Pod", namespace, label_selector=selector) if _is_ready(p)),
                   key=lambda p: (_ready_since(p), p["metadata"]["name"]))
    pod = ready[0] if ready else None
    if pod is None and wait_s > 0:
        for type_, obj in kube.watch("v1", "Pod", namespace, label_selector=selector, timeout_s=wait_s):
            if type_ != "DELETED" and _is_ready(obj):
                pod = obj
                break
    if pod is None:
        raise PortForwardError(f"no ready pod behind {where}", reason="not-running",
                               hint=f"`kubectl -n {namespace} get pods -l {selector}` shows their state")
    return spec, pod


def _named_or_number(pod: dict, target: int | str, namespace: str, service: str) -> PodPort:
    if isinstance(target, str):
        number = _container_port(pod, target)
        if number is None:
            raise PortForwardError(f"pod {namespace}/{pod['metadata']['name']} has no container port named "
                                   f"{target!r} (Service {namespace}/{service} selects it)", reason="not-found")
        target = number
    return PodPort(pod["metadata"]["name"], int(target))


# --- the forwarder ----------------------------------------------------------------------------------


class PortForward:
    """`kubectl port-forward pod/<pod> <local_port>:<remote_port>` in this process.

        with PortForward(kube, "vllm", "vllm-llama-abc12", 8000) as forward:
            httpx.get(f"{forward.url}/health")

    Thread-safe; `stop()` (or leaving the `with`) closes the listener, every connection and its stream.
    `on_error(err)` is called from the failed connection's thread.
    """

    def __init__(self, kube: Kube, namespace: str, pod: str, remote_port: int, local_port: int = 0,
                 address: str = "127.0.0.1", on_error: Callable[[LlmctlError], None] | None = None):
        self.kube = kube
        self.namespace = namespace
        self.pod = pod
        self.remote_port = remote_port
        self.address = address
        self.local_port: int | None = None
        self.errors: list[LlmctlError] = []  # per-connection failures, oldest first (the last 100)
        self.error: LlmctlError | None = None  # why forwarding stopped on its own (the pod is gone)
        self._requested_port = local_port
        self._on_error = on_error or (lambda err: None)
        self._lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._stopping = threading.Event()
        self._done = threading.Event()  # stopping, and the local port is closed
        self._pumps: set[Pump] = set()
        self._threads: set[threading.Thread] = set()
        self._listener: socket.socket | None = None
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._api: _PodPortForwardApi | None = None

    @property
    def where(self) -> str:
        return f"pod {self.namespace}/{self.pod}"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.local_port}"

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> int:
        """Check the pod is running (as kubectl does), listen, and return the local port."""
        from kubernetes.client import ApiClient

        problem = self._pod_problem()
        if problem is not None:
            raise problem
        try:
            listener = socket.create_server((self.address, self._requested_port), backlog=128)
        except OSError as exc:
            raise LlmctlError(f"cannot listen on {self.address}:{self._requested_port}: {exc.strerror}",
                              hint="choose another local port, or 0 for any free one") from None
        # a client of its own: portforward() swaps its ApiClient's call_api while it connects, which
        # would misroute other threads' API calls on a shared one
        self._api = _PodPortForwardApi(ApiClient(self.kube._api.configuration))
        self._listener = listener
        self._wakeup = socket.socketpair()
        self.local_port = listener.getsockname()[1]
        self._spawn(self._accept_loop, f"port-forward {self.local_port} -> {self.pod}:{self.remote_port}")
        self._spawn(self._check_pod_periodically, f"port-forward check of {self.pod}")
        return self.local_port

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stop() or until forwarding stopped on its own (then raise why); False on timeout."""
        if not self._done.wait(timeout):
            return False
        if self.error is not None:
            raise self.error
        return True

    def stop(self) -> None:
        self._finish(None)
        current = threading.current_thread()
        with self._lock:
            threads = [t for t in self._threads if t is not current]
        for thread in threads:
            thread.join(_JOIN_S)
        if self._api is not None:
            self._api.api_client.close()
            self._api = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _finish(self, error: LlmctlError | None) -> None:
        """Stop accepting and end every connection (from any thread); the first error is kept."""
        with self._lock:
            if self._stopping.is_set():
                return
            self.error = error
            self._stopping.set()
            pumps = list(self._pumps)
        if self._listener is None:  # never started
            self._done.set()
        else:
            try:
                self._wakeup[1].send(b"x")
            except OSError:  # the accept loop has ended already
                pass
        for pump in pumps:
            pump.abort()

    def _spawn(self, target, name: str, *args) -> None:
        def run() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    # -- connections --------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wakeup is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wakeup[0], selectors.EVENT_READ)
            try:
                while not self._stopping.is_set():
                    for key, _ in sel.select():
                        if key.fileobj is self._listener and not self._stopping.is_set():
                            try:
                                conn, peer = self._listener.accept()
                            except OSError:
                                continue
                            self._spawn(self._serve, f"port-forward connection from port {peer[1]}", conn)
            finally:
                self._listener.close()  # from now on, connecting to the local port is refused
                for sock in self._wakeup:
                    sock.close()
                self._done.set()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            stream = self._open()
        except LlmctlError as err:
            conn.close()
            self._failed(err)
            return
        pump = Pump(conn, stream.socket(self.remote_port))
        with self._lock:
            aborted = self._stopping.is_set()
            self._pumps.add(pump)
        try:
            pod_ended = not aborted and pump.run()
        finally:
            with self._lock:
                self._pumps.discard(pump)
            pump.close()  # the client's proxy thread then closes the websocket and ends
        message = stream.error(self.remote_port)
        if message:
            self._failed(self._stream_error(message))
        elif pod_ended and not self._stopping.is_set():
            # the pod's side closed first: a server ending a keep-alive connection, or the pod going away
            self._check_pod()

    def _open(self):
        """One port-forward stream (the client's `PortForward`), or the handshake's error."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import portforward

        with self._open_lock:
            try:
                return portforward(self._api.connect_get_namespaced_pod_portforward, self.pod, self.namespace,
                                   ports=str(self.remote_port))
            except ApiException as exc:
                raise self._handshake_error(exc) from None

    def _handshake_error(self, exc) -> LlmctlError:
        cause = exc.__context__
        status = getattr(cause, "status_code", None)
        if status is None:
            return LlmctlError(f"cannot reach the Kubernetes API at {self.kube.host} to port-forward: {exc.reason}",
                               hint=KUBE_UNREACHABLE_HINT)
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.pod}/portforward"
        error: KubeApiError = Kube._error(status, cause.resp_body or b"", "GET", path)
        return self._gone(error.message) if status == 404 else error

    def _stream_error(self, message: str) -> PortForwardError:
        detail = " ".join(message.split())
        if "connection refused" in detail:
            return PortForwardError(f"{self.where}: nothing listens on port {self.remote_port} (connection refused)",
                                    reason="refused", detail=detail,
                                    hint=f"the server may still be starting, or listen on another port: "
                                         f"`kubectl -n {self.namespace} logs {self.pod}`")
        return PortForwardError(f"port-forward to {self.where} port {self.remote_port} failed: {detail}",
                                reason="failed", detail=detail)

    def _failed(self, err: LlmctlError) -> None:
        """One connection failed: stop when no connection can succeed (the pod is gone, access is denied),
        else report it and check that the pod is still there."""
        if self._stopping.is_set():
            return
        if (isinstance(err, PortForwardError) and err.reason == "not-found") or \
                (isinstance(err, KubeApiError) and err.status in (401, 403)):
            self._finish(err)
            return
        with self._lock:
            self.errors = [*self.errors[-(_KEEP_ERRORS - 1):], err]
        self._on_error(err)
        if isinstance(err, PortForwardError):  # not when the API itself is unreachable
            self._check_pod()

    def _check_pod(self, report: bool = True) -> None:
        try:
            problem = self._pod_problem()
        except LlmctlError as err:
            if report:
                self._on_error(err)
            return
        if problem is not None:
            self._finish(problem)

    def _check_pod_periodically(self) -> None:
        """Notice the pod going away while no connection is open: kubectl notices it through its one long-lived
        connection, here each local connection has a stream of its own. An unreachable API is left to the
        connections to report."""
        while not self._stopping.wait(_POD_CHECK_S):
            self._check_pod(report=False)

    def _gone(self, detail: str = "") -> PortForwardError:
        return PortForwardError(f"{self.where} does not exist", reason="not-found", detail=detail,
                                hint="it was deleted or replaced; forward to a current pod")

    def _pod_problem(self) -> PortForwardError | None:
        pod = self.kube.get("v1", "Pod", self.pod, self.namespace)
        if pod is None:
            return self._gone()
        phase = (pod.get("status") or {}).get("phase") or "Unknown"
        if phase != "Running":
            return PortForwardError(f"{self.where} is not running (phase {phase})", reason="not-running",
                                    hint=f"`kubectl -n {self.namespace} describe pod {self.pod}` shows why")
        return None


class _PodPortForwardApi:
    """The one generated method `kubernetes.stream.portforward` drives, `CoreV1Api.connect_get_namespaced_pod_
    portforward`, serialized the same way but without importing `CoreV1Api` (seconds of start-up for
    `llmctl dashboard`). portforward() swaps `api_client.call_api` for its websocket call while this runs."""

    def __init__(self, api_client):
        self.api_client = api_client

    def connect_get_namespaced_pod_portforward(self, name: str, namespace: str, ports: str,
                                               _preload_content: bool = False):  # portforward() always passes False
        request = self.api_client.param_serialize(
            method="GET", resource_path="/api/v1/namespaces/{namespace}/pods/{name}/portforward",
            path_params={"name": name, "namespace": namespace}, query_params=[("ports", ports)],
            header_params={"Accept": "*/*"}, auth_settings=["BearerToken"])
        return self.api_client.call_api(*request).response


def forward_service(kube: Kube, namespace: str, service: str, port: int, local_port: int = 0, wait_s: float = 0.0,
                    on_error: Callable[[LlmctlError], None] | None = None) -> PortForward:
    """A (not yet started) forward to a ready pod behind a Service, as `kubectl port-forward svc/<service>`."""
    target = pod_for_service(kube, namespace, service, port, wait_s=wait_s)
    return PortForward(kube, namespace, target.pod, target.port, local_port, on_error=on_error)


def forward_container_port(kube: Kube, namespace: str, service: str, name: str, wait_s: float = 0.0) -> PortForward:
    """A (not yet started) forward to the container port `name` of a ready pod behind a Service."""
    target = pod_for_container_port(kube, namespace, service, name, wait_s=wait_s)
    return PortForward(kube, namespace, target.pod, target.port)
