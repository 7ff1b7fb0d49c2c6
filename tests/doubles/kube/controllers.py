"""What kube-controller-manager, the scheduler and the cloud controller do, reduced to what llmctl observes.

Listeners run inside `Store._commit` with the lock held; they only queue work on the cluster's worker
(`cluster.later`), so one change never recurses into another.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections import Counter

from kubernetes.utils.quantity import parse_quantity

from .resources import ResourceType
from .store import ApiError, now_rfc3339

LB_FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet")


def is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def owner_uid(obj: dict) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref["uid"]
    return None


def owner_ref(owner: dict) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _tolerates(tolerations: list[dict], taint: dict) -> bool:
    for tol in tolerations or []:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator", "Equal") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def pod_requests(pod_spec: dict) -> dict[str, float]:
    total: Counter = Counter()
    for c in pod_spec.get("containers") or []:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for name, qty in merged.items():
            total[name] += float(parse_quantity(str(qty)))
    return dict(total)


class Controllers:
    def __init__(self, cluster):
        self.c = cluster

    # -- dispatch ---------------------------------------------------------------------------------

    def on_change(self, type_: str, rt: ResourceType, obj: dict, old: dict | None) -> None:
        kind, meta = rt.kind, obj["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        later = self.c.later
        if kind == "CustomResourceDefinition":
            if type_ == "DELETED":
                self.c.registry.remove_crd(obj)
                later(0, lambda: self._drop_custom_objects(obj))
            else:
                self.c.registry.add_crd(obj)
                later(0, lambda: self._establish_crd(name))
        if type_ == "DELETED":
            later(0.005, lambda: self._collect_garbage(meta["uid"]))
        if kind == "Deployment" and type_ != "DELETED":
            later(0, lambda: self.reconcile_deployment(ns, name))
        elif kind == "ReplicaSet":
            if type_ != "DELETED":
                later(0, lambda: self.reconcile_replicaset(ns, name))
            later(0, lambda: self.deployment_status_of(obj))
        elif kind == "DaemonSet" and type_ != "DELETED":
            later(0, lambda: self.reconcile_daemonset(ns, name))
        elif kind == "StatefulSet" and type_ != "DELETED":
            later(0, lambda: self.reconcile_statefulset(ns, name))
        elif kind == "Node":
            later(0, self.reconcile_all_daemonsets)
            later(0, self.c.retry_unscheduled)
        elif kind == "Pod":
            if type_ == "ADDED":
                self.c.start_pod(obj)
            if type_ == "MODIFIED" and meta.get("deletionTimestamp") and \
                    not (old or {}).get("metadata", {}).get("deletionTimestamp"):
                later(0, lambda: self._stop_pod(ns, name, meta["uid"]))
                later(self.c.pod_termination_delay, lambda: self._finish_pod(ns, name, meta["uid"]))
            if type_ == "DELETED":
                self.c.logs.drop_pod(ns, name)
                later(0, self.c.retry_unscheduled)
            later(0, lambda: self.owner_status_of(obj))
        elif kind == "Service" and type_ != "DELETED":
            self._service_changed(obj)
        elif kind == "Namespace" and type_ == "MODIFIED" and meta.get("deletionTimestamp") and \
                not (old or {}).get("metadata", {}).get("deletionTimestamp"):
            later(self.c.namespace_delete_delay, lambda: self._finish_namespace(name))

    # -- garbage collection, namespaces, CRDs -------------------------------------------------------

    def _collect_garbage(self, uid: str) -> None:
        store = self.c.store
        orphan = uid in store.orphaned_uids
        for rt in list(self.c.registry.types):
            for obj in store.list(rt):
                refs = obj["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                if orphan:
                    kept = copy.deepcopy(obj)
                    kept["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    store.put(rt, kept)
                else:
                    store.delete(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        store.orphaned_uids.discard(uid)

    def _stop_pod(self, ns: str, name: str, uid: str) -> None:
        """A terminating pod stops being ready (endpoints drop it) while its containers shut down."""
        rt = self.c.rt("v1", "Pod")
        pod = self.c.store.get(rt, ns, name)
        if pod is None or pod["metadata"]["uid"] != uid:
            return
        status = copy.deepcopy(pod.get("status") or {})
        for cond in status.get("conditions") or []:
            if cond["type"] in ("Ready", "ContainersReady") and cond["status"] == "True":
                cond.update(status="False", reason="ContainersNotReady", lastTransitionTime=now_rfc3339())
        for cs in status.get("containerStatuses") or []:
            cs["ready"] = False
        self.c.store.put_status(rt, pod, status)

    def _finish_pod(self, ns: str, name: str, uid: str) -> None:
        """The kubelet has stopped the containers of a terminating pod: the pod object goes away."""
        rt = self.c.rt("v1", "Pod")
        pod = self.c.store.get(rt, ns, name)
        if pod is not None and pod["metadata"]["uid"] == uid and not pod["metadata"].get("finalizers"):
            self.c.store.remove(rt, pod)

    def _finish_namespace(self, name: str) -> None:
        store = self.c.store
        ns_rt = self.c.rt("v1", "Namespace")
        ns = store.get(ns_rt, None, name)
        if ns is None:
            return
        contents = store.all_in_namespace(name)
        for rt, obj in contents:
            if not obj["metadata"].get("deletionTimestamp"):
                store.delete(rt, name, obj["metadata"]["name"])
        if store.all_in_namespace(name):  # objects waiting on finalizers (load balancers): check again
            self.c.later(0.02, lambda: self._finish_namespace(name))
            return
        store.remove(ns_rt, ns)

    def _establish_crd(self, name: str) -> None:
        rt = self.c.rt("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        crd = self.c.store.get(rt, None, name)
        if crd is None:
            return
        ts = now_rfc3339()
        names = crd["spec"].get("names", {})
        accepted = {"kind": names.get("kind"), "plural": names.get("plural"),
                    "singular": names.get("singular", names.get("kind", "").lower()),
                    "listKind": names.get("listKind", f"{names.get('kind')}List")}
        status = {"acceptedNames": accepted, "storedVersions": [v["name"] for v in crd["spec"].get("versions", [])
                                                                if v.get("storage")],
                  "conditions": [
                      {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                       "message": "no conflicts found", "lastTransitionTime": ts},
                      {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                       "message": "the initial names have been accepted", "lastTransitionTime": ts}]}
        self.c.store.put_status(rt, crd, status)

    def _drop_custom_objects(self, crd: dict) -> None:
        store = self.c.store
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        for k in [k for k in store.objects if k[:2] == (group, plural)]:
            obj = store.objects[k]
            stub = ResourceType(group, obj["apiVersion"].split("/")[-1], obj["kind"], plural, bool(k[2]), crd=True)
            store._commit("DELETED", stub, obj, obj)

    # -- workloads ------------------------------------------------------------------------------

    def _owned(self, rt: ResourceType, ns: str, uid: str) -> list[dict]:
        return [o for o in self.c.store.list(rt, ns) if owner_uid(o) == uid]

    def _live_pods(self, ns: str, uid: str) -> list[dict]:
        return [p for p in self._owned(self.c.rt("v1", "Pod"), ns, uid)
                if not p["metadata"].get("deletionTimestamp")]

    def reconcile_deployment(self, ns: str, name: str) -> None:
        """Roll the pod template out through ReplicaSets the way the strategy says: `Recreate` starts new pods
        only once every old pod is gone; `RollingUpdate` surges new pods first and scales the old ReplicaSet
        down as new pods become ready (so with one GPU node it waits, FailedScheduling, like a real one)."""
        store, rs_rt, pod_rt = self.c.store, self.c.rt("apps/v1", "ReplicaSet"), self.c.rt("v1", "Pod")
        dep = store.get(self.c.rt("apps/v1", "Deployment"), ns, name)
        if dep is None or dep["metadata"].get("deletionTimestamp"):
            return
        template = copy.deepcopy(dep["spec"].get("template") or {})
        pth = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        rs_name = f"{name}-{pth}"
        replicas = dep["spec"].get("replicas", 1)
        owned = self._owned(rs_rt, ns, dep["metadata"]["uid"])
        old_rses = sorted((rs for rs in owned if rs["metadata"]["name"] != rs_name),
                          key=lambda rs: int(rs["metadata"].get("annotations", {}).get(
                              "deployment.kubernetes.io/revision", "0")))
        current = store.get(rs_rt, ns, rs_name)
        recreate = (dep["spec"].get("strategy") or {}).get("type") == "Recreate"
        if recreate:
            old_targets = {rs["metadata"]["name"]: 0 for rs in old_rses}
            old_pods_left = any(self._owned(pod_rt, ns, rs["metadata"]["uid"]) for rs in old_rses)
            new_replicas = 0 if old_pods_left else replicas
        else:
            new_ready = sum(1 for p in self._live_pods(ns, current["metadata"]["uid"]) if is_ready(p)) \
                if current else 0
            keep = max(0, replicas - new_ready)
            old_targets = {rs["metadata"]["name"]: 0 for rs in old_rses}
            if old_rses:
                newest = old_rses[-1]["metadata"]["name"]
                old_targets[newest] = min(keep, max((rs["spec"].get("replicas", 0) for rs in old_rses), default=0))
            new_replicas = replicas
        for rs in old_rses:
            target, have = old_targets[rs["metadata"]["name"]], rs["spec"].get("replicas", 0)
            if have != target:
                self._scale(dep, rs, target)
        if current is None:
            template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pth
            selector = copy.deepcopy(dep["spec"]["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = pth
            revision = str(len(owned) + 1)
            store.create(rs_rt, ns, {
                "metadata": {"name": rs_name, "namespace": ns, "labels": template["metadata"]["labels"],
                             "annotations": {"deployment.kubernetes.io/revision": revision,
                                             "deployment.kubernetes.io/desired-replicas": str(replicas)},
                             "ownerReferences": [owner_ref(dep)]},
                "spec": {"replicas": new_replicas, "selector": selector, "template": template}},
                manager="kube-controller-manager")
            if new_replicas:
                self.c.record_event(dep, "Normal", "ScalingReplicaSet",
                                    f"Scaled up replica set {rs_name} from 0 to {new_replicas}",
                                    component="deployment-controller")
        elif current["spec"].get("replicas") != new_replicas:
            self._scale(dep, current, new_replicas)
        self.deployment_status(dep)

    def _scale(self, dep: dict, rs: dict, replicas: int) -> None:
        have = rs["spec"].get("replicas", 0)
        scaled = copy.deepcopy(rs)
        scaled["spec"]["replicas"] = replicas
        self.c.store.put(self.c.rt("apps/v1", "ReplicaSet"), scaled)
        self.c.record_event(dep, "Normal", "ScalingReplicaSet",
                            f"Scaled {'up' if replicas > have else 'down'} replica set {rs['metadata']['name']} "
                            f"from {have} to {replicas}", component="deployment-controller")

    def deployment_status_of(self, rs: dict) -> None:
        """A ReplicaSet or its pods changed: the owning Deployment may roll on, and its status follows."""
        uid = owner_uid(rs)
        for dep in self.c.store.list(self.c.rt("apps/v1", "Deployment"), rs["metadata"]["namespace"]):
            if dep["metadata"]["uid"] == uid:
                self.reconcile_deployment(dep["metadata"]["namespace"], dep["metadata"]["name"])

    def deployment_status(self, dep: dict) -> None:
        store, ns = self.c.store, dep["metadata"]["namespace"]
        dep = store.get(self.c.rt("apps/v1", "Deployment"), ns, dep["metadata"]["name"])
        if dep is None:
            return
        rses = self._owned(self.c.rt("apps/v1", "ReplicaSet"), ns, dep["metadata"]["uid"])
        pth = hashlib.sha256(json.dumps(dep["spec"].get("template") or {}, sort_keys=True).encode()).hexdigest()[:10]
        current = f"{dep['metadata']['name']}-{pth}"
        pods, updated = [], []
        for rs in rses:
            rs_pods = self._live_pods(ns, rs["metadata"]["uid"])
            pods += rs_pods
            if rs["metadata"]["name"] == current:
                updated = rs_pods
        want = dep["spec"].get("replicas", 1)
        ready = sum(1 for p in pods if is_ready(p))
        status: dict = {"observedGeneration": dep["metadata"].get("generation", 1)}
        for key, value in (("replicas", len(pods)), ("updatedReplicas", len(updated)), ("readyReplicas", ready),
                           ("availableReplicas", ready), ("unavailableReplicas", max(want - ready, 0))):
            if value:
                status[key] = value
        old = {c["type"]: c for c in (dep.get("status") or {}).get("conditions") or []}
        ts = now_rfc3339()
        available = ready >= want
        done = available and len(updated) == want == len(pods) and all(is_ready(p) for p in updated)
        conds = [
            {"type": "Available", "status": "True" if available else "False",
             "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
             "message": "Deployment has minimum availability." if available else
             "Deployment does not have minimum availability."},
            {"type": "Progressing", "status": "True",
             "reason": "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
             "message": f'ReplicaSet "{current}" has successfully progressed.' if done else
             f'ReplicaSet "{current}" is progressing.'},
        ]
        for cond in conds:
            prev = old.get(cond["type"])
            same = prev and prev.get("status") == cond["status"]
            cond["lastTransitionTime"] = prev["lastTransitionTime"] if same else ts
            cond["lastUpdateTime"] = prev["lastUpdateTime"] if same and prev.get("reason") == cond["reason"] else ts
        status["conditions"] = conds
        store.put_status(self.c.rt("apps/v1", "Deployment"), dep, status)

    def _new_pod(self, owner: dict, name: str, node: str | None = None, extra_labels: dict | None = None) -> None:
        template = copy.deepcopy(owner["spec"].get("template") or {})
        meta = template.get("metadata") or {}
        labels = {**(meta.get("labels") or {}), **(extra_labels or {})}
        spec = template.get("spec") or {}
        if node:
            spec["nodeName"] = node
        self.c.store.create(self.c.rt("v1", "Pod"), owner["metadata"]["namespace"], {
            "metadata": {"name": name, "labels": labels, "annotations": meta.get("annotations") or {},
                         "ownerReferences": [owner_ref(owner)]},
            "spec": spec}, manager="kube-controller-manager")
        self.c.record_event(owner, "Normal", "SuccessfulCreate", f"Created pod: {name}",
                            component=f"{owner['kind'].lower()}-controller")

    def reconcile_replicaset(self, ns: str, name: str) -> None:
        store, rt = self.c.store, self.c.rt("apps/v1", "ReplicaSet")
        rs = store.get(rt, ns, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = self._live_pods(ns, rs["metadata"]["uid"])
        want = rs["spec"].get("replicas", 1)
        for _ in range(want - len(pods)):
            self._new_pod(rs, f"{name}-{uuid.uuid4().hex[:5]}")
        for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)[:max(0, len(pods) - want)]:
            store.delete(self.c.rt("v1", "Pod"), ns, pod["metadata"]["name"])
            self.c.record_event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}",
                                component="replicaset-controller")
        self.replicaset_status(rs)

    def replicaset_status(self, rs: dict) -> None:
        pods = self._live_pods(rs["metadata"]["namespace"], rs["metadata"]["uid"])
        ready = sum(1 for p in pods if is_ready(p))
        status = {"replicas": len(pods), "observedGeneration": rs["metadata"].get("generation", 1)}
        if pods:
            status["fullyLabeledReplicas"] = len(pods)
        if ready:
            status.update(readyReplicas=ready, availableReplicas=ready)
        self.c.store.put_status(self.c.rt("apps/v1", "ReplicaSet"), rs, status)

    def reconcile_statefulset(self, ns: str, name: str) -> None:
        store = self.c.store
        sts = store.get(self.c.rt("apps/v1", "StatefulSet"), ns, name)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return
        want = sts["spec"].get("replicas", 1)
        existing = {p["metadata"]["name"]: p for p in self._live_pods(ns, sts["metadata"]["uid"])}
        for i in range(want):
            if f"{name}-{i}" not in existing:
                self._new_pod(sts, f"{name}-{i}", extra_labels={"statefulset.kubernetes.io/pod-name": f"{name}-{i}"})
        for pod_name in existing:
            if int(pod_name.rsplit("-", 1)[1]) >= want:
                store.delete(self.c.rt("v1", "Pod"), ns, pod_name)
        self.workload_status(sts)

    def node_eligible(self, node: dict, pod_spec: dict) -> bool:
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
            return False
        return all(_tolerates(pod_spec.get("tolerations") or [], t) for t in node.get("spec", {}).get("taints") or []
                   if t.get("effect") in ("NoSchedule", "NoExecute"))

    def reconcile_all_daemonsets(self) -> None:
        for ds in self.c.store.list(self.c.rt("apps/v1", "DaemonSet")):
            self.reconcile_daemonset(ds["metadata"]["namespace"], ds["metadata"]["name"])

    def reconcile_daemonset(self, ns: str, name: str) -> None:
        store = self.c.store
        ds = store.get(self.c.rt("apps/v1", "DaemonSet"), ns, name)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return
        pod_spec = (ds["spec"].get("template") or {}).get("spec") or {}
        nodes = [n["metadata"]["name"] for n in store.list(self.c.rt("v1", "Node")) if self.node_eligible(n, pod_spec)]
        pods = self._live_pods(ns, ds["metadata"]["uid"])
        on_node = {p["spec"].get("nodeName"): p for p in pods}
        for node in nodes:
            if node not in on_node:
                self._new_pod(ds, f"{name}-{uuid.uuid4().hex[:5]}", node=node)
        for node, pod in on_node.items():
            if node not in nodes:
                store.delete(self.c.rt("v1", "Pod"), ns, pod["metadata"]["name"])
        self.workload_status(ds, desired=len(nodes))

    def workload_status(self, obj: dict, desired: int | None = None) -> None:
        rt = self.c.rt("apps/v1", obj["kind"])
        obj = self.c.store.get(rt, obj["metadata"]["namespace"], obj["metadata"]["name"])
        if obj is None:
            return
        pods = self._live_pods(obj["metadata"]["namespace"], obj["metadata"]["uid"])
        ready = sum(1 for p in pods if is_ready(p))
        gen = obj["metadata"].get("generation", 1)
        if obj["kind"] == "DaemonSet":
            if desired is None:
                pod_spec = (obj["spec"].get("template") or {}).get("spec") or {}
                desired = sum(1 for n in self.c.store.list(self.c.rt("v1", "Node")) if self.node_eligible(n, pod_spec))
            status = {"desiredNumberScheduled": desired, "currentNumberScheduled": len(pods),
                      "updatedNumberScheduled": len(pods), "numberReady": ready, "numberAvailable": ready,
                      "numberMisscheduled": 0, "observedGeneration": gen}
            if desired - ready > 0:
                status["numberUnavailable"] = desired - ready
        else:
            status = {"replicas": len(pods), "currentReplicas": len(pods), "updatedReplicas": len(pods),
                      "readyReplicas": ready, "availableReplicas": ready, "observedGeneration": gen}
        self.c.store.put_status(rt, obj, status)

    def owner_status_of(self, pod: dict) -> None:
        uid = owner_uid(pod)
        if uid is None:
            return
        ns = pod["metadata"]["namespace"]
        for kind in ("ReplicaSet", "DaemonSet", "StatefulSet"):
            for owner in self.c.store.list(self.c.rt("apps/v1", kind), ns):
                if owner["metadata"]["uid"] == uid:
                    if kind == "ReplicaSet":
                        self.replicaset_status(owner)
                        self.deployment_status_of(owner)
                    else:
                        self.workload_status(owner)

    # -- scheduling -----------------------------------------------------------------------------

    def pick_node(self, pod: dict) -> tuple[str | None, str]:
        """The first node the pod fits, or None with the scheduler's FailedScheduling message."""
        nodes = self.c.store.list(self.c.rt("v1", "Node"))
        if not nodes:
            return None, "no nodes available to schedule pods"
        spec = pod.get("spec") or {}
        wants = pod_requests(spec)
        reasons: Counter = Counter()
        for node in nodes:
            labels = node["metadata"].get("labels") or {}
            if node.get("spec", {}).get("unschedulable"):
                reasons["node(s) were unschedulable"] += 1
                continue
            if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
                reasons["node(s) didn't match Pod's node affinity/selector"] += 1
                continue
            taints = [t for t in node.get("spec", {}).get("taints") or [] if t.get("effect") in ("NoSchedule",
                                                                                                  "NoExecute")]
            bad = next((t for t in taints if not _tolerates(spec.get("tolerations") or [], t)), None)
            if bad:
                value = f": {bad['value']}" if bad.get("value") else ""
                reasons[f"node(s) had untolerated taint {{{bad['key']}{value}}}"] += 1
                continue
            alloc = node.get("status", {}).get("allocatable") or {}
            used: Counter = Counter()
            for other in self.c.store.list(self.c.rt("v1", "Pod")):
                if other["spec"].get("nodeName") == node["metadata"]["name"] and other is not pod and \
                        other["status"].get("phase") not in ("Succeeded", "Failed"):
                    used.update(pod_requests(other["spec"]))
            short = [res for res, qty in wants.items()
                     if qty > 0 and float(parse_quantity(str(alloc.get(res, "0")))) - used[res] < qty]
            if short:
                for res in short:
                    reasons[f"Insufficient {res}"] += 1
                continue
            return node["metadata"]["name"], ""
        parts = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        total = len(nodes)
        return None, (f"0/{total} nodes are available: {parts}. preemption: 0/{total} nodes are available: "
                      f"{total} Preemption is not helpful for scheduling.")

    # -- services -------------------------------------------------------------------------------

    def _service_changed(self, svc: dict) -> None:
        meta = svc["metadata"]
        ns, name = meta["namespace"], meta["name"]
        is_lb = svc.get("spec", {}).get("type") == "LoadBalancer"
        if meta.get("deletionTimestamp"):
            if LB_FINALIZER in (meta.get("finalizers") or []) and (ns, name) not in self.c.lb_deleting:
                self.c.lb_deleting.add((ns, name))
                self.c.later(self.c.lb_delay, lambda: self._delete_lb(ns, name), locked=False)
            return
        if is_lb and not (svc.get("status", {}).get("loadBalancer") or {}).get("ingress") and \
                (ns, name) not in self.c.lb_pending:
            self.c.lb_pending.add((ns, name))
            self.c.later(0, lambda: self._ensuring_lb(ns, name))
            self.c.later(self.c.lb_delay, lambda: self._create_lb(ns, name), locked=False)

    def _ensuring_lb(self, ns: str, name: str) -> None:
        rt = self.c.rt("v1", "Service")
        svc = self.c.store.get(rt, ns, name)
        if svc is None:
            return
        if LB_FINALIZER not in (svc["metadata"].get("finalizers") or []):
            with_finalizer = copy.deepcopy(svc)
            with_finalizer["metadata"]["finalizers"] = (svc["metadata"].get("finalizers") or []) + [LB_FINALIZER]
            self.c.store.put(rt, with_finalizer)
        self.c.record_event(svc, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer",
                            component="service-controller")

    def _create_lb(self, ns: str, name: str) -> None:
        """Runs without the lock: the hook may call AWS (moto) over HTTP."""
        rt = self.c.rt("v1", "Service")
        with self.c.lock:
            svc = copy.deepcopy(self.c.store.get(rt, ns, name))
        if svc is None or svc["metadata"].get("deletionTimestamp"):
            self.c.lb_pending.discard((ns, name))
            return
        ingress = None
        if self.c.lb_create_hook is not None:
            ingress = self.c.lb_create_hook(svc)
        if not ingress:
            lb_name = "a" + svc["metadata"]["uid"].replace("-", "")[:31]
            ingress = f"{lb_name}-{int(hashlib.md5(lb_name.encode()).hexdigest()[:8], 16)}.elb.{self.c.region}.amazonaws.com"
        if isinstance(ingress, str):
            ingress = {"hostname": ingress}
        with self.c.lock:
            self.c.lb_pending.discard((ns, name))
            current = self.c.store.get(rt, ns, name)
            if current is None or current["metadata"]["uid"] != svc["metadata"]["uid"]:
                return
            status = copy.deepcopy(current.get("status") or {})
            status["loadBalancer"] = {"ingress": [dict(ingress)]}
            self.c.store.put_status(rt, current, status)
            self.c.record_event(current, "Normal", "EnsuredLoadBalancer", "Ensured load balancer",
                                component="service-controller")

    def _delete_lb(self, ns: str, name: str) -> None:
        rt = self.c.rt("v1", "Service")
        with self.c.lock:
            svc = copy.deepcopy(self.c.store.get(rt, ns, name))
        if svc is not None and self.c.lb_delete_hook is not None:
            self.c.lb_delete_hook(svc)
        with self.c.lock:
            self.c.lb_deleting.discard((ns, name))
            current = self.c.store.get(rt, ns, name)
            if current is None:
                return
            self.c.record_event(current, "Normal", "DeletedLoadBalancer", "Deleted load balancer",
                                component="service-controller")
            released = copy.deepcopy(current)
            released["metadata"]["finalizers"] = [f for f in current["metadata"].get("finalizers") or []
                                                  if f != LB_FINALIZER]
            try:
                self.c.store.update(rt, ns, name, released, manager="service-controller")
            except ApiError:
                pass
