"""Server-side apply in one dependency order, and the prune that follows it.

`deploy`, `monitoring up` and the device plugin install all write objects through here:
`apply()` one object, `apply_all()` many in `APPLY_ORDER`, `apply_and_prune()` then deletes what
carries the selector's labels but is no longer rendered, so a second run reports everything
`unchanged`. Mixed into `Kube` (`k8s/client.py`), whose reads and deletes it uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass

from llmctl.config.names import FIELD_MANAGER
from llmctl.errors import LlmctlError
from llmctl.outcome import Outcome

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"

# What later objects depend on goes first: a CRD before its objects, a Namespace before what it
# holds, a NetworkPolicy before the pods it fences, the Service before the Deployment (the load
# balancer is provisioned while the model downloads). Kinds not listed (PDB, HPA, ScaledObject, ServiceMonitor, ...) come last.
APPLY_ORDER = {
    "CustomResourceDefinition": 0,
    "Namespace": 1,
    "ServiceAccount": 2, "Secret": 2, "ConfigMap": 2, "PersistentVolumeClaim": 2,
    "ClusterRole": 3, "Role": 3, "ClusterRoleBinding": 3, "RoleBinding": 3, "NetworkPolicy": 3,
    "Service": 4,
    "Deployment": 5, "DaemonSet": 5, "StatefulSet": 5, "ReplicaSet": 5, "Job": 5, "CronJob": 5,
}
_OTHERS = 6


@dataclass(frozen=True)
class ApplyResult:
    kind: str
    namespace: str | None
    name: str
    action: Outcome  # created | updated | unchanged, or deleted by the prune (JSON field name kept: `action`)

    @property
    def outcome(self) -> Outcome:
        return self.action

    @property
    def subject(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"

    def to_dict(self) -> dict:
        return asdict(self)


def _comparable(obj: dict) -> dict:
    """An object without what changes on every write or without any write (for dry-run comparisons)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for key in ("resourceVersion", "managedFields", "generation"):
        meta.pop(key, None)
    out["metadata"] = meta
    return out


def _rank(obj: dict) -> int:
    return APPLY_ORDER.get(obj.get("kind", ""), _OTHERS)


class ServerSideApply:
    """Kube's writing half (needs `_resource`, `_namespace_of`, `_json`, `get`, `list`, `delete`, `has_kind`)."""

    def apply(self, obj: dict, field_manager: str = FIELD_MANAGER, dry_run: bool = False) -> ApplyResult:
        """Server-side apply (conflicts forced): created, updated, or unchanged when nothing moved."""
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        name = (obj.get("metadata") or {}).get("name")
        if not (api_version and kind and name):
            raise LlmctlError("cannot apply an object without apiVersion, kind and metadata.name",
                              hint=f"got apiVersion={api_version!r} kind={kind!r} name={name!r}")
        res = self._resource(api_version, kind)
        namespace = self._namespace_of(res, obj)
        if res.namespaced and not (obj.get("metadata") or {}).get("namespace"):
            obj = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
        before = self.get(api_version, kind, name, namespace)
        after = self._json("PATCH", res.path(namespace, name), body=obj, content_type=APPLY_CONTENT_TYPE,
                           query=[("fieldManager", field_manager), ("force", "true"),
                                  ("dryRun", "All" if dry_run else None)])
        if before is None:
            action: Outcome = "created"
        elif dry_run:
            action = "unchanged" if _comparable(before) == _comparable(after) else "updated"
        else:
            same = after.get("metadata", {}).get("resourceVersion") == before["metadata"].get("resourceVersion")
            action = "unchanged" if same else "updated"
        return ApplyResult(kind, namespace, name, action)

    def apply_all(self, objs: Iterable[dict], field_manager: str = FIELD_MANAGER, dry_run: bool = False,
                  crd_timeout_s: float = 30.0,
                  report: Callable[[ApplyResult], None] = lambda r: None) -> list[ApplyResult]:
        """Apply in `APPLY_ORDER`; waits for applied CRDs to be served before objects of their kinds."""
        results: list[ApplyResult] = []
        new_namespaces: set[str] = set()
        new_kinds: set[tuple[str, str]] = set()
        crd_kinds: list[tuple[str, str]] = []
        for obj in sorted(objs, key=_rank):
            meta = obj.get("metadata") or {}
            if crd_kinds and _rank(obj) > 0:
                self._wait_for_kinds(crd_kinds, crd_timeout_s, dry_run)
                crd_kinds = []
            if dry_run and (meta.get("namespace") in new_namespaces or
                            (obj.get("apiVersion"), obj.get("kind")) in new_kinds):
                # the server cannot dry-run into a namespace, or a kind, that does not exist yet
                result = ApplyResult(obj["kind"], meta.get("namespace"), meta["name"], "created")
            else:
                result = self.apply(obj, field_manager=field_manager, dry_run=dry_run)
            results.append(result)
            report(result)
            if obj.get("kind") == "Namespace" and result.action == "created":
                new_namespaces.add(result.name)
            if obj.get("kind") == "CustomResourceDefinition":
                spec = obj.get("spec") or {}
                kinds = [(f"{spec.get('group')}/{v['name']}", (spec.get("names") or {}).get("kind"))
                         for v in spec.get("versions") or [] if v.get("served", True)]
                crd_kinds += kinds
                if dry_run and result.action == "created":
                    new_kinds.update(kinds)
        return results

    def apply_and_prune(self, docs: list[dict], selector: str, kinds: Iterable[tuple[str, str]],
                        namespaces: Iterable[str], dry_run: bool = False, *,
                        keep: Collection[tuple[str, str | None, str]] = (),
                        field_manager: str = FIELD_MANAGER,
                        report: Callable[[ApplyResult], None] = lambda r: None) -> list[ApplyResult]:
        """`apply_all(docs)`, then delete each object of `kinds` in `namespaces` that carries `selector`'s
        labels but is neither in `docs` nor in `keep` ((kind, namespace, name) triples). `kinds` is the
        deletion order (dependents first); a kind the cluster does not serve has nothing to prune. A dry
        run deletes nothing and reports what it would delete."""
        results = self.apply_all(docs, field_manager=field_manager, dry_run=dry_run, report=report)
        results += self.prune(selector, kinds, namespaces, keep={*keep, *_keys(docs)}, dry_run=dry_run,
                              report=report)
        return results

    def prune(self, selector: str, kinds: Iterable[tuple[str, str]], namespaces: Iterable[str], *,
              keep: Collection[tuple[str, str | None, str]] = (), dry_run: bool = False,
              report: Callable[[ApplyResult], None] = lambda r: None) -> list[ApplyResult]:
        """Delete what `selector` finds of `kinds` in `namespaces`, except `keep` (`monitoring down`: all)."""
        results = []
        namespaces = sorted(set(namespaces))
        for api_version, kind in kinds:
            if not self._served(api_version, kind):
                continue
            for namespace in namespaces:
                for obj in self.list(api_version, kind, namespace=namespace, label_selector=selector):
                    name = obj["metadata"]["name"]
                    if (kind, namespace, name) in keep:
                        continue
                    if not dry_run:
                        self.delete(api_version, kind, name, namespace)
                    result = ApplyResult(kind, namespace, name, "deleted")
                    results.append(result)
                    report(result)
        return results

    def _served(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self._resources or self.has_kind(api_version, kind)

    def _wait_for_kinds(self, kinds: list[tuple[str, str]], timeout_s: float, dry_run: bool) -> None:
        if dry_run:
            return
        deadline = time.monotonic() + timeout_s
        for api_version, kind in kinds:
            while not self.has_kind(api_version, kind):
                if time.monotonic() > deadline:
                    raise LlmctlError(f"the cluster did not start serving {kind} ({api_version}) within "
                                      f"{timeout_s:.0f}s after its CRD was applied",
                                      hint="check the CRD's status conditions with `kubectl get crd -o yaml`")
                time.sleep(0.05)


def _keys(docs: Iterable[dict]) -> set[tuple[str, str | None, str]]:
    return {(d["kind"], (d.get("metadata") or {}).get("namespace"), d["metadata"]["name"]) for d in docs}
