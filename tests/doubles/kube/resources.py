"""The kinds the Kubernetes double serves, and the discovery documents built from them."""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    """One served resource: what discovery advertises for it and how paths address it."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    has_status: bool = True  # a status subresource: writes to the main resource keep status
    verbs: tuple[str, ...] = tuple(ALL_VERBS)
    crd: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def discovery_entries(self) -> list[dict]:
        entry = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        entries = [entry]
        if self.has_status:
            entries.append({"name": f"{self.plural}/status", "singularName": "", "namespaced": self.namespaced,
                            "kind": self.kind, "verbs": ["get", "patch", "update"]})
        return entries


def _core(kind, plural, namespaced=True, short=(), has_status=True):
    return ResourceType("", "v1", kind, plural, namespaced, tuple(short), has_status)


BUILTIN_TYPES: list[ResourceType] = [
    _core("Namespace", "namespaces", namespaced=False, short=("ns",)),
    _core("Node", "nodes", namespaced=False, short=("no",)),
    _core("Pod", "pods", short=("po",)),
    _core("Service", "services", short=("svc",)),
    _core("ServiceAccount", "serviceaccounts", short=("sa",), has_status=False),
    _core("Secret", "secrets", has_status=False),
    _core("ConfigMap", "configmaps", short=("cm",), has_status=False),
    _core("Event", "events", short=("ev",), has_status=False),
    _core("PersistentVolumeClaim", "persistentvolumeclaims", short=("pvc",)),
    _core("Endpoints", "endpoints", short=("ep",), has_status=False),
    ResourceType("apps", "v1", "Deployment", "deployments", True, ("deploy",)),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",)),
    ResourceType("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",)),
    ResourceType("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",)),
    ResourceType("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",)),
    ResourceType("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",)),
    ResourceType("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",), has_status=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", True, has_status=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True, has_status=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False, has_status=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False,
                 has_status=False),
    ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
                 ("crd", "crds")),
]


@dataclass
class Registry:
    """Served kinds, built-in plus those CRDs add; discovery is computed from it on each request."""

    types: list[ResourceType] = field(default_factory=lambda: list(BUILTIN_TYPES))

    def by_plural(self, group: str, version: str, plural: str) -> ResourceType | None:
        for rt in self.types:
            if (rt.group, rt.version, rt.plural) == (group, version, plural):
                return rt
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for rt in self.types:
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        return None

    def kinds_of_crd(self, crd: dict) -> list[ResourceType]:
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        return [
            ResourceType(
                group=spec.get("group", ""),
                version=v["name"],
                kind=names.get("kind", ""),
                plural=names.get("plural", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames", []) or []),
                has_status="status" in (v.get("subresources") or {}),
                crd=True,
            )
            for v in spec.get("versions", [])
            if v.get("served", True)
        ]

    def add_crd(self, crd: dict) -> None:
        self.remove_crd(crd)
        self.types.extend(self.kinds_of_crd(crd))

    def remove_crd(self, crd: dict) -> None:
        spec = crd.get("spec", {})
        group, plural = spec.get("group"), spec.get("names", {}).get("plural")
        self.types = [rt for rt in self.types if not (rt.crd and rt.group == group and rt.plural == plural)]

    # -- discovery documents -------------------------------------------------------------------

    def group_versions(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rt in self.types:
            if rt.group and rt.version not in out.setdefault(rt.group, []):
                out[rt.group].append(rt.version)
        return out

    def api_group_list(self) -> dict:
        groups = []
        for group, versions in self.group_versions().items():
            gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_group(self, group: str) -> dict | None:
        versions = self.group_versions().get(group)
        if not versions:
            return None
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def resource_list(self, group: str, version: str) -> dict | None:
        rts = [rt for rt in self.types if rt.group == group and rt.version == version]
        if not rts:
            return None
        resources = [e for rt in rts for e in rt.discovery_entries()]
        if not group:
            resources += [
                {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
                {"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                 "version": "v1", "kind": "Eviction", "verbs": ["create"]},
            ]
        if group == "apps":
            for plural, kind in (("deployments", "Deployment"), ("replicasets", "ReplicaSet"),
                                 ("statefulsets", "StatefulSet")):
                resources.append({"name": f"{plural}/scale", "singularName": "", "namespaced": True,
                                  "group": "autoscaling", "version": "v1", "kind": "Scale",
                                  "verbs": ["get", "patch", "update"]})
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
