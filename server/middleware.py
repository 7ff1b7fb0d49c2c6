"""The outermost layer, pure ASGI (no per-chunk work on streams): request id, bearer auth, the
1 MiB body limit, the per-request record, the reference series and one JSON log line per request.

Checks on the HTTP envelope of a request (headers, sizes) belong in `_reject`; checks on the body
of a generation request belong in app.py, before admission. Prompts are logged only with
LOG_PROMPTS on.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os

from server import metrics
from server.errors import ApiError, status_label
from server.settings import MAX_BODY_BYTES

log = logging.getLogger("server.access")
OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})


class RequestMiddleware:
    def __init__(self, app, *, api_key: str | None, counted_paths: frozenset[str], log_prompts: bool = False):
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None
        self.counted_paths = counted_paths
        self.log_prompts = log_prompts

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not self._authorized(scope["path"], dict(scope["headers"])):
            return await send({"type": "websocket.close", "code": 1008})
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:200]
        if not rid:  # vLLM names its engine request after X-Request-Id: give it ours
            rid = os.urandom(16).hex()
            scope["headers"] = [*scope["headers"], (b"x-request-id", rid.encode())]
        path = scope["path"]
        record = metrics.RequestRecord(path, keep_prompt=self.log_prompts)
        token = metrics.CURRENT.set(record)
        status, done = 500, False

        async def send_with_id(message):
            nonlocal status, done
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                done = True
            await send(message)

        async def watched(receive):
            """vLLM's handlers listen for the client going away (and then cancel); note it."""
            message = await receive()
            if message["type"] == "http.disconnect" and not done:
                record.failure = "aborted"
            return message

        try:
            rejection = self._reject(path, headers)
            if rejection is None and b"content-length" not in headers:
                receive, rejection = await _buffered(receive)
            if rejection is not None:
                await rejection.send(send_with_id)
                return
            await self.app(scope, functools.partial(watched, receive), send_with_id)
        finally:
            metrics.CURRENT.reset(token)
            self._finish(scope, record, status, rid)

    def _authorized(self, path: str, headers: dict) -> bool:
        if self.expected is None or path in OPEN_PATHS:
            return True
        return hmac.compare_digest(headers.get(b"authorization", b""), self.expected)

    def _reject(self, path: str, headers: dict) -> ApiError | None:
        if not self._authorized(path, headers):
            return ApiError(401, "missing or invalid API key (Authorization: Bearer <key>)",
                            type="authentication_error", headers={"WWW-Authenticate": "Bearer"})
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return ApiError(400, "invalid Content-Length header")
            if int(length) > MAX_BODY_BYTES:
                return _too_large()
        return None

    def _finish(self, scope, record: metrics.RequestRecord, status: int, rid: str) -> None:
        outcome = _outcome(record, status)
        if record.endpoint in self.counted_paths:
            metrics.observe(record, outcome)
        fields = {"prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens,
                  "finish_reason": record.finish_reason} if record.prompt_tokens else {}
        if record.prompt is not None:
            fields["prompt"] = record.prompt
        if log.isEnabledFor(logging.INFO):  # makeRecord + handle: no caller lookup, once per request
            log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "request", None, None, extra={
                "request_id": rid, "method": scope["method"], "path": record.endpoint, "status": status,
                "outcome": outcome, "duration_s": round(record.latency(), 4), **fields}))


def _outcome(record: metrics.RequestRecord, status: int) -> str:
    """A client gone before the end is "aborted" whatever was sent; an engine failure after a 200
    (an error event in a stream) is "error"; otherwise the HTTP status says it."""
    if record.failure == "aborted":
        return "aborted"
    if status < 400 and record.failure:
        return record.failure
    return status_label(status)


def _too_large() -> ApiError:
    return ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes", param="body")


async def _buffered(receive):
    """Read a body that has no Content-Length (chunked) up to the limit, then replay it to the app:
    (receive, None), or (None, the 413) once it grows past MAX_BODY_BYTES."""
    messages, seen = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        seen += len(message.get("body", b""))
        if seen > MAX_BODY_BYTES:
            return None, _too_large()
        if not message.get("more_body"):
            break

    async def replay():
        return messages.pop(0) if messages else await receive()

    return replay, None
