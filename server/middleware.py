"""Pure ASGI middleware (no per-chunk overhead on streams): request id, auth, body limit,
the request counter and one JSON log line per request. Prompts are never logged unless
LOG_PROMPTS is on."""

from __future__ import annotations

import hmac
import logging
import time
import uuid

from server import metrics
from server.errors import ApiError, error_bytes, status_label
from server.settings import MAX_BODY_BYTES

log = logging.getLogger("server.access")
OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})
COUNTED_PATHS = frozenset({"/generate", "/v1/completions", "/v1/chat/completions"})


class RequestMiddleware:
    def __init__(self, app, api_key: str | None):
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:200] or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        path = scope["path"]
        try:
            rejection = self._reject(path, headers)
            if rejection is not None:
                await _send_error(send_with_id, rejection)
                return
            await self.app(scope, _limited(receive), send_with_id)
        finally:
            self._finish(scope, path, status, state, started)

    def _reject(self, path: str, headers: dict) -> ApiError | None:
        if self.expected is not None and path not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                return ApiError(401, "missing or invalid API key (Authorization: Bearer <key>)",
                                type="authentication_error", headers={"WWW-Authenticate": "Bearer"})
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return ApiError(400, "invalid Content-Length header")
            if int(length) > MAX_BODY_BYTES:
                return _too_large()
        return None

    def _finish(self, scope, path: str, status: int, state: dict, started: float) -> None:
        outcome = state.get("outcome") or status_label(status)
        if path in COUNTED_PATHS:
            metrics.REQUESTS.labels(outcome, path).inc()
        fields = {k: state[k] for k in ("prompt_tokens", "completion_tokens", "finish_reason", "prompt") if k in state}
        log.info("request", extra={"request_id": state["request_id"], "method": scope["method"], "path": path,
                                   "status": status, "outcome": outcome,
                                   "duration_s": round(time.perf_counter() - started, 4), **fields})


def _too_large() -> ApiError:
    return ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes", param="body")


def _limited(receive):
    """Count body bytes as they arrive (chunked uploads carry no Content-Length)."""
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise _too_large()
        return message

    return wrapped


async def _send_error(send, exc: ApiError) -> None:
    body = error_bytes(exc.message, exc.type, exc.param)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
