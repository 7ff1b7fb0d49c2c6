"""The errors llmctl's own layers send (401, 413, 429, 503), in vLLM's error shape
`{"error": {"message", "type", "param", "code"}}`, so a client sees one shape from every route."""

from __future__ import annotations

import json


class ApiError(Exception):
    """An error response from our layers (middleware, admission, readiness)."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.message, self.type, self.status, self.param)

    async def send(self, send) -> None:
        """Send this error as the whole HTTP response."""
        body = json.dumps(self.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def error_body(message: str, type: str, code: int, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def status_label(http_status: int) -> str:
    """Outcome label for vllm_requests_total, from the HTTP status."""
    if http_status < 400:
        return "success"
    return {401: "unauthorized", 429: "rejected", 503: "unavailable"}.get(
        http_status, "invalid" if http_status < 500 else "error"
    )
