"""`Kube`: the few Kubernetes API calls llmctl makes, as dicts, over an injected `kubernetes` ApiClient.

Requests go through the client's ApiClient (so kubeconfig auth, including `aws eks get-token` exec
credentials, keeps working) with raw paths resolved by discovery, not through the typed models:
those validate bodies with pydantic and reject valid manifests (`nvidia.com/gpu: 1`). Server-side
apply and prune live in `k8s/apply.py` (mixed in); reading a Node in `k8s/nodes.py`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

from llmctl.errors import LlmctlError
from llmctl.failures import KUBE_STATUS_HINTS, kube_config_failure, kube_transport_failure
from llmctl.k8s.apply import ServerSideApply

DEFAULT_TIMEOUT_S = 300.0
_CONNECT_TIMEOUT_S = 10.0

class KubeApiError(LlmctlError):
    """A Kubernetes API request failed; `status`/`reason` come from the API's Status body."""

    def __init__(self, message: str, *, status: int, reason: str = "", hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class _Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [prefix]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
        return "/".join(parts)


def _iter_lines(resp) -> Iterator[str]:
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode("utf-8", errors="replace")
    if buffer:
        yield buffer.decode("utf-8", errors="replace")


class Kube(ServerSideApply):
    def __init__(self, api_client):
        self._api = api_client
        self._resources: dict[tuple[str, str], _Resource] = {}
        self._streams: set = set()  # open watch/log responses, so close_streams() can end them
        self._cancelled: set = set()
        self._streams_lock = threading.Lock()

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> Kube:
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        try:
            return cls(config.new_client_from_config(config_file=path, context=context))
        except (ConfigException, OSError) as exc:
            raise kube_config_failure(exc, path or "the default kubeconfig (~/.kube/config or $KUBECONFIG)") from None

    # -- transport ------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._api.configuration.host

    def _call(self, method: str, path: str, query: list[tuple[str, object]] | None = None, body=None,
              content_type: str = "application/json", accept: str = "application/json",
              read_timeout: float | None = 60.0):
        """Send one request; return the raw (unread) urllib3 response of a 2xx answer."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        request = self._api.param_serialize(
            method, path, query_params=[(k, v) for k, v in (query or []) if v is not None],
            header_params={"Accept": accept, "Content-Type": content_type}, body=body,
            auth_settings=["BearerToken"])
        timeout = (_CONNECT_TIMEOUT_S, read_timeout) if read_timeout else (_CONNECT_TIMEOUT_S, None)
        try:
            resp = self._api.call_api(*request, _request_timeout=timeout)
        except (urllib3.exceptions.HTTPError, ApiException) as exc:  # no answer: refused, timed out, TLS
            raise kube_transport_failure(exc, self.host) from None
        if not 200 <= resp.status <= 299:
            raise self._error(resp.status, resp.read(), method, path)
        return resp.response

    def _json(self, method: str, path: str, **kwargs) -> dict:
        resp = self._call(method, path, **kwargs)
        try:
            return json.loads(resp.data or b"{}")
        finally:
            resp.release_conn()

    @staticmethod
    def _error(status: int, data: bytes, method: str, path: str) -> KubeApiError:
        reason, message = "", ""
        try:
            body = json.loads(data or b"{}")
            reason, message = body.get("reason", ""), body.get("message", "")
        except ValueError:
            message = (data or b"").decode("utf-8", errors="replace").strip()
        message = message or f"HTTP {status} for {method} {path}"
        return KubeApiError(f"Kubernetes API: {message}", status=status, reason=reason, hint=KUBE_STATUS_HINTS.get(status))

    # -- discovery ------------------------------------------------------------------------------

    def _discover(self, api_version: str) -> list[dict]:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            return self._json("GET", path).get("resources") or []
        except KubeApiError as exc:
            if exc.status == 404:
                return []
            raise

    def _find(self, api_version: str, kind: str) -> _Resource | None:
        for entry in self._discover(api_version):
            if entry.get("kind") == kind and "/" not in entry.get("name", ""):
                return _Resource(api_version, kind, entry["name"], bool(entry.get("namespaced")))
        return None

    def _resource(self, api_version: str, kind: str) -> _Resource:
        key = (api_version, kind)
        if key not in self._resources:
            found = self._find(api_version, kind)
            if found is None:
                raise LlmctlError(f"the cluster does not serve {kind} ({api_version})",
                                  hint="install the operator or CRD that provides it, or disable the feature that "
                                       "needs it")
            self._resources[key] = found
        return self._resources[key]

    def has_kind(self, api_version: str, kind: str) -> bool:
        """Whether the cluster serves this kind now (e.g. the Prometheus Operator's ServiceMonitor CRD)."""
        found = self._find(api_version, kind)
        if found is None:
            self._resources.pop((api_version, kind), None)
            return False
        self._resources[(api_version, kind)] = found
        return True

    def server_version(self) -> str:
        return self._json("GET", "/version").get("gitVersion", "")

    # -- reading --------------------------------------------------------------------------------

    def _namespace_of(self, res: _Resource, obj_or_ns) -> str | None:
        if not res.namespaced:
            return None
        if isinstance(obj_or_ns, dict):
            return (obj_or_ns.get("metadata") or {}).get("namespace") or "default"
        return obj_or_ns or "default"

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        res = self._resource(api_version, kind)
        try:
            return self._json("GET", res.path(self._namespace_of(res, namespace), name))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict]:
        res = self._resource(api_version, kind)
        doc = self._json("GET", res.path(namespace if res.namespaced else None),
                         query=[("labelSelector", label_selector), ("fieldSelector", field_selector)])
        items = doc.get("items") or []
        for item in items:  # list items of built-in kinds come without apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def events(self, namespace: str, involved_name: str | None = None) -> list[dict]:
        """Events in `namespace` (optionally about one object), oldest first."""
        selector = f"involvedObject.name={involved_name}" if involved_name else None
        events = self.list("v1", "Event", namespace, field_selector=selector)

        def when(ev: dict) -> tuple:
            ts = ev.get("lastTimestamp") or ev.get("eventTime") or ev["metadata"].get("creationTimestamp") or ""
            return ts, int(ev["metadata"].get("resourceVersion") or 0)

        return sorted(events, key=when)

    # -- writing (apply and prune: k8s/apply.py) ------------------------------------------------

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None, wait: bool = False,
               timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
        """Delete (dependents in the background); False when it was already absent. `wait` blocks until gone."""
        res = self._resource(api_version, kind)
        ns = self._namespace_of(res, namespace)
        try:
            self._json("DELETE", res.path(ns, name), body={"propagationPolicy": "Background"},
                       query=[("propagationPolicy", "Background")])
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        if wait:
            self._wait_gone(api_version, kind, name, ns, timeout_s)
        return True

    def _wait_gone(self, api_version: str, kind: str, name: str, namespace: str | None, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        current = self.get(api_version, kind, name, namespace)
        if current is None:
            return
        rv = current["metadata"].get("resourceVersion")
        for type_, _ in self.watch(api_version, kind, namespace, field_selector=f"metadata.name={name}",
                                   timeout_s=max(deadline - time.monotonic(), 0.1), resource_version=rv):
            if type_ == "DELETED":
                return
        if self.get(api_version, kind, name, namespace) is not None:
            raise LlmctlError(f"timed out after {timeout_s:.0f}s waiting for {kind} {name} to be deleted",
                              hint="a finalizer may be holding it; check `kubectl get "
                                   f"{kind.lower()} {name} -o yaml`")

    # -- streams --------------------------------------------------------------------------------

    def close_streams(self) -> None:
        """End every watch and log stream this client has open, from any thread: their iterators stop
        quietly (a consumer thread blocked on the next event wakes up)."""
        with self._streams_lock:
            streams = list(self._streams)
            self._cancelled.update(id(r) for r in streams)
        for resp in streams:
            resp.shutdown()

    def _open_stream(self, path: str, query: list, read_timeout: float | None, accept: str = "application/json"):
        resp = self._call("GET", path, query=query, accept=accept, read_timeout=read_timeout)
        with self._streams_lock:
            self._streams.add(resp)
        return resp

    def _close_stream(self, resp) -> bool:
        """Release a stream; True when close_streams() cancelled it."""
        with self._streams_lock:
            self._streams.discard(resp)
            cancelled = id(resp) in self._cancelled
            self._cancelled.discard(id(resp))
        resp.close()  # close before release: a half-read stream must not go back to the pool
        resp.release_conn()
        return cancelled

    def _lines(self, resp) -> Iterator[str]:
        """Lines of a stream; a stream cut by close_streams() (or the server going away) just ends."""
        import urllib3

        try:
            yield from _iter_lines(resp)
        except (urllib3.exceptions.HTTPError, OSError):
            return

    def watch(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None,
              field_selector: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
              resource_version: str | None = None) -> Iterator[tuple[str, dict]]:
        """(type, object) events until `timeout_s` passes; starts with ADDED for what exists when no
        `resource_version` is given, and reconnects transparently when the server ends a stream early."""
        res = self._resource(api_version, kind)
        path = res.path(namespace if res.namespaced else None)
        deadline = time.monotonic() + timeout_s
        rv = resource_version
        while (remaining := deadline - time.monotonic()) > 0:
            resp = self._open_stream(path, [
                ("watch", "true"), ("labelSelector", label_selector), ("fieldSelector", field_selector),
                ("resourceVersion", rv), ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", max(int(remaining + 0.999), 1))], read_timeout=remaining + 10)
            expired = cancelled = False
            try:
                for line in self._lines(resp):
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    type_, obj = event.get("type"), event.get("object") or {}
                    if type_ == "ERROR":
                        if obj.get("code") == 410:  # our resourceVersion is too old: start over from now
                            expired = True
                            break
                        raise KubeApiError(f"Kubernetes API: watch failed: {obj.get('message')}",
                                           status=obj.get("code") or 500, reason=obj.get("reason", ""))
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if type_ == "BOOKMARK":
                        continue
                    yield type_, obj
                    if time.monotonic() >= deadline:
                        return
            finally:
                cancelled = self._close_stream(resp)
            if cancelled:
                return
            if expired:
                rv = None

    def pod_logs(self, name: str, namespace: str, container: str | None = None, follow: bool = False,
                 previous: bool = False, tail_lines: int | None = None) -> Iterator[str]:
        """Log lines of one container; with `follow`, until the container stops (or the caller stops reading)."""
        res = self._resource("v1", "Pod")
        resp = self._open_stream(res.path(namespace, name) + "/log", [
            ("container", container), ("follow", "true" if follow else None),
            ("previous", "true" if previous else None), ("tailLines", tail_lines)],
            read_timeout=None if follow else 60.0, accept="*/*")
        try:
            yield from self._lines(resp)
        finally:
            self._close_stream(resp)
