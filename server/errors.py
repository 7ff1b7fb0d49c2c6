"""The one error shape, `{"error": {"message", "type", "param"}}`, built here and nowhere else."""

from __future__ import annotations

import json


class ApiError(Exception):
    """Raised anywhere in a handler; turned into the error response by the app."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param)


def error_body(message: str, type: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param}}


def error_bytes(message: str, type: str, param: str | None = None) -> bytes:
    return json.dumps(error_body(message, type, param)).encode()


# Outcome label for vllm_requests_total, from the HTTP status an error carries.
def status_label(http_status: int) -> str:
    if http_status < 400:
        return "success"
    return {401: "unauthorized", 429: "rejected", 503: "unavailable", 499: "aborted"}.get(
        http_status, "invalid" if http_status < 500 else "error"
    )
