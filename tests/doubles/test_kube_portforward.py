"""The double's pod `portforward` subresource, through the real kubernetes client's `portforward`
and, for the wire details, through websocket-client (the library that client speaks it with)."""

from __future__ import annotations

import json
import socket
import threading

import pytest
import websocket
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from tests.fixtures.kube import Scenario, Step
from tests.fixtures.upstream import pattern

NS = "vllm"


def pod(name: str = "web-0", port: int = 8000, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web@sha256:1",
                                     "ports": [{"name": "http", "containerPort": port}]}]}}


def running(kube, name: str = "web-0") -> dict:
    return kube.wait_for(lambda: (p := kube.get("v1", "Pod", name, NS)) and
                         (p.get("status") or {}).get("phase") == "Running" and p)


@pytest.fixture
def web(kube, echo_server):
    """A running pod `web-0` whose port 8000 leads to a real echo server."""
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    kube.create(pod())
    running(kube)
    kube.expose("web-0", 8000, echo_server.address)
    return kube


@pytest.fixture
def core(kube_api_client):
    return client.CoreV1Api(kube_api_client)


def forward(core, name: str = "web-0", ports: str = "8000"):
    return portforward(core.connect_get_namespaced_pod_portforward, name, NS, ports=ports)


def recv_exactly(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"stream ended after {len(data)} of {n} bytes"
        data += chunk
    return data


def raw_ws(kube, name: str = "web-0", ports: str = "8000", protocol: str = "v4.channel.k8s.io",
           token: str | None = None) -> websocket.WebSocket:
    ws = websocket.WebSocket()
    ws.connect(f"{kube.url.replace('http', 'ws', 1)}/api/v1/namespaces/{NS}/pods/{name}/portforward?ports={ports}",
               header=[f"Authorization: Bearer {token or kube.token}", f"Sec-WebSocket-Protocol: {protocol}"],
               timeout=10)
    return ws


def frame(ws) -> tuple[int, bytes]:
    opcode, f = ws.recv_data_frame(True)
    return opcode, f.data


def test_client_portforward_round_trips_bytes_to_the_exposed_server(web, core):
    stream = forward(core)
    sock = stream.socket(8000)
    sock.sendall(b"ping")
    assert recv_exactly(sock, 4) == b"ping"
    body = pattern(3 * 1024 * 1024)
    threading.Thread(target=sock.sendall, args=(body,), daemon=True).start()
    assert recv_exactly(sock, len(body)) == body
    stream.close()
    record = web.requests_matching("GET", f"/api/v1/namespaces/{NS}/pods/web-0/portforward")[-1]
    assert (record.status, record.query) == (101, {"ports": "8000"})


def test_wire_format_is_v4_channels_with_port_prefixes(web):
    ws = raw_ws(web, ports="8000,9000")
    assert ws.getheaders()["sec-websocket-protocol"] == "v4.channel.k8s.io"
    # one data and one error channel per port, each opened with the port number, little-endian
    initial = [frame(ws) for _ in range(4)]
    assert initial == [(websocket.ABNF.OPCODE_BINARY, bytes([ch]) + port.to_bytes(2, "little"))
                       for ch, port in [(0, 8000), (1, 8000), (2, 9000), (3, 9000)]]
    # nothing listens on 9000: its error channel says so the way containerd does
    opcode, data = frame(ws)
    assert data[0] == 3 and b"dial tcp4 127.0.0.1:9000: connect: connection refused" in data
    ws.send_binary(b"\x00hello")
    assert frame(ws) == (websocket.ABNF.OPCODE_BINARY, b"\x00hello")
    ws.close()


def test_client_offering_v5_and_v4_gets_v4(web, core):
    # the kubernetes client offers v5 first; port-forward speaks v4 only (as the kubelet does)
    stream = forward(core)
    assert stream.websocket.getheaders()["sec-websocket-protocol"] == "v4.channel.k8s.io"
    stream.close()


def test_unsupported_subprotocol_is_refused(web):
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        raw_ws(web, protocol="v4.base64.channel.k8s.io")
    assert exc.value.status_code == 400


def test_server_closes_the_websocket_when_the_pod_side_ends(web, upstream_http):
    web.expose("web-0", 8000, upstream_http.address)
    ws = raw_ws(web)
    for _ in range(2):
        frame(ws)
    ws.send_binary(b"\x00GET /hello HTTP/1.0\r\n\r\n")  # HTTP/1.0: the server closes after the answer
    received = b""
    while True:
        opcode, data = frame(ws)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        assert data[0] == 0
        received += data[1:]
    assert received.startswith(b"HTTP/1.1 200 OK") and received.endswith(b"hello from upstream")


def test_missing_pod_is_404_and_bad_token_401(web, core):
    with pytest.raises(ApiException) as exc:
        forward(core, "nope")
    bad = exc.value.__context__
    assert bad.status_code == 404
    assert json.loads(bad.resp_body)["message"] == 'pods "nope" not found'
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        raw_ws(web, token="wrong")
    assert exc.value.status_code == 401


def test_requests_without_ports_upgrade_or_node_are_400(web):
    status, body = _plain_get(web, f"/api/v1/namespaces/{NS}/pods/web-0/portforward?ports=8000")
    assert (status, body["message"]) == (400, "Upgrade request required")
    status, body = _plain_get(web, f"/api/v1/namespaces/{NS}/pods/web-0/portforward")
    assert (status, body["message"]) == (400, 'query parameter "port" is required')
    web.script("pending-0", Scenario.pending())
    web.create(pod("pending-0"))
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        raw_ws(web, "pending-0")
    assert exc.value.status_code == 400
    assert json.loads(exc.value.resp_body)["message"] == "pod pending-0 does not have a host assigned"


def _plain_get(kube, path: str) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(kube.url + path, headers={"Authorization": f"Bearer {kube.token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_pod_that_is_not_running_refuses_on_the_error_channel(web, core, echo_server):
    # scheduled, init container still running: the sandbox exists but nothing listens yet
    web.script("slow-0", Scenario([Step.schedule(), *Step.pull("init"), Step.start("init")]))
    web.create({**pod("slow-0"), "spec": {**pod()["spec"], "initContainers": [{"name": "init", "image": "i"}]}})
    web.wait_for(lambda: web.get("v1", "Pod", "slow-0", NS)["spec"].get("nodeName"))
    web.expose("slow-0", 8000, echo_server.address)
    stream = forward(core, "slow-0")
    assert stream.socket(8000).recv(10) == b""  # the client closes the port's socket on an error
    assert "connect: connection refused" in stream.error(8000)


def test_crashed_container_refuses(web, core, echo_server):
    web.script("crash-0", Scenario.crash_loop(restarts=1))
    web.create(pod("crash-0"))
    web.wait_for(lambda: any("waiting" in s["state"] for s in
                             (web.get("v1", "Pod", "crash-0", NS).get("status") or {}).get("containerStatuses") or []))
    web.expose("crash-0", 8000, echo_server.address)
    stream = forward(core, "crash-0")
    assert stream.socket(8000).recv(10) == b""
    assert "connection refused" in stream.error(8000)


def test_deleting_the_pod_ends_its_streams(web, core):
    stream = forward(core)
    sock = stream.socket(8000)
    sock.sendall(b"x")
    assert recv_exactly(sock, 1) == b"x"
    core.delete_namespaced_pod("web-0", NS)
    sock.settimeout(10)
    assert sock.recv(10) == b""  # the process is gone: its connection ends (no error, as with a real kubelet)
    web.wait_for(lambda: web.get("v1", "Pod", "web-0", NS) is None)
    with pytest.raises(ApiException) as exc:
        forward(core)
    assert exc.value.__context__.status_code == 404
    web.wait_for(lambda: not web.forwards.sessions)


def test_exposure_follows_label_selectors_and_the_latest_wins(web, core, upstream_http):
    web.expose("app=web", 8000, upstream_http.address)  # matches web-0 too, and is newer than its echo
    stream = forward(core)
    sock = stream.socket(8000)
    sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(10)
    answer = b""
    while b"hello from upstream" not in answer:
        chunk = sock.recv(4096)
        assert chunk
        answer += chunk
    stream.close()


def test_stopping_the_double_ends_open_sessions(web, core):
    stream = forward(core)
    sock = stream.socket(8000)
    sock.sendall(b"x")
    assert recv_exactly(sock, 1) == b"x"
    web.stop()  # joins every handler thread: an open port-forward must not keep it waiting
    sock.settimeout(10)
    try:
        assert sock.recv(10) == b""
    except (ConnectionResetError, socket.timeout) as exc:
        pytest.fail(f"stream not ended cleanly: {exc!r}")
