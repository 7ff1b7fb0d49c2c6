"""The KEDA HTTP add-on's interceptor, in front of a real server on this machine (wake-on-request).

What the interceptor does for an `HTTPScaledObject` (http-add-on v0.11 line, `interceptor/proxy_handlers.go`):
every request is counted (the external scaler reads the count: KEDA's `external-push` trigger wakes the
workload from zero), then held until the workload's Service has a ready endpoint, at most
`spec.timeouts.conditionWait`; once one is ready the request is forwarded (and streamed back) unchanged.
When the wait passes first, the interceptor answers `502 Bad Gateway` with the body
`error on backend (<why>)`, and no `Retry-After`. With `spec.coldStartTimeoutFailoverRef` (v0.11+,
`failover`: the failover Service's address) the wait is its `timeoutSeconds` instead of conditionWait
(`failover_timeout_s`), and past it the request is forwarded to the failover Service, unchanged. Every
forwarded answer carries `X-KEDA-HTTP-Cold-Start`: whether the request had to wait, false on a failover
(proxy_handlers.go, forward_wait_func.go at v0.11.0).

The double plays the Service's endpoint the way the kubelet's readiness probe makes it: the backend's
`/ready` answering 200 (the pod's readinessProbe path), or `ready()` when given (a ready pod behind the
Service on the Kubernetes double). `on_first_hold` is KEDA waking the workload: it runs when the first
request is held with no endpoint ready, again after each time the endpoint went back to zero. With `hosts`, a request whose Host the HTTPScaledObject does not
list gets the interceptor's 404 (its routing table has no such host); `hosts` may be a callable that reads the
HTTPScaledObject live, as the interceptor's routing table follows it.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}


@dataclass
class Held:
    """One request as the interceptor saw it: when it came, how long it was held, what it got."""

    path: str
    arrived: float
    held_s: float = 0.0
    status: int = 0
    forwarded: bool = False


@dataclass
class InterceptorDouble:
    backend: tuple[str, int]  # the Service's address: (host, port) of the real server once it runs
    condition_wait_s: float  # HTTPScaledObject spec.timeouts.conditionWait
    on_first_hold: Callable[[], None] | None = None
    probe_interval_s: float = 0.1  # how often the readiness probe asks /ready
    ready: Callable[[], bool] | None = None
    hosts: list[str] | Callable[[], list[str]] | None = None  # HTTPScaledObject spec.hosts (callable: read live)
    failover: tuple[str, int] | None = None  # spec.coldStartTimeoutFailoverRef's Service address
    failover_timeout_s: float = 30.0  # spec.coldStartTimeoutFailoverRef.timeoutSeconds (the CRD's default)
    port: int = 0  # where it listens on 127.0.0.1 (0: any free port)
    requests: list[Held] = field(default_factory=list)
    ready_since: float | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _woken: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> InterceptorDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                double._handle(self)

            def do_POST(self):
                double._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        threading.Thread(target=self._probe, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> InterceptorDouble:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _probe(self) -> None:
        host, port = self.backend
        while not self._stop.is_set():
            try:
                if self.ready is not None:
                    ok = bool(self.ready())
                else:
                    with urllib.request.urlopen(f"http://{host}:{port}/ready", timeout=2) as response:
                        ok = response.status == 200
            except (urllib.error.URLError, OSError, ValueError):
                ok = False
            if ok and not self._ready.is_set():
                self.ready_since = time.monotonic()
                self._ready.set()
            elif not ok and self._ready.is_set():  # gone to zero again: the next held request wakes it again
                with self._lock:
                    self._ready.clear()
                    self._woken = False
            self._stop.wait(self.probe_interval_s)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        hosts = self.hosts() if callable(self.hosts) else self.hosts  # the routing table follows the objects
        if hosts is not None and (h.headers.get("Host") or "").split(":")[0] not in hosts:
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        held = Held(h.path, time.monotonic())
        with self._lock:
            self.requests.append(held)
            cold = not self._ready.is_set()
            wake = cold and not self._woken and self.on_first_hold is not None
            self._woken = self._woken or wake
        if wake:
            threading.Thread(target=self.on_first_hold, name="wake", daemon=True).start()
        ready = self._ready.wait(self.failover_timeout_s if self.failover else self.condition_wait_s)
        held.held_s = time.monotonic() - held.arrived
        if not ready and self.failover:
            self._forward(h, body, held, self.failover, cold_start="false")
            return
        if not ready:
            message = ("error on backend (context marked done while waiting for workload reach > 0 replicas: "
                       "context deadline exceeded)").encode()
            held.status = 502
            h.send_response(502)
            h.send_header("Content-Type", "text/plain; charset=utf-8")
            h.send_header("Content-Length", str(len(message)))
            h.end_headers()
            h.wfile.write(message)
            return
        held.forwarded = True
        self._forward(h, body, held, self.backend, cold_start=str(cold).lower())

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes, held: Held, target: tuple[str, int],
                 cold_start: str) -> None:
        conn = http.client.HTTPConnection(*target, timeout=600)  # spec.timeouts.responseHeader
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
            conn.request(h.command, h.path, body=body or None, headers=headers)
            response = conn.getresponse()
            held.status = response.status
            h.send_response(response.status)
            h.send_header("X-KEDA-HTTP-Cold-Start", cold_start)
            for key, value in response.getheaders():
                if key.lower() not in _HOP:
                    h.send_header(key, value)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            while chunk := response.read1(65536):
                h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
        finally:
            conn.close()
