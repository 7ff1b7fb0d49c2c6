"""The connection limits (server/http_limits.py) on a real uvicorn socket with a trivial app, no
engine: huge or too many headers, slow headers, idle connections, too many connections."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
import uvicorn
from server.http_limits import HttpLimits, protocol_class

from llmctl.procs import free_port

LIMITS = HttpLimits(max_header_bytes=4096, max_headers=20, header_timeout_s=1.0, idle_timeout_s=1, max_connections=6)


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/slow":  # a response that outlasts the header and idle timeouts
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await asyncio.sleep(2.5)
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def address():
    port = free_port()
    config = uvicorn.Config(hello, host="127.0.0.1", port=port, http=protocol_class(LIMITS), lifespan="off",
                            log_config=None, access_log=False, timeout_keep_alive=LIMITS.idle_timeout_s)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield ("127.0.0.1", port)
    server.should_exit = True
    thread.join(10)


def request(address, head: bytes, body: bytes = b"") -> tuple[int | None, bytes, bool]:
    """(status, the whole answer, closed by the server)."""
    with socket.create_connection(address, timeout=5) as sock:
        try:
            sock.sendall(head + body)
        except OSError:
            pass
        return read_answer(sock)


def read_answer(sock: socket.socket, timeout: float = 5) -> tuple[int | None, bytes, bool]:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok"):
                return 200, data, False
    except TimeoutError:
        return (int(data.split()[1]) if data else None), data, False
    except ConnectionResetError:
        pass
    return (int(data.split()[1]) if data else None), data, True


def error_of(answer: bytes) -> dict:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]


def test_a_normal_request_passes(address):
    status, _, _ = request(address, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", b"a" * 5000)
    assert status == 200  # a body larger than the header limit is not a header


def test_a_response_longer_than_the_timeouts_is_not_cut_and_the_connection_is_reused(address):
    with socket.create_connection(address, timeout=5) as sock:
        for path in (b"/slow", b"/"):
            time.sleep(0.5)
            sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, closed = read_answer(sock)
            assert (status, closed) == (200, False), path


def test_headers_over_the_size_limit_are_431_and_closed(address):
    status, answer, closed = request(address, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
    assert (status, closed) == (431, True)
    assert error_of(answer) == {"message": error_of(answer)["message"], "type": "invalid_request_error",
                                "param": "headers", "code": 431}


def test_a_never_ending_header_is_cut_off(address):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Big: ")
        sent = 0
        with pytest.raises(OSError):  # reset or broken pipe once the server closed it
            for _ in range(64 * 16):  # up to 64 MiB
                sock.sendall(b"a" * 65536)
                sent += 65536
        assert sent < 8 * 2**20


def test_too_many_headers_are_431(address):
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(25)) + b"\r\n"
    status, _, closed = request(address, head)
    assert (status, closed) == (431, True)


def test_slow_headers_are_408_after_the_header_timeout(address):
    with socket.create_connection(address, timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        status = None
        for _ in range(30):
            try:
                sock.sendall(b"X-A: b\r\n")
            except OSError:
                break
            time.sleep(0.2)
            status, answer, closed = read_answer(sock, timeout=0.01)
            if closed:
                break
        assert status == 408 and closed and time.monotonic() - started < 3
        assert error_of(answer)["code"] == 408


def test_an_idle_connection_is_closed(address):
    with socket.create_connection(address, timeout=5) as sock:
        started = time.monotonic()
        status, _, closed = read_answer(sock, timeout=4)
        assert closed and status is None and time.monotonic() - started < 3


def test_connections_beyond_the_limit_get_503_at_once(address):
    held = [socket.create_connection(address, timeout=5) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.2)
        with socket.create_connection(address, timeout=5) as extra:
            status, answer, closed = read_answer(extra, timeout=2)
        assert (status, closed) == (503, True) and b"retry-after: 1" in answer.lower()
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)
    assert request(address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200
