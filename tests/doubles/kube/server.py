"""The HTTP side of the Kubernetes double: routing, Status errors, watch and log streaming (port-forward:
`portforward.py`)."""

from __future__ import annotations

import copy
import json
import select
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml

from .portforward import serve_portforward
from .faults import is_mutating
from .resources import ResourceType
from .selectors import SelectorError, parse_field_selector, parse_label_selector
from .store import ApiError, HistoryEntry, not_found

MAX_WATCH_SECONDS = 600


@dataclass
class RequestRecord:
    """One request the double answered: what tests inspect to check how a client talked to it."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    field_manager: str | None
    status: int
    body: object = None

    @property
    def dry_run(self) -> bool:
        return "dryRun" in self.query


class KubeHTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    allow_reuse_address = True

    def __init__(self, cluster):
        self.cluster = cluster
        self.stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)

    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _truthy(value: str | None) -> bool:
    return value in ("true", "1", "True")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections end on their own; stop() closes them at once
    server: KubeHTTPServer

    def log_message(self, format, *args):
        pass

    # -- plumbing -------------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK adds 40 ms a request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def cluster(self):
        return self.server.cluster

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self, status: int) -> None:
        """Log the request before answering it, so a client that got the answer also finds the record."""
        if self._pending is not None:
            self._pending.status = status
            self.cluster.record_request(self._pending)
            record, self._pending = self._pending, None
            if status < 400 and is_mutating(record.method, record.query) and self.cluster.on_mutation:
                self.cluster.on_mutation(record)

    def _send(self, code: int, body: bytes, content_type: str = "application/json", headers: dict | None = None) -> None:
        self._status = code
        self._record(code)
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, code: int, obj: object, headers: dict | None = None) -> None:
        self._status = code
        self._send(code, json.dumps(obj).encode(), headers=headers)

    def _start_chunked(self, content_type: str) -> None:
        self._status = 200
        self._record(200)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunked(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
        return False

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        raw = self._read_body()
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip() or None
        self._status = 0
        self._pending = RequestRecord(self.command, url.path, query, content_type, query.get("fieldManager"), 0)
        body = None
        try:
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    try:
                        body = yaml.safe_load(raw)
                    except yaml.YAMLError as exc:
                        raise ApiError(400, "BadRequest", f"error decoding YAML: {exc}") from None
            self._pending.body = body
            if self.headers.get("Authorization") != f"Bearer {self.cluster.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            planted = self.cluster.planted_fault(self.command, url.path, query)
            if planted is not None:
                raise planted
            self._route(url.path.rstrip("/") or "/", query, body, content_type)
        except ApiError as err:
            self._send_json(err.code, err.status(), {"Retry-After": "1"} if err.code == 429 else None)
        except SelectorError as err:
            self._send_json(400, ApiError(400, "BadRequest", str(err)).status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a bug in the double: answer 500 and let the fixture fail the test
            self.cluster.errors.append(traceback.format_exc())
            if not self._status:
                self._send_json(500, ApiError(500, "InternalError", "the Kubernetes double failed").status())
        finally:
            self._record(self._status)

    # -- routing --------------------------------------------------------------------------------

    def _route(self, path: str, query: dict, body, content_type) -> None:
        c = self.cluster
        parts = [p for p in path.split("/") if p] or [""]
        with c.lock:
            registry = c.registry
            if path == "/version":
                return self._send_json(200, c.version_info())
            if path in ("/healthz", "/readyz", "/livez"):
                self._status = 200
                return self._send(200, b"ok", "text/plain")
            if path == "/api":
                return self._send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": c.url.split("//")[1]}]})
            if path == "/apis":
                return self._send_json(200, registry.api_group_list())
            if parts[0] == "api" and len(parts) >= 2:
                group, version, rest = "", parts[1], parts[2:]
            elif parts[0] == "apis" and len(parts) == 2:
                doc = registry.api_group(parts[1])
                if doc is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return self._send_json(200, doc)
            elif parts[0] == "apis" and len(parts) >= 3:
                group, version, rest = parts[1], parts[2], parts[3:]
            else:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if not rest:
                doc = registry.resource_list(group, version)
                if doc is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return self._send_json(200, doc)
            namespace = None
            if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
                namespace, rest = rest[1], rest[2:]
            rt = registry.by_plural(group, version, rest[0])
            if rt is None or (namespace and not rt.namespaced):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            name = rest[1] if len(rest) > 1 else None
            sub = rest[2] if len(rest) > 2 else None
        if sub == "log" and rt.kind == "Pod" and self.command == "GET":
            return self._pod_log(namespace, name, query)
        if sub == "portforward" and rt.kind == "Pod" and self.command in ("GET", "POST"):
            return serve_portforward(self, namespace, name, query)
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if name is None and self.command == "GET" and _truthy(query.get("watch")):
            return self._watch(rt, namespace, query)
        with c.lock:
            self._resource(rt, namespace, name, sub, query, body, content_type)

    def _resource(self, rt: ResourceType, namespace, name, sub, query, body, content_type) -> None:
        store = self.cluster.store
        dry_run = "dryRun" in query
        manager = query.get("fieldManager")
        method = self.command
        if name is None:
            if method == "GET":
                return self._send_json(200, self._list(rt, namespace, query))
            if method == "POST":
                obj = store.create(rt, namespace, body or {}, manager or _default_manager(self), dry_run)
                return self._send_json(201, obj)
            if method == "DELETE":
                label_ok = parse_label_selector(query.get("labelSelector"))
                field_ok = parse_field_selector(query.get("fieldSelector"))
                gone = [store.delete(rt, o["metadata"].get("namespace"), o["metadata"]["name"], dry_run=dry_run)
                        for o in store.list(rt, namespace)
                        if label_ok(o["metadata"].get("labels") or {}) and field_ok(o)]
                return self._send_json(200, {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                                             "metadata": {}, "items": gone})
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                    "resource")
        if method == "GET":
            obj = store.get(rt, namespace, name)
            if obj is None:
                raise not_found(rt, name)
            return self._send_json(200, obj)
        if method == "PUT":
            rv = (body or {}).get("metadata", {}).get("resourceVersion")
            obj = store.update(rt, namespace, name, body or {}, manager or _default_manager(self), dry_run, sub,
                               check_rv=rv)
            return self._send_json(200, obj)
        if method == "PATCH":
            if content_type == "application/apply-patch+yaml":
                obj, created = store.apply(rt, namespace, name, body or {}, manager, _truthy(query.get("force")),
                                           dry_run, sub)
                return self._send_json(201 if created else 200, obj)
            current = store.get(rt, namespace, name)
            if current is None:
                raise not_found(rt, name)
            if content_type == "application/json-patch+json":
                patched = _json_patch(current, body)
            elif content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                from .store import merge_patch

                patched = merge_patch(current, body or {})
            else:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, "
                               "application/apply-patch+yaml")
            obj = store.update(rt, namespace, name, patched, manager or _default_manager(self), dry_run, sub)
            return self._send_json(200, obj)
        if method == "DELETE":
            options = body if isinstance(body, dict) else {}
            propagation = query.get("propagationPolicy") or options.get("propagationPolicy")
            if _truthy(query.get("orphanDependents")) or options.get("orphanDependents"):
                propagation = "Orphan"
            grace = query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
            obj = store.delete(rt, namespace, name, propagation, dry_run,
                               grace_period=int(grace) if grace is not None else None)
            return self._send_json(200, obj)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _matcher(self, query: dict):
        label_ok = parse_label_selector(query.get("labelSelector"))
        field_ok = parse_field_selector(query.get("fieldSelector"))
        return lambda o: label_ok(o["metadata"].get("labels") or {}) and field_ok(o)

    def _list(self, rt: ResourceType, namespace, query) -> dict:
        items = [copy.deepcopy(o) for o in self.cluster.store.list(rt, namespace, self._matcher(query))]
        if not rt.crd:  # the API server leaves kind/apiVersion off the items of built-in lists
            for item in items:
                item.pop("kind", None)
                item.pop("apiVersion", None)
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(self.cluster.store.rv)}, "items": items}

    # -- watch ----------------------------------------------------------------------------------

    def _watch(self, rt: ResourceType, namespace, query) -> None:
        c, store = self.cluster, self.cluster.store
        matches = self._matcher(query)
        timeout = min(float(query.get("timeoutSeconds") or MAX_WATCH_SECONDS), MAX_WATCH_SECONDS)
        deadline = time.monotonic() + timeout
        since = query.get("resourceVersion") or ""
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        lines: list[dict] = []
        with c.lock:
            if since in ("", "0"):
                pos = store.rv
                lines = [{"type": "ADDED", "object": copy.deepcopy(o)} for o in store.list(rt, namespace, matches)]
            else:
                try:
                    pos = int(since)
                except ValueError:
                    raise ApiError(400, "BadRequest", f'invalid resource version "{since}"') from None
                if pos < store.oldest_rv() - 1:
                    lines = [_expired(pos, store.oldest_rv())]
        self._start_chunked("application/json")
        try:
            for event in lines:
                self._chunk(json.dumps(event).encode() + b"\n")
            if lines and lines[0]["type"] == "ERROR":
                return self._end_chunked()
            last_bookmark = time.monotonic()
            while not self.server.stopping.is_set() and time.monotonic() < deadline:
                with c.lock:
                    entries = _entries_after(store.history, pos)
                    if not entries:
                        store.cond.wait(timeout=min(0.2, max(deadline - time.monotonic(), 0.001)))
                        entries = _entries_after(store.history, pos)
                    events = []
                    for entry in entries:
                        pos = entry.rv
                        event = _watch_event(entry, rt, namespace, matches)
                        if event:
                            events.append(event)
                    current_rv = store.rv
                for event in events:
                    self._chunk(json.dumps(event).encode() + b"\n")
                if bookmarks and time.monotonic() - last_bookmark > 1:
                    last_bookmark = time.monotonic()
                    self._chunk(json.dumps({"type": "BOOKMARK", "object": {
                        "kind": rt.kind, "apiVersion": rt.api_version,
                        "metadata": {"resourceVersion": str(current_rv)}}}).encode() + b"\n")
                if not events and self._client_gone():
                    self.close_connection = True
                    return
            self._end_chunked()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    # -- logs -----------------------------------------------------------------------------------

    def _pod_log(self, namespace: str, name: str, query: dict) -> None:
        c = self.cluster
        with c.lock:
            pod = c.store.get(c.rt("v1", "Pod"), namespace, name)
            if pod is None:
                raise not_found(c.rt("v1", "Pod"), name)
            container = query.get("container") or _default_container(pod)
            statuses = {s["name"]: s for s in (pod.get("status", {}).get("initContainerStatuses") or []) +
                        (pod.get("status", {}).get("containerStatuses") or [])}
            names = [x["name"] for x in (pod["spec"].get("initContainers") or []) + pod["spec"].get("containers", [])]
            if container not in names:
                raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
            previous = _truthy(query.get("previous"))
            status = statuses.get(container) or {}
            if previous and not status.get("restartCount"):
                raise ApiError(400, "BadRequest", f'previous terminated container "{container}" in pod "{name}" '
                                                  "not found")
            run = c.logs.run(namespace, name, container, previous)
            if run is None:
                reason = (status.get("state", {}).get("waiting") or {}).get("reason", "ContainerCreating")
                raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: '
                                                  f"{reason}")
            lines = list(run["lines"])
            sent = len(lines)
        if query.get("sinceSeconds"):
            cutoff = time.time() - float(query["sinceSeconds"])
            lines = [entry for entry in lines if entry[0] >= cutoff]
        if query.get("tailLines"):
            tail = int(query["tailLines"])
            lines = lines[-tail:] if tail > 0 else []
        stamps = _truthy(query.get("timestamps"))

        def render(entries) -> bytes:
            return "".join(f"{ts} {line}\n" if stamps else f"{line}\n" for _, ts, line in entries).encode()

        if not _truthy(query.get("follow")):
            self._status = 200
            return self._send(200, render(lines), "text/plain")
        self._start_chunked("text/plain")
        try:
            if lines:
                self._chunk(render(lines))
            while not self.server.stopping.is_set():
                with c.lock:
                    new = run["lines"][sent:]
                    if not new and not run["done"]:
                        c.store.cond.wait(timeout=0.2)
                        new = run["lines"][sent:]
                    sent += len(new)
                    done = run["done"] and len(run["lines"]) == sent
                if new:
                    self._chunk(render(new))
                if done or (not new and self._client_gone()):
                    break
            self._end_chunked()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True


def _default_manager(handler: Handler) -> str:
    agent = handler.headers.get("User-Agent") or "unknown"
    return agent.split("/")[0]


def _default_container(pod: dict) -> str:
    annotated = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    if annotated:
        return annotated
    containers = [c["name"] for c in pod["spec"].get("containers") or []]
    if len(containers) == 1:
        return containers[0]
    inits = [c["name"] for c in pod["spec"].get("initContainers") or []]
    raise ApiError(400, "BadRequest", f"a container name must be specified for pod {pod['metadata']['name']}, "
                                      f"choose one of: [{' '.join(containers)}] or one of the init containers: "
                                      f"[{' '.join(inits)}]")


def _entries_after(history: list[HistoryEntry], pos: int) -> list[HistoryEntry]:
    out = []
    for entry in reversed(history):
        if entry.rv <= pos:
            break
        out.append(entry)
    out.reverse()
    return out


def _watch_event(entry: HistoryEntry, rt: ResourceType, namespace, matches) -> dict | None:
    if (entry.rt.group, entry.rt.plural) != (rt.group, rt.plural):
        return None
    if rt.namespaced and namespace and entry.obj["metadata"].get("namespace") != namespace:
        return None
    now_ok = matches(entry.obj)
    if entry.type == "MODIFIED":
        was_ok = entry.old is not None and matches(entry.old)
        if now_ok and not was_ok:
            return {"type": "ADDED", "object": entry.obj}
        if was_ok and not now_ok:
            return {"type": "DELETED", "object": entry.obj}
    return {"type": entry.type, "object": entry.obj} if now_ok else None


def _expired(pos: int, oldest: int) -> dict:
    return {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                        "message": f"too old resource version: {pos} ({oldest})",
                                        "reason": "Expired", "code": 410}}


def _json_patch(doc: dict, ops) -> dict:
    """RFC 6902 add/remove/replace/test (what clients send as application/json-patch+json)."""
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op.get("path", "").split("/")[1:]]
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1] if parts else None
        kind = op.get("op")
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, op.get("value"))
            elif kind == "remove":
                parent.pop(index)
            elif kind == "replace":
                parent[index] = op.get("value")
            elif kind == "test" and parent[index] != op.get("value"):
                raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                                               f"test failed at {op.get('path')}")
        else:
            if kind in ("add", "replace"):
                parent[last] = op.get("value")
            elif kind == "remove":
                if last not in parent:
                    raise ApiError(422, "Invalid", f"the server rejected our request: unable to remove nonexistent "
                                                   f"key: {last}")
                del parent[last]
            elif kind == "test" and parent.get(last) != op.get("value"):
                raise ApiError(422, "Invalid", f"the server rejected our request: test failed at {op.get('path')}")
    return doc
