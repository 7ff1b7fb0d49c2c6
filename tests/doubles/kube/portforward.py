"""The pod `portforward` subresource, as the API server proxies it to the kubelet's streaming server.

`GET /api/v1/namespaces/{ns}/pods/{name}/portforward?ports=N[,M]` with a websocket upgrade,
subprotocol `v4.channel.k8s.io` (kubelet `cri/streaming/portforward/websocket.go`): for the i-th
port, channel 2i carries data both ways and channel 2i+1 errors from the server; every binary frame
starts with its channel byte, and the server's first frame on each channel is the port number
(2 bytes, little-endian). The kubelet then dials the port inside the pod; here that is the real
server a test registered with `KubeDouble.expose(target, port, address)`. When nothing listens (no
exposure, or the container that declares the port is not running) the error channel says so the way
containerd does ("... connect: connection refused"). When every port's connection has ended, the
server closes the websocket. A pod that stops listening (deleted, crashed) drops its connections,
as the kernel does when the process dies: the stream just ends.

Errors before the upgrade are API `Status`es: 404 for a missing pod, 400 for a pod without a node
or a request without ports or without `Upgrade: websocket`.
"""

from __future__ import annotations

import copy
import hashlib
import selectors
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from websockets.datastructures import Headers
from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from .store import ApiError, not_found

V4_PROTOCOL = "v4.channel.k8s.io"
_CHUNK = 64 * 1024  # the size of the frames the double sends (the kubelet copies 32 KiB at a time)
_CLOSE_WAIT_S = 2.0  # how long a close the server sent waits for the client's reply


@dataclass(frozen=True)
class Exposure:
    matches: Callable[[dict], bool]
    port: int
    address: tuple[str, int]


def _listens(pod: dict, port: int) -> bool:
    """A pod listens on `port` while it runs and so does its container that declares the port (or its
    first container when none declares it)."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    containers = pod["spec"].get("containers") or []
    declaring = [c["name"] for c in containers
                 if any(int(p.get("containerPort") or 0) == port for p in c.get("ports") or [])]
    running = {s["name"] for s in status.get("containerStatuses") or [] if "running" in (s.get("state") or {})}
    return any(name in running for name in declaring or [c["name"] for c in containers[:1]])


def _sandbox_id(pod: dict) -> str:
    return hashlib.sha256(pod["metadata"]["uid"].encode()).hexdigest()


def _refused(pod: dict, port: int) -> str:
    sandbox = _sandbox_id(pod)
    netns = uuid.UUID(sandbox[:32])
    return (f"error forwarding port {port} to pod {sandbox}, uid : failed to execute portforward in network "
            f'namespace "/var/run/netns/cni-{netns}": failed to connect to localhost:{port} inside namespace '
            f'"{sandbox}", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 dial tcp6 '
            f"[::1]:{port}: connect: connection refused ")


def _sandbox_gone(pod: dict, port: int) -> str:
    sandbox = _sandbox_id(pod)
    return f'error forwarding port {port} to pod {sandbox}, uid : failed to find sandbox "{sandbox}" in store: not found'


class Forwards:
    """The ports tests expose and the live port-forward sessions, per pod uid (so a pod that stops
    listening drops them)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.exposures: list[Exposure] = []
        self.sessions: dict[str, set[Session]] = {}

    def expose(self, matches: Callable[[dict], bool], port: int, address: tuple[str, int]) -> None:
        with self.cluster.lock:
            self.exposures.append(Exposure(matches, int(port), (address[0], int(address[1]))))

    def address(self, pod: dict, port: int) -> tuple[str, int] | None:
        """Where a connection to the pod's `port` goes now (the latest matching exposure), if it listens."""
        if not _listens(pod, port):
            return None
        for exposure in reversed(self.exposures):
            if exposure.port == port and exposure.matches(pod):
                return exposure.address
        return None

    def on_change(self, type_: str, rt, obj: dict, old: dict | None) -> None:
        """Store listener (under the cluster lock)."""
        if rt.kind != "Pod":
            return
        for session in list(self.sessions.get(obj["metadata"]["uid"], ())):
            for i, port in enumerate(session.ports):
                if type_ == "DELETED" or not _listens(obj, port):
                    session.drop(i)

    def add(self, session: Session) -> None:
        with self.cluster.lock:
            self.sessions.setdefault(session.uid, set()).add(session)

    def remove(self, session: Session) -> None:
        with self.cluster.lock:
            live = self.sessions.get(session.uid, set())
            live.discard(session)
            if not live:
                self.sessions.pop(session.uid, None)


def _ports(query: dict) -> list[int]:
    raw = [p for p in (query.get("ports") or "").split(",") if p.strip()]
    if not raw:
        raise ApiError(400, "BadRequest", 'query parameter "port" is required')
    ports = []
    for value in raw:
        try:
            port = int(value)
        except ValueError:
            raise ApiError(400, "BadRequest", f'unable to parse "{value}" as a port: invalid syntax') from None
        if not 0 < port < 65536:
            raise ApiError(400, "BadRequest", f'port "{port}" must be > 0 and < 65536')
        ports.append(port)
    return ports


def _select_subprotocol(protocol: ServerProtocol, offered) -> str | None:
    """v4 binary; a client that offers no subprotocol gets the same channels (the kubelet's "" protocol)."""
    if not offered:
        return None
    if V4_PROTOCOL in offered:
        return V4_PROTOCOL
    from websockets.exceptions import NegotiationError

    raise NegotiationError(f"requested protocol(s) are not supported: {list(offered)}; supports [{V4_PROTOCOL}]")


def serve_portforward(handler, namespace: str, name: str, query: dict) -> None:
    """Answer one portforward request on the handler's connection (outside the cluster lock)."""
    c = handler.cluster
    ports = _ports(query)
    with c.lock:
        pod = c.store.get(c.rt("v1", "Pod"), namespace, name)
        if pod is None:
            raise not_found(c.rt("v1", "Pod"), name)
        if not pod["spec"].get("nodeName"):
            raise ApiError(400, "BadRequest", f"pod {name} does not have a host assigned")
        pod = copy.deepcopy(pod)
    if (handler.headers.get("Upgrade") or "").lower() != "websocket":
        raise ApiError(400, "BadRequest", "Upgrade request required")
    protocol = ServerProtocol(subprotocols=[V4_PROTOCOL], select_subprotocol=_select_subprotocol, max_size=None)
    response = protocol.accept(Request(handler.path, Headers(handler.headers.items())))
    handler._status = response.status_code
    handler._record(response.status_code)
    handler.close_connection = True
    protocol.send_response(response)
    sock = handler.connection
    for chunk in protocol.data_to_send():
        sock.sendall(chunk)
    if response.status_code == 101:  # frames from here on: a protocol object that starts open parses them
        framing = ServerProtocol(state=State.OPEN, max_size=None)
        Session(c, sock, framing, pod, ports, handler.server.stopping).run()


class Session:
    """One upgraded connection: upstream connections per port, pumped both ways in frames."""

    def __init__(self, cluster, sock: socket.socket, protocol: ServerProtocol, pod: dict, ports: list[int],
                 stopping: threading.Event):
        self.cluster = cluster
        self.sock = sock
        self.protocol = protocol
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.ports = ports
        self.stopping = stopping
        self.upstreams: list[socket.socket | None] = [None] * len(ports)
        self.done = [False] * len(ports)
        self._lock = threading.Lock()  # the protocol object and writes to the client socket
        self._close_sent: float | None = None
        self._readers: list[threading.Thread] = []

    def run(self) -> None:
        self.sock.settimeout(None)
        self.cluster.forwards.add(self)
        try:
            for i, port in enumerate(self.ports):
                prefix = port.to_bytes(2, "little")
                self._send(bytes([2 * i]) + prefix)
                self._send(bytes([2 * i + 1]) + prefix)
            for i, port in enumerate(self.ports):
                self._connect(i, port)
            self._read_client()
        finally:
            self.cluster.forwards.remove(self)
            for i in range(len(self.ports)):
                self.drop(i)
            for reader in self._readers:
                reader.join(timeout=5)
            for upstream in self.upstreams:
                if upstream is not None:
                    upstream.close()
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _current_pod(self) -> dict | None:
        """The pod now (under the cluster lock), None once it is gone (or replaced by one of the same name)."""
        meta = self.pod["metadata"]
        pod = self.cluster.store.get(self.cluster.rt("v1", "Pod"), meta["namespace"], meta["name"])
        return pod if pod is not None and pod["metadata"]["uid"] == self.uid else None

    def _connect(self, i: int, port: int) -> None:
        with self.cluster.lock:
            pod = self._current_pod()
            if pod is None:
                return self._error(i, _sandbox_gone(self.pod, port))
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return self._error(i, _sandbox_gone(pod, port))
            address = self.cluster.forwards.address(pod, port)
        try:
            if address is None:
                raise ConnectionRefusedError
            upstream = socket.create_connection(address, timeout=5)
        except OSError:
            return self._error(i, _refused(pod, port))
        upstream.settimeout(None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstreams[i] = upstream
        with self.cluster.lock:  # the pod may have stopped listening while this connected
            current = self._current_pod()
            if current is None or not _listens(current, port):
                self.drop(i)
        reader = threading.Thread(target=self._read_upstream, args=(i, upstream), daemon=True,
                                  name=f"kube-double-portforward {self.pod['metadata']['name']}:{port}")
        self._readers.append(reader)
        reader.start()

    # -- client -> pod ----------------------------------------------------------------------------

    def _read_client(self) -> None:
        channel = None  # of the message being received (continuation frames carry no channel byte)
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            while not self.stopping.is_set():
                if self._close_sent is not None and time.monotonic() - self._close_sent > _CLOSE_WAIT_S:
                    return
                if not sel.select(timeout=0.2):
                    continue
                try:
                    data = self.sock.recv(_CHUNK)
                except OSError:
                    return
                with self._lock:
                    if data:
                        self.protocol.receive_data(data)
                    else:
                        self.protocol.receive_eof()
                    frames = self.protocol.events_received()
                    self._flush()
                for frame in frames:
                    if frame.opcode is Opcode.CLOSE:  # the reply (or our close's answer) is out: done
                        return
                    if frame.opcode in (Opcode.BINARY, Opcode.TEXT) and frame.data:
                        channel, payload = frame.data[0], frame.data[1:]
                    elif frame.opcode is Opcode.CONT:
                        payload = frame.data
                    else:
                        continue
                    if channel is not None and channel % 2 == 0 and channel // 2 < len(self.ports):
                        self._to_upstream(channel // 2, payload)
                if not data:
                    return

    def _to_upstream(self, i: int, payload: bytes) -> None:
        upstream = self.upstreams[i]
        if upstream is None or not payload:
            return
        try:
            upstream.sendall(payload)
        except OSError:
            self.drop(i)

    # -- pod -> client ----------------------------------------------------------------------------

    def _read_upstream(self, i: int, upstream: socket.socket) -> None:
        channel = bytes([2 * i])
        try:
            while data := upstream.recv(_CHUNK):
                self._send(channel + data)
        except OSError:
            pass
        self._port_done(i)

    def _error(self, i: int, message: str) -> None:
        self._send(bytes([2 * i + 1]) + message.encode())
        self._port_done(i)

    def _port_done(self, i: int) -> None:
        with self._lock:
            self.done[i] = True
            if all(self.done) and self.protocol.state is State.OPEN:
                self.protocol.send_close(1000)
                self._close_sent = time.monotonic()
                self._flush()

    def drop(self, i: int) -> None:
        """End port i's upstream connection (the pod stopped, or the session ends); never blocks."""
        upstream = self.upstreams[i]
        if upstream is not None:
            try:
                upstream.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _send(self, payload: bytes) -> None:
        with self._lock:
            if self.protocol.state is State.OPEN:
                self.protocol.send_binary(payload)
                self._flush()

    def _flush(self) -> None:
        """Write what the protocol queued (under _lock); an empty chunk means: half-close."""
        for chunk in self.protocol.data_to_send():
            try:
                if chunk:
                    self.sock.sendall(chunk)
                else:
                    self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                return
