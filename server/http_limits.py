"""Limits on the HTTP connection itself, before any request reaches the app: a hostile client
without the key must not be able to hold memory or sockets.

uvicorn's httptools protocol (the parser `vllm serve` runs too) has no header-size limit, no
header count limit, no header timeout and no idle timeout on a fresh connection: a client sending
a never-ending header grows the server's memory without bound. This wraps it (the parser stays
httptools, the fastest uvicorn has) with:

- MAX_HEADER_BYTES: the request line and headers; beyond it a 431 and the connection is closed,
  so a connection never buffers more than that plus one socket read;
- MAX_HEADERS: the number of header lines (431);
- HEADER_TIMEOUT_S: from the first byte of a request to the end of its headers (slow headers,
  "slowloris"): a 408 and the connection is closed;
- IDLE_TIMEOUT_S: a connection that sends nothing, fresh or between requests (uvicorn's keep-alive
  timeout, which uvicorn arms only after a first response), is closed;
- MAX_CONNECTIONS: open connections; one more is answered 503 and closed at once.

Every refusal is the one error shape (errors.py) with `Connection: close`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.errors import error_body


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    idle_timeout_s: int = 5
    max_connections: int = 1024
    retry_after_s: int = 1


def limits_from(settings) -> HttpLimits:
    """The limits the server's Settings ask for."""
    return HttpLimits(max_header_bytes=settings.max_header_bytes, max_headers=settings.max_headers,
                      header_timeout_s=settings.header_timeout_s, idle_timeout_s=settings.idle_timeout_s,
                      max_connections=settings.max_connections, retry_after_s=settings.retry_after_s)


def protocol_class(limits: HttpLimits) -> type[asyncio.Protocol]:
    """The uvicorn `http` protocol class enforcing `limits` (uvicorn.Config(http=...))."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: HttpLimits = HttpLimits()

    def connection_made(self, transport) -> None:
        too_many = len(self.connections) >= self.limits.max_connections
        super().connection_made(transport)
        self._head_bytes = 0  # bytes received since the current request began, until its headers end
        self._head_started = 0.0
        self._head_open = False  # between a request's first byte and the end of its headers
        self._in_head = True  # no headers since the last request ended: what arrives is a head
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        if too_many:
            self._refuse(503, "too many open connections; retry later", "service_unavailable",
                         {"Retry-After": str(self.limits.retry_after_s)})
            return
        # Idle before the first request too (uvicorn arms this only after a response).
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and not self._refused and self._head_bytes > self.limits.max_header_bytes:
            self._too_large()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a refusal raised inside a parser callback lands here: already answered
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = self._head_open = True
        self._head_started = self.loop.time()
        if self._head_timer is None:  # one timer per connection, re-armed only while a head is slow
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._check_head_time)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes or len(self.headers) > self.limits.max_headers:
            self._too_large()
            raise _Refused  # stops the parser; httptools reports it as a parser error (send_400_response)
        self._in_head = self._head_open = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what follows on this connection is the next request's head

    def _too_large(self) -> None:
        self._refuse(431, f"request headers are over the limit ({self.limits.max_headers} headers, "
                          f"{self.limits.max_header_bytes} bytes)", "invalid_request_error", {}, param="headers")

    def _check_head_time(self) -> None:
        self._head_timer = None
        if not self._head_open or self._refused:
            return
        left = self._head_started + self.limits.header_timeout_s - self.loop.time()
        if left > 0:  # a later request's head: its own deadline
            self._head_timer = self.loop.call_later(left, self._check_head_time)
            return
        self._refuse(408, f"request headers not received within {self.limits.header_timeout_s:g} s",
                     "invalid_request_error", {}, param="headers")

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, message: str, type_: str, headers: dict[str, str], param: str | None = None) -> None:
        """Answer in the error shape and close the connection (nothing more is read from it)."""
        self._refused = True
        self._cancel_head_timer()
        self._unset_keepalive_if_required()
        if self.transport.is_closing():
            return
        body = json.dumps(error_body(message, type_, status, param)).encode()
        lines = [f"HTTP/1.1 {status} {_REASONS[status]}", "content-type: application/json",
                 f"content-length: {len(body)}", "connection: close", *(f"{k}: {v}" for k, v in headers.items())]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.transport.close()


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a refused request."""


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}
