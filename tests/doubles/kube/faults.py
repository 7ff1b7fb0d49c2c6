"""Planted failures for the Kubernetes API double: the answers a real API server gives under stress.

`kube.faults.append(KubeFault(500))` answers the first mutating request (POST, PUT, PATCH, DELETE,
not a dry run) with a Status 500 InternalError before it touches the store; `nth` picks a later
one, `method` / `path` (a regular expression searched in the path) narrow the match. 429 comes
with `Retry-After: 1` (TooManyRequests), 409 is a Conflict ("the object has been modified").
`kube.on_mutation = fn(record)` runs once a mutating request has been applied and before its
answer is written (the convergence tests SIGKILL the CLI there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .store import ApiError

MUTATING = ("POST", "PUT", "PATCH", "DELETE")
_REASONS = {
    500: ("InternalError", "Internal error occurred: etcdserver: request timed out"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
    409: ("Conflict", "Operation cannot be fulfilled: the object has been modified; "
                      "please apply your changes to the latest version and try again"),
}


def is_mutating(method: str, query: dict) -> bool:
    return method in MUTATING and "dryRun" not in query


@dataclass
class KubeFault:
    status: int
    nth: int = 1
    method: str | None = None
    path: str | None = None
    seen: int = 0
    fired: bool = False

    def take(self, method: str, path: str, query: dict) -> ApiError | None:
        if self.fired or not is_mutating(method, query):
            return None
        if (self.method and method != self.method) or (self.path and not re.search(self.path, path)):
            return None
        self.seen += 1
        if self.seen != self.nth:
            return None
        self.fired = True
        reason, message = _REASONS[self.status]
        return ApiError(self.status, reason, message, {"retryAfterSeconds": 1} if self.status == 429 else None)
