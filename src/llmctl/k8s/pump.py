"""`Pump`: the byte copying behind a port-forward, between a local connection and a pod stream's socket."""

from __future__ import annotations

import selectors
import socket
import time

_CHUNK = 256 * 1024
_MAX_TO_POD = 4 * 1024 * 1024  # stop reading the local side while this much waits for the pod
_CLOSE_S = 5.0


class Pump:
    """Copies bytes between a local connection and a pod stream's socket until one side ends.

    The pod side is the client's (`kubernetes.stream.ws_client.PortForward`) socketpair end, served by its
    proxy thread. That side is read eagerly into memory (the proxy drops what it has not handed over when
    the websocket closes, so it must never wait on a slow local reader) and closed gently (see `close`).
    """

    def __init__(self, local: socket.socket, remote):
        self.local = local
        self.remote = remote
        self._aborted = False

    def abort(self) -> None:
        """End `run()` from another thread."""
        self._aborted = True
        try:
            self.local.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        _shutdown_write(self.remote)

    def close(self) -> None:
        """Close both sides. The pod side only after the proxy closed its end: it sees our EOF, closes its end
        and the websocket, and ends. Closed under it, its next send or recv fails (EPIPE, ECONNRESET) and
        kills the thread before it closes the websocket."""
        self.local.close()
        _shutdown_write(self.remote)
        deadline = time.monotonic() + _CLOSE_S
        try:
            self.remote.settimeout(_CLOSE_S)
            while self.remote.recv(_CHUNK) and time.monotonic() < deadline:
                pass
        except OSError:
            pass
        self.remote.close()

    def run(self) -> bool:
        """Pump until done; True when the pod's side ended first."""
        local, remote = self.local, self.remote
        outbox = {local: bytearray(), remote: bytearray()}  # what waits to be written to each side
        peer = {local: remote, remote: local}
        reading = {local: True, remote: True}
        remote_writable = True
        for sock in (local, remote):
            sock.setblocking(False)
        with selectors.DefaultSelector() as sel:
            interest: dict = {}

            def want(sock, events: int) -> None:
                if interest.get(sock, 0) == events:
                    return
                if not events:
                    sel.unregister(sock)
                elif interest.get(sock):
                    sel.modify(sock, events)
                else:
                    sel.register(sock, events)
                interest[sock] = events

            while not self._aborted:
                if not reading[remote] and not outbox[local]:
                    return reading[local]
                if not reading[local] and not outbox[remote] and remote_writable:
                    # v4 has no half-close: the client's proxy ends the stream, what the pod still sends is lost
                    _shutdown_write(remote)
                    remote_writable = False
                want(local, (selectors.EVENT_READ if reading[local] and len(outbox[remote]) < _MAX_TO_POD else 0)
                     | (selectors.EVENT_WRITE if outbox[local] else 0))
                want(remote, (selectors.EVENT_READ if reading[remote] else 0)
                     | (selectors.EVENT_WRITE if outbox[remote] else 0))
                for key, events in sel.select():
                    sock = key.fileobj
                    try:
                        if events & selectors.EVENT_WRITE:
                            del outbox[sock][:sock.send(outbox[sock])]
                        if events & selectors.EVENT_READ:
                            data = sock.recv(_CHUNK)
                            outbox[peer[sock]] += data
                            reading[sock] = bool(data)
                    except BlockingIOError:
                        continue
                    except OSError:  # reset, or aborted
                        return False
        return False


def _shutdown_write(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
