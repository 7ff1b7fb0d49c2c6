"""llmctl's port-forward (`llmctl.k8s.portforward`) against the Kubernetes double's portforward
subresource, with real local servers exposed as the pod's port."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from llmctl.errors import LlmctlError
from llmctl.k8s.client import Kube
from llmctl.k8s.portforward import PortForward, PortForwardError, forward_service, pod_for_service
from tests.fixtures.kube import Scenario, Step
from tests.fixtures.upstream import pattern

NS = "vllm"
THREAD_PREFIXES = ("port-forward", "Kubernetes port forward proxy")


def pod(name: str = "web-0", labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web@sha256:1",
                                     "ports": [{"name": "http", "containerPort": 8000}]}]}}


def service(target_port: int | str = "http", selector: dict | None = None, name: str = "web") -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"app": "web"} if selector is None else selector,
                     "ports": [{"name": "http", "port": 80, "targetPort": target_port}]}}


def ready(kube, name: str = "web-0") -> dict:
    def check():
        found = kube.get("v1", "Pod", name, NS)
        conditions = ((found or {}).get("status") or {}).get("conditions") or []
        return found if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None
    return kube.wait_for(check)


@pytest.fixture(autouse=True)
def no_thread_dies(monkeypatch):
    """The client's proxy thread dies (EPIPE, ECONNRESET) when its socket is closed under it, and then
    leaves its websocket open: no thread may end with an exception."""
    crashes = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashes.append(f"{args.thread.name}: {args.exc_value!r}"))
    yield
    assert not crashes


@pytest.fixture
def k(kube):
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return Kube.from_kubeconfig(str(kube.kubeconfig_path))


@pytest.fixture
def web(kube, k, upstream_http):
    """A ready pod `web-0` whose port 8000 is the local HTTP server."""
    kube.create(pod())
    ready(kube)
    kube.expose("web-0", 8000, upstream_http.address)
    return kube


def get(forward: PortForward, path: str, conn: http.client.HTTPConnection | None = None) -> bytes:
    conn = conn or http.client.HTTPConnection("127.0.0.1", forward.local_port, timeout=30)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200
    return resp.read()


def sse_events(forward: PortForward, query: str) -> list[str]:
    conn = http.client.HTTPConnection("127.0.0.1", forward.local_port, timeout=30)
    conn.request("GET", f"/sse?{query}")
    resp = conn.getresponse()
    assert resp.getheader("Content-Type") == "text/event-stream"
    events = [line.decode().strip() for line in resp if line.startswith(b"data:")]
    conn.close()
    return events


def forward_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIXES)]


def test_bytes_round_trip_through_an_echo_server(kube, k, echo_server):
    kube.create(pod())
    ready(kube)
    kube.expose("web-0", 8000, echo_server.address)
    with PortForward(k, NS, "web-0", 8000) as forward:
        with socket.create_connection(("127.0.0.1", forward.local_port), timeout=10) as sock:
            for message in (b"hello", bytes(range(256)), b"\x00" * 10_000):
                sock.sendall(message)
                received = b""
                while len(received) < len(message):
                    received += sock.recv(65536)
                assert received == message
    assert echo_server.connections == 1


def test_http_keep_alive_and_one_stream_per_connection(web, k, upstream_http):
    with PortForward(k, NS, "web-0", 8000) as forward:
        conn = http.client.HTTPConnection("127.0.0.1", forward.local_port, timeout=30)
        assert [get(forward, "/hello", conn) for _ in range(3)] == [b"hello from upstream"] * 3
        assert get(forward, "/hello") == b"hello from upstream"
    streams = web.requests_matching("GET", f"/api/v1/namespaces/{NS}/pods/web-0/portforward")
    assert [r.status for r in streams] == [101, 101]  # a stream per local connection, as kubectl opens them


def test_concurrent_streaming_connections(web, k, upstream_http):
    streams = 12
    upstream_http.expect_concurrent(streams)  # each SSE stream waits until all 12 are open at once
    with PortForward(k, NS, "web-0", 8000) as forward:
        with ThreadPoolExecutor(streams) as pool:
            results = list(pool.map(lambda _: sse_events(forward, "events=40&delay=0.005&barrier=1"),
                                    range(streams)))
        assert forward.errors == []
    assert results == [[f"data: {i}" for i in range(40)]] * streams


def test_large_bodies_both_ways(web, k):
    size = 6 * 1024 * 1024
    body = pattern(size)
    with PortForward(k, NS, "web-0", 8000) as forward:
        assert hashlib.sha256(get(forward, f"/bytes?n={size}")).digest() == hashlib.sha256(body).digest()
        conn = http.client.HTTPConnection("127.0.0.1", forward.local_port, timeout=60)
        conn.request("POST", "/echo", body=body, headers={"Content-Type": "application/octet-stream"})
        echoed = conn.getresponse().read()
        assert len(echoed) == size and echoed == body


def test_a_pod_that_is_not_running_is_refused_at_start(kube, k):
    kube.script("web-0", Scenario([Step.schedule(), *Step.pull("main")]))  # scheduled, never started
    kube.create(pod())
    kube.wait_for(lambda: kube.get("v1", "Pod", "web-0", NS)["spec"].get("nodeName"))
    with pytest.raises(PortForwardError) as exc:
        PortForward(k, NS, "web-0", 8000).start()
    assert exc.value.reason == "not-running"
    assert str(exc.value) == (f"pod {NS}/web-0 is not running (phase Pending) "
                              f"(`kubectl -n {NS} describe pod web-0` shows why)")
    with pytest.raises(PortForwardError) as exc:
        PortForward(k, NS, "nope", 8000).start()
    assert exc.value.reason == "not-found" and "\n" not in str(exc.value)


def test_nothing_listening_is_reported_per_connection(kube, k, upstream_http):
    kube.create(pod())
    ready(kube)  # running, but no server behind port 8000 yet
    errors = []
    with PortForward(k, NS, "web-0", 8000, on_error=errors.append) as forward:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            get(forward, "/hello")
        kube.wait_for(lambda: errors)
        err = errors[0]
        assert isinstance(err, PortForwardError) and err.reason == "refused"
        assert err.message == f"pod {NS}/web-0: nothing listens on port 8000 (connection refused)"
        assert "kubectl -n vllm logs web-0" in err.hint and "connection refused" in err.detail
        assert forward.errors == [err]
        assert not forward.wait(timeout=0.2), "a refused connection must not stop the forward"
        kube.expose("web-0", 8000, upstream_http.address)  # the server came up
        assert get(forward, "/hello") == b"hello from upstream"


def test_pod_deleted_mid_stream_stops_the_forward(web, k, upstream_http):
    forward = PortForward(k, NS, "web-0", 8000)
    forward.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", forward.local_port, timeout=30)
        conn.request("GET", "/sse?events=500&delay=0.01")
        resp = conn.getresponse()
        assert resp.readline() == b"data: 0\n"
        k.delete("v1", "Pod", "web-0", NS)
        with pytest.raises(http.client.IncompleteRead):  # the stream is cut, not finished
            resp.read()
        with pytest.raises(PortForwardError) as exc:
            forward.wait(timeout=10)
        assert exc.value.reason == "not-found"
        assert exc.value.message == f"pod {NS}/web-0 does not exist"
        with pytest.raises(ConnectionRefusedError):  # nothing listens locally any more
            socket.create_connection(("127.0.0.1", forward.local_port), timeout=5)
    finally:
        forward.stop()


def test_a_client_leaving_mid_stream_reaches_the_server(web, k, upstream_http):
    # the bench and the gate abort streams; the server (vLLM) must see the disconnect to abort its request
    with PortForward(k, NS, "web-0", 8000) as forward:
        with socket.create_connection(("127.0.0.1", forward.local_port), timeout=10) as sock:
            sock.sendall(b"GET /sse?events=2000&delay=0.005 HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while b"data: 0" not in received:
                chunk = sock.recv(4096)
                assert chunk, received
                received += chunk
        web.wait_for(lambda: upstream_http.disconnects, timeout=10)
        web.wait_for(lambda: not web.forwards.sessions, timeout=10)
        assert get(forward, "/hello") == b"hello from upstream"


def test_mixed_concurrent_traffic_with_aborts_leaves_nothing_open(web, k, upstream_http):
    def one(i: int) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", forward.local_port, timeout=60)
        if i % 3 == 0:  # a client that gives up mid-stream
            conn.request("GET", "/sse?events=5000&delay=0.001")
            assert conn.getresponse().readline() == b"data: 0\n"
            conn.close()
            return True
        if i % 3 == 1:
            return sse_events(forward, "events=100&delay=0.001") == [f"data: {n}" for n in range(100)]
        return get(forward, f"/bytes?n={100_000 * i}", conn) == pattern(100_000 * i)

    with PortForward(k, NS, "web-0", 8000) as forward:
        with ThreadPoolExecutor(24) as pool:
            assert all(pool.map(one, range(48)))
        assert forward.errors == []
    web.wait_for(lambda: not web.forwards.sessions, timeout=10)
    web.wait_for(lambda: not forward_threads(), timeout=10)


def open_sockets() -> int:
    """Sockets this process holds (the test's, the forward's and the double's ends)."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except FileNotFoundError:  # closed while listing
            pass
    return count


def test_stop_closes_connections_streams_and_threads(web, k, upstream_http):
    baseline = forward_threads()
    k.get("v1", "Pod", "web-0", NS)  # the API connection pool's keep-alive socket is open already
    sockets = open_sockets()
    forward = PortForward(k, NS, "web-0", 8000)
    forward.start()
    idle = http.client.HTTPConnection("127.0.0.1", forward.local_port, timeout=30)
    assert get(forward, "/hello", idle) == b"hello from upstream"  # a keep-alive connection left open
    streaming = http.client.HTTPConnection("127.0.0.1", forward.local_port, timeout=30)
    streaming.request("GET", "/sse?events=1000&delay=0.01")
    resp = streaming.getresponse()
    assert resp.readline() == b"data: 0\n"
    web.wait_for(lambda: sum(len(s) for s in web.forwards.sessions.values()) == 2)

    started = time.monotonic()
    forward.stop()
    assert time.monotonic() - started < 5
    assert forward.wait(timeout=0) is True and forward.error is None
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        resp.read()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", forward.local_port), timeout=5)
    web.wait_for(lambda: not web.forwards.sessions, timeout=10)  # the double saw every websocket close
    web.wait_for(lambda: forward_threads() == baseline, timeout=10)
    idle.close()
    streaming.close()
    web.wait_for(lambda: open_sockets() <= sockets, timeout=10)  # the double's ends and the forward's: all closed
    forward.stop()  # idempotent


def test_pod_for_service_maps_named_and_numbered_target_ports(kube, k):
    kube.create(pod())
    ready(kube)
    kube.create(service("http"))
    assert pod_for_service(k, NS, "web", 80).pod == "web-0"
    assert pod_for_service(k, NS, "web", 80).port == 8000
    with pytest.raises(PortForwardError) as exc:
        pod_for_service(k, NS, "web", 81)
    assert str(exc.value) == f"Service {NS}/web has no port 81 (its ports: 80)"
    kube.create(service(8001, name="web-numbered"))
    assert pod_for_service(k, NS, "web-numbered", 80).port == 8001


def test_pod_for_service_picks_a_ready_pod_and_waits_for_one(kube, k):
    kube.script("web-1", Scenario.never_ready())
    kube.create(service())
    kube.create(pod("web-1"))
    with pytest.raises(PortForwardError) as exc:
        pod_for_service(k, NS, "web", 80)
    assert exc.value.reason == "not-running"
    assert exc.value.hint == f"`kubectl -n {NS} get pods -l app=web` shows their state"
    threading.Timer(0.3, lambda: kube.create(pod("web-2"))).start()
    assert pod_for_service(k, NS, "web", 80, wait_s=10).pod == "web-2"


def test_forward_service_reaches_the_pod_behind_a_service(web, k):
    web.create(service())
    with forward_service(k, NS, "web", 80) as forward:
        assert (forward.pod, forward.remote_port) == ("web-0", 8000)
        assert get(forward, "/hello") == b"hello from upstream"


def test_a_service_without_selector_or_pods_says_so(kube, k):
    kube.create(service(selector={}))
    with pytest.raises(PortForwardError) as exc:
        pod_for_service(k, NS, "web", 80)
    assert str(exc.value) == f"Service {NS}/web has no selector, so no pod to forward to"
    with pytest.raises(PortForwardError) as exc:
        pod_for_service(k, NS, "absent", 80)
    assert exc.value.reason == "not-found"


def test_local_port_in_use_is_one_clear_error(web, k):
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        with pytest.raises(LlmctlError) as exc:
            PortForward(k, NS, "web-0", 8000, local_port=taken.getsockname()[1]).start()
        assert "cannot listen on 127.0.0.1:" in str(exc.value) and "choose another local port" in str(exc.value)
    finally:
        taken.close()


@pytest.mark.engine
def test_concurrent_streaming_completions_from_the_real_server(kube, k, live_server):
    # what the promotion gate does: reach a new revision's pod directly and stream from vLLM through it
    import openai
    from urllib.parse import urlsplit

    kube.create(pod())
    ready(kube)
    kube.expose("web-0", 8000, ("127.0.0.1", urlsplit(live_server.url).port))
    with PortForward(k, NS, "web-0", 8000) as forward:
        oa = openai.OpenAI(base_url=f"{forward.url}/v1", api_key=live_server.api_key, max_retries=0)

        def stream(i: int) -> list:
            return list(oa.completions.create(model=live_server.model_name, prompt=f"count {i}", max_tokens=12,
                                              stream=True, stream_options={"include_usage": True},
                                              extra_body={"ignore_eos": True}))

        with ThreadPoolExecutor(live_server.max_concurrent) as pool:
            results = list(pool.map(stream, range(live_server.max_concurrent * 2)))
        assert forward.errors == []
    for chunks in results:
        assert chunks[-1].usage.completion_tokens == 12
        assert [c.choices[0].finish_reason for c in chunks[:-1]][-1] == "length"
