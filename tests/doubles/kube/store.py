"""Object storage with resource versions, API-server write semantics and a watch history.

All methods are called with the cluster lock held (the HTTP handlers and the controllers take it).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .resources import Registry, ResourceType

HISTORY_LIMIT = 20000
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error the API server answers with a Status body."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def qualified(rt: ResourceType) -> str:
    """`deployments.apps` / `pods`: how the API server names a resource in messages."""
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def kind_qualified(rt: ResourceType) -> str:
    return f"{rt.kind}.{rt.group}" if rt.group else rt.kind


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(rt)} "{name}" not found',
                    {"name": name, "group": rt.group, "kind": rt.plural})


def invalid(rt: ResourceType, name: str, field: str, message: str, reason: str = "FieldValueInvalid") -> ApiError:
    return ApiError(422, "Invalid", f'{kind_qualified(rt)} "{name}" is invalid: {field}: {message}',
                    {"name": name, "group": rt.group, "kind": rt.kind,
                     "causes": [{"reason": reason, "message": message, "field": field}]})


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch (also used for strategic-merge patches)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _remove_dropped(target: dict, previous: dict, current: dict) -> None:
    """Remove fields a manager applied before and no longer applies (what SSA ownership does)."""
    for key, old in previous.items():
        if key not in current:
            target.pop(key, None)
        elif isinstance(old, dict) and isinstance(current[key], dict) and isinstance(target.get(key), dict):
            _remove_dropped(target[key], old, current[key])


def _apply_merge(target: dict, applied: dict) -> dict:
    result = copy.deepcopy(target)
    for key, value in applied.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _apply_merge(result[key], value)
        elif value is None:
            result.pop(key, None)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _content(obj: dict) -> dict:
    """The object without the bookkeeping a no-op write must not change."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata", {})
    for key in ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid"):
        meta.pop(key, None)
    return out


_QUANTITY_MAPS = {"limits", "requests", "capacity", "allocatable", "hard", "used"}


def normalize_quantities(obj: object, parent_key: str = "") -> None:
    """Quantities come back as strings from a real API server (`nvidia.com/gpu: 1` is stored as "1")."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if parent_key in _QUANTITY_MAPS and isinstance(value, (int, float)) and not isinstance(value, bool):
                obj[key] = str(value)
            else:
                normalize_quantities(value, key)
    elif isinstance(obj, list):
        for item in obj:
            normalize_quantities(item, parent_key if parent_key in ("containers", "initContainers") else "")


def _leaves(obj: object, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """Paths to the non-dict values of an object (lists count as one value, as atomic lists do)."""
    if isinstance(obj, dict):
        out = []
        for key, value in obj.items():
            out += _leaves(value, (*prefix, key))
        return out
    return [(prefix, obj)]


def _drop_path(obj: dict, parts: tuple[str, ...]) -> None:
    for part in parts[:-1]:
        obj = obj.get(part)
        if not isinstance(obj, dict):
            return
    obj.pop(parts[-1], None)


@dataclass
class HistoryEntry:
    rv: int
    type: str
    rt: ResourceType
    obj: dict
    old: dict | None


class Store:
    def __init__(self, registry: Registry, lock: threading.RLock):
        self.registry = registry
        self.cond = threading.Condition(lock)
        self.objects: dict[tuple[str, str, str, str], dict] = {}
        self.history: list[HistoryEntry] = []
        self.history_limit = HISTORY_LIMIT  # watches from before the oldest kept entry get 410 Expired
        self.rv = 1
        self.applied: dict[tuple, dict] = {}  # (object key, manager) -> last applied configuration
        self.orphaned_uids: set[str] = set()
        self.listeners: list[Callable[[str, ResourceType, dict, dict | None], None]] = []

    # -- reading ---------------------------------------------------------------------------------

    @staticmethod
    def key(rt: ResourceType, namespace: str | None, name: str) -> tuple[str, str, str, str]:
        return (rt.group, rt.plural, namespace or "" if rt.namespaced else "", name)

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict | None:
        return self.objects.get(self.key(rt, namespace, name))

    def list(self, rt: ResourceType, namespace: str | None = None,
             predicate: Callable[[dict], bool] | None = None) -> list[dict]:
        out = []
        for (group, plural, ns, _), obj in self.objects.items():
            if (group, plural) != (rt.group, rt.plural):
                continue
            if rt.namespaced and namespace and ns != namespace:
                continue
            if predicate is None or predicate(obj):
                out.append(obj)
        return sorted(out, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def all_in_namespace(self, namespace: str) -> list[tuple[ResourceType, dict]]:
        out = []
        for rt in list(self.registry.types):
            if rt.namespaced:
                out += [(rt, o) for o in self.list(rt, namespace)]
        return out

    # -- committing ------------------------------------------------------------------------------

    def _commit(self, type_: str, rt: ResourceType, obj: dict, old: dict | None) -> dict:
        self.rv += 1
        k = self.key(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if type_ == "DELETED":
            self.objects.pop(k, None)
            for ak in [ak for ak in self.applied if ak[0] == k]:
                del self.applied[ak]
            obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if type_ != "DELETED":
            self.objects[k] = obj
        self.history.append(HistoryEntry(self.rv, type_, rt, copy.deepcopy(obj), copy.deepcopy(old)))
        if len(self.history) > self.history_limit:
            del self.history[: len(self.history) - self.history_limit]
        for listener in list(self.listeners):
            listener(type_, rt, obj, old)
        self.cond.notify_all()
        return obj

    def oldest_rv(self) -> int:
        return self.history[0].rv if self.history else self.rv

    # -- validation ------------------------------------------------------------------------------

    def _check_namespace(self, rt: ResourceType, namespace: str | None, creating: bool) -> None:
        if not rt.namespaced:
            return
        ns_rt = self.registry.by_kind("v1", "Namespace")
        ns = self.get(ns_rt, None, namespace or "")
        if ns is None:
            raise not_found(ns_rt, namespace or "")
        if creating and ns["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden",
                           f'{rt.plural} "" is forbidden: unable to create new content in namespace '
                           f"{namespace} because it is being terminated",
                           {"name": "", "kind": rt.plural})

    def _validate(self, rt: ResourceType, obj: dict, old: dict | None) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        if not name:
            raise invalid(rt, "", "metadata.name", "Required value: name or generateName is required",
                          "FieldValueRequired")
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            raise invalid(rt, name, "metadata.name",
                          f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                          "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                          "character")
        for key in ("labels", "annotations"):
            for v in (meta.get(key) or {}).values():
                if not isinstance(v, str):
                    raise ApiError(400, "BadRequest",
                                   f"json: cannot unmarshal {type(v).__name__} into Go struct field "
                                   f"ObjectMeta.metadata.{key} of type string")
        if rt.kind in ("Deployment", "DaemonSet", "ReplicaSet", "StatefulSet"):
            spec = obj.get("spec") or {}
            selector = spec.get("selector")
            if not selector:
                raise invalid(rt, name, "spec.selector", "Required value", "FieldValueRequired")
            labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            from .selectors import match_label_selector_object

            if not match_label_selector_object(selector, labels):
                raise invalid(rt, name, "spec.template.metadata.labels",
                              f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`")
            if old is not None and old.get("spec", {}).get("selector") != selector:
                raise invalid(rt, name, "spec.selector",
                              f"Invalid value: {json.dumps(selector)}: field is immutable")

    def _check_type(self, rt: ResourceType, body: dict) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        if body.get("kind") and body.get("kind") != rt.kind or body.get("apiVersion") and \
                body.get("apiVersion") != rt.api_version:
            raise ApiError(400, "BadRequest",
                           f"the API version in the data ({body.get('apiVersion')}) does not match the expected "
                           f"API version ({rt.api_version})")

    # -- writes ----------------------------------------------------------------------------------

    def _manager_entry(self, rt: ResourceType, manager: str, operation: str, subresource: str | None) -> dict:
        entry = {"manager": manager, "operation": operation, "apiVersion": rt.api_version,
                 "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": {}}
        if subresource:
            entry["subresource"] = subresource
        return entry

    def _with_manager(self, obj: dict, entry: dict) -> None:
        fields = [f for f in obj["metadata"].get("managedFields") or []
                  if (f["manager"], f["operation"], f.get("subresource")) !=
                  (entry["manager"], entry["operation"], entry.get("subresource"))]
        obj["metadata"]["managedFields"] = fields + [entry]

    def _has_manager(self, obj: dict, entry: dict) -> bool:
        return any((f["manager"], f["operation"], f.get("subresource")) ==
                   (entry["manager"], entry["operation"], entry.get("subresource"))
                   for f in obj["metadata"].get("managedFields") or [])

    def create(self, rt: ResourceType, namespace: str | None, body: dict, manager: str = "unknown",
               dry_run: bool = False, operation: str = "Update") -> dict:
        self._check_type(rt, body)
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if rt.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                                                  "namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        self._validate(rt, obj, None)
        normalize_quantities(obj)
        self._check_namespace(rt, namespace, creating=True)
        if self.get(rt, namespace, meta["name"]) is not None:
            raise ApiError(409, "AlreadyExists", f'{qualified(rt)} "{meta["name"]}" already exists',
                           {"name": meta["name"], "group": rt.group, "kind": rt.plural})
        for key in ("resourceVersion", "deletionTimestamp", "managedFields"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rt.has_status or rt.crd:
            meta["generation"] = 1
        if rt.has_status:
            obj.pop("status", None)
        self._defaults(rt, obj)
        self._with_manager(obj, self._manager_entry(rt, manager, operation, None))
        if dry_run:
            return obj
        if operation == "Apply":
            self.applied[(self.key(rt, namespace, meta["name"]), manager)] = copy.deepcopy(body)
        return self._commit("ADDED", rt, obj, None)

    def _defaults(self, rt: ResourceType, obj: dict) -> None:
        """What admission and defaulting add on create."""
        if rt.kind == "Namespace":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif rt.kind == "Pod":
            obj["status"] = {"phase": "Pending", "qosClass": "Burstable"}
            obj.setdefault("spec", {}).setdefault("restartPolicy", "Always")
        elif rt.kind == "Deployment":
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("strategy", {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("revisionHistoryLimit", 10)
        elif rt.kind == "Service":
            self._default_service(obj, None)
            obj["status"] = {"loadBalancer": {}}

    def _default_service(self, obj: dict, old: dict | None) -> None:
        """Defaulting the API server runs on every write (so a re-apply of the same manifest is a no-op)."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        if not spec.get("clusterIP"):
            n = len(self.objects) % 250 + 1
            spec["clusterIP"] = f"10.100.{n // 250}.{n}"
            spec["clusterIPs"] = [spec["clusterIP"]]
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in (old or {}).get("spec", {}).get("ports")
                     or []}
        for i, port in enumerate(spec.get("ports") or []):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] in ("LoadBalancer", "NodePort") and "nodePort" not in port:
                previous = old_ports.get((port.get("port"), port["protocol"]), {}).get("nodePort")
                port["nodePort"] = previous or 30000 + (len(self.objects) * 7 + i) % 2767

    def update(self, rt: ResourceType, namespace: str | None, name: str, new: dict, manager: str = "unknown",
               dry_run: bool = False, subresource: str | None = None, operation: str = "Update",
               check_rv: str | None = None, applied: dict | None = None) -> dict:
        """Write the full desired object (after patching/merging); a no-op write changes nothing."""
        old = self.get(rt, namespace, name)
        if old is None:
            raise not_found(rt, name)
        if check_rv and check_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict",
                           f'Operation cannot be fulfilled on {qualified(rt)} "{name}": the object has been '
                           "modified; please apply your changes to the latest version and try again",
                           {"name": name, "group": rt.group, "kind": rt.plural})
        obj = copy.deepcopy(new)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", f"the name of the object ({meta.get('name')}) does not match the "
                                              f"name on the URL ({name})")
        meta["name"] = name
        if rt.namespaced:
            meta["namespace"] = namespace
        for key in ("uid", "creationTimestamp", "deletionTimestamp", "generation"):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
            else:
                meta.pop(key, None)
        meta["managedFields"] = copy.deepcopy(old["metadata"].get("managedFields") or [])
        if subresource == "status":
            obj = {**copy.deepcopy(old), "status": obj.get("status", {})}
            meta = obj["metadata"]
        elif rt.has_status:
            if "status" in old:
                obj["status"] = copy.deepcopy(old["status"])
            else:
                obj.pop("status", None)
        self._validate(rt, obj, old)
        normalize_quantities(obj)
        if rt.kind == "Service":
            self._default_service(obj, old)
        entry = self._manager_entry(rt, manager, operation, subresource)
        if _content(obj) == _content(old) and self._has_manager(old, entry):
            return old
        if (rt.has_status or rt.crd) and subresource is None:
            spec_old = {k: v for k, v in old.items() if k not in ("metadata", "status")}
            spec_new = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
            if spec_old != spec_new:
                meta["generation"] = old["metadata"].get("generation", 1) + 1
        self._with_manager(obj, entry)
        if dry_run:
            return obj
        if applied is not None:
            self.applied[(self.key(rt, namespace, name), manager)] = copy.deepcopy(applied)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._commit("DELETED", rt, obj, old)
        return self._commit("MODIFIED", rt, obj, old)

    def apply(self, rt: ResourceType, namespace: str | None, name: str, body: dict, manager: str,
              force: bool, dry_run: bool = False, subresource: str | None = None) -> tuple[dict, bool]:
        """Server-side apply: create a missing object, merge into an existing one. Returns (obj, created)."""
        self._check_type(rt, body)
        if not body.get("apiVersion") or not body.get("kind"):
            raise ApiError(400, "BadRequest", "apiVersion and kind must be set in an apply request")
        if not manager:
            raise ApiError(400, "BadRequest", "PATCH, application/apply-patch+yaml requests must supply a "
                                              "fieldManager parameter")
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise ApiError(400, "BadRequest", f"the name of the object ({meta['name']}) does not match the name "
                                              f"on the URL ({name})")
        old = self.get(rt, namespace, name)
        if old is None:
            if subresource:
                raise not_found(rt, name)
            created = copy.deepcopy(body)
            created.setdefault("metadata", {})["name"] = name
            return self.create(rt, namespace, created, manager, dry_run, operation="Apply"), True
        applied = copy.deepcopy(body)
        if rt.has_status and subresource is None:
            applied.pop("status", None)
        conflicts = self._conflicts(rt, namespace, name, manager, applied)
        if conflicts and not force:
            listed = "\n".join(f'- conflict with "{m}": .{".".join(p)}' for m, p in conflicts)
            raise ApiError(409, "Conflict", f"Apply failed with {len(conflicts)} conflict"
                                            f"{'s' if len(conflicts) > 1 else ''}: {listed}",
                           {"name": name, "group": rt.group, "kind": rt.plural,
                            "causes": [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}"',
                                        "field": "." + ".".join(p)} for m, p in conflicts]})
        if conflicts and not dry_run:  # forcing takes the fields over: the other managers no longer own them
            for other, path in conflicts:
                _drop_path(self.applied[(self.key(rt, namespace, name), other)], path)
        result = copy.deepcopy(old)
        previous = self.applied.get((self.key(rt, namespace, name), manager))
        if previous:
            _remove_dropped(result, {k: v for k, v in previous.items() if k != "status" or not rt.has_status},
                            applied)
        result = _apply_merge(result, applied)
        return self.update(rt, namespace, name, result, manager, dry_run, subresource, operation="Apply",
                           applied=applied), False

    def _conflicts(self, rt: ResourceType, namespace: str | None, name: str, manager: str,
                   applied: dict) -> list[tuple[str, tuple[str, ...]]]:
        """(manager, field) pairs where this apply sets a different value than another apply manager set."""
        key = self.key(rt, namespace, name)
        mine = dict(_leaves(applied))
        conflicts = []
        for (obj_key, other), config in self.applied.items():
            if obj_key != key or other == manager:
                continue
            for path, value in _leaves(config):
                if path in mine and mine[path] != value and path[0] not in ("apiVersion", "kind"):
                    conflicts.append((other, path))
        return conflicts

    def delete(self, rt: ResourceType, namespace: str | None, name: str, propagation: str | None = None,
               dry_run: bool = False, grace_period: int | None = None) -> dict:
        """Delete, or mark for deletion: objects with finalizers, namespaces, and pods bound to a node (which
        terminate gracefully: the kubelet removes them after `KubeDouble.pod_termination_delay`)."""
        obj = self.get(rt, namespace, name)
        if obj is None:
            raise not_found(rt, name)
        if dry_run:
            return obj
        if propagation == "Orphan":
            self.orphaned_uids.add(obj["metadata"]["uid"])
        meta = obj["metadata"]
        graceful = rt.kind == "Pod" and bool((obj.get("spec") or {}).get("nodeName")) and grace_period != 0
        if meta.get("deletionTimestamp"):
            if rt.kind == "Pod" and grace_period == 0 and not meta.get("finalizers"):
                return self._commit("DELETED", rt, obj, obj)  # force: don't wait for the kubelet
            return obj
        if meta.get("finalizers") or rt.kind == "Namespace" or graceful:
            marked = copy.deepcopy(obj)
            marked["metadata"]["deletionTimestamp"] = now_rfc3339()
            marked["metadata"]["deletionGracePeriodSeconds"] = (
                grace_period if grace_period is not None else obj["spec"].get("terminationGracePeriodSeconds", 30)
            ) if graceful else 0
            if rt.kind == "Namespace":
                marked["status"] = {"phase": "Terminating"}
            return self._commit("MODIFIED", rt, marked, obj)
        return self._commit("DELETED", rt, obj, obj)

    def remove(self, rt: ResourceType, obj: dict) -> None:
        """Final removal (controllers: after finalizers, namespace content cleanup)."""
        if self.get(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"]) is not None:
            self._commit("DELETED", rt, obj, obj)

    def put_status(self, rt: ResourceType, obj: dict, status: dict) -> dict:
        """Controllers write status directly (like a controller's UpdateStatus); skipped when unchanged."""
        current = self.get(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if current is None or current.get("status") == status:
            return current
        new = copy.deepcopy(current)
        new["status"] = copy.deepcopy(status)
        return self._commit("MODIFIED", rt, new, current)

    def put(self, rt: ResourceType, obj: dict) -> dict:
        """Controllers replace an object wholesale (spec fields they own, e.g. nodeName, replicas)."""
        current = self.get(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if current is not None and _content(current) == _content(obj):
            return current
        return self._commit("MODIFIED" if current else "ADDED", rt, copy.deepcopy(obj), current)
