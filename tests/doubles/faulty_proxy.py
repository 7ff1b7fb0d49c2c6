"""A fault-injecting HTTP proxy in front of the moto server.

The CLI's `AWS_ENDPOINT_URL` points here; every request is forwarded to moto unchanged, and each
one llmctl sends (its User-Agent carries `llmctl`) is recorded as an `AwsCall`: the service (from
the SigV4 credential scope), the operation (from `X-Amz-Target`, the query protocol's `Action`, or
method and path for the REST services S3 and EKS) and whether it mutates. A `Fault` picks the
`nth` llmctl call that matches it and answers it the way AWS does when things go wrong:

- `"5xx"`: the request reaches moto (the change is made) and the reply is lost: the client gets
  500 InternalError (S3: InternalError, query: InternalFailure, JSON: InternalFailure), so its
  retry meets the change already made;
- `"throttle"`: the request is refused before it reaches moto: 400 ThrottlingException (JSON),
  400 Throttling (query), 400 RequestLimitExceeded (EC2), 503 SlowDown (S3), 429 (EKS);
- `"kill"`: the request reaches moto, then `on_kill()` runs before any reply is written (the
  convergence tests SIGKILL the CLI there: the change is made, the CLI never learns of it).

Requests from other clients (the test's own boto3, the fake eksctl) pass through unrecorded.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")
_READ_PREFIXES = ("Describe", "Get", "List", "Head", "BatchGet", "Check", "Search", "Lookup")
_JSON_THROTTLE = {"__type": "ThrottlingException", "message": "Rate exceeded"}
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}


@dataclass
class AwsCall:
    service: str
    operation: str
    method: str
    path: str
    mutating: bool
    status: int = 0
    fault: str | None = None

    @property
    def label(self) -> str:
        return f"{self.service}:{self.operation}"


@dataclass
class Fault:
    """Answer the `nth` (1-based) llmctl call for which `match(call)` holds with `kind`."""

    kind: str  # "5xx" | "throttle" | "kill"
    match: Callable[[AwsCall], bool]
    nth: int = 1
    seen: int = 0
    fired: bool = False

    def take(self, call: AwsCall) -> bool:
        if self.fired or not self.match(call):
            return False
        self.seen += 1
        if self.seen == self.nth:
            self.fired = True
            return True
        return False


def is_mutating(call: AwsCall) -> bool:
    return call.mutating


def _operation(method: str, path: str, headers, body: bytes, service: str) -> tuple[str, bool]:
    target = headers.get("X-Amz-Target")
    if target:
        op = target.rsplit(".", 1)[-1]
        return op, not op.startswith(_READ_PREFIXES)
    ctype = headers.get("Content-Type") or ""
    if "x-www-form-urlencoded" in ctype and body:
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        if action:
            return action, not action.startswith(_READ_PREFIXES)
    url = urlsplit(path)
    query = "?" + "&".join(sorted(k for k in parse_qs(url.query, keep_blank_values=True) if k != "x-id")) if url.query else ""
    shape = url.path
    if service == "s3":  # path-style: /bucket[/key]
        shape = "/{bucket}/{key}" if "/" in url.path.strip("/") else "/{bucket}"
    return f"{method} {shape}{query}", method in ("PUT", "POST", "DELETE", "PATCH")


def _error(call: AwsCall, kind: str, headers) -> tuple[int, bytes, str, dict]:
    request_id = str(uuid.uuid4())
    json_protocol = bool(headers.get("X-Amz-Target"))
    if call.service == "s3":
        code, status = ("SlowDown", 503) if kind == "throttle" else ("InternalError", 500)
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{code}</Message><RequestId>{request_id}</RequestId></Error>"
        return status, body.encode(), "application/xml", {}
    if json_protocol:
        obj = _JSON_THROTTLE if kind == "throttle" else {"__type": "InternalFailure", "message": "internal error"}
        return (400 if kind == "throttle" else 500), json.dumps(obj).encode(), "application/x-amz-json-1.1", {}
    if call.service == "eks":  # REST-JSON: the error type rides in a header
        error_type = "ThrottlingException" if kind == "throttle" else "ServerException"
        return (429 if kind == "throttle" else 500), json.dumps({"message": error_type}).encode(), "application/json", {
            "x-amzn-ErrorType": error_type}
    if call.service == "ec2":
        code = "RequestLimitExceeded" if kind == "throttle" else "InternalError"
        body = f"<Response><Errors><Error><Code>{code}</Code><Message>{code}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        return (503 if kind == "throttle" else 500), body.encode(), "text/xml", {}
    code = "Throttling" if kind == "throttle" else "InternalFailure"
    kind_word = "Sender" if kind == "throttle" else "Receiver"
    body = (f"<ErrorResponse><Error><Type>{kind_word}</Type><Code>{code}</Code><Message>Rate exceeded</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>")
    return (400 if kind == "throttle" else 500), body.encode(), "text/xml", {}


@dataclass
class FaultyProxy:
    upstream: str  # http://127.0.0.1:<moto port>
    calls: list[AwsCall] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    on_kill: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def mutating(self) -> list[AwsCall]:
        with self.lock:
            return [c for c in self.calls if c.mutating]

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.faults.clear()
            self.on_kill = None

    def start(self) -> FaultyProxy:
        proxy = self
        target = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                return None

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                call, fault = proxy._classify(self.command, self.path, self.headers, body)
                if fault == "throttle":
                    return self._reply(*_error(call, fault, self.headers), call=call)
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if fault == "kill" and proxy.on_kill is not None:
                    proxy.on_kill()
                if fault in ("5xx", "kill"):
                    return self._reply(*_error(call, "5xx", self.headers), call=call)
                extra = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_HEADERS}
                self._reply(resp.status, data, None, extra, call=call)

            def _reply(self, status: int, data: bytes, ctype: str | None, extra: dict, call: AwsCall | None) -> None:
                if call is not None:
                    call.status = status
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    if ctype:
                        self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client was killed: nobody to answer
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _classify(self, method: str, path: str, headers, body: bytes) -> tuple[AwsCall, str | None]:
        scope = _SCOPE.search(headers.get("Authorization") or "")
        service = scope.group(1) if scope else "?"
        op, mutating = _operation(method, path, headers, body, service)
        call = AwsCall(service, op, method, path, mutating)
        if "llmctl" not in (headers.get("User-Agent") or ""):
            return call, None
        with self.lock:
            self.calls.append(call)
            for fault in self.faults:
                if fault.take(call):
                    call.fault = fault.kind
                    return call, fault.kind
        return call, None
