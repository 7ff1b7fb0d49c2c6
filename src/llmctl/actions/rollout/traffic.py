"""Which revision's pods the Service selects, and which revisions' Deployments stay up (blue-green).

Every revision has its own Deployment and env ConfigMap (named by its config hash, `deploy.revision_name`);
the Service and the autoscalers follow the serving revision only. A new revision comes up beside the serving
one with the Service still on the old pods, is judged by its gate through a port-forward to its own pod, and
only then does the Service move; the old Deployment is removed afterwards (its pods drain on SIGTERM), or kept
scaled up `deploy.keep_previous_minutes` for an instant rollback (its record carries the expiry; the next
deploy, status or rollback removes it once expired: llmctl is not running in between).

A cluster deployed before (one Deployment `names.app` whose selector has no config hash) is migrated by its
next revision change: the running pods get their revision's hash label (the Service can then select exactly
them while the new revision starts beside), and the promotion removes the old Deployment like any other.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmctl.actions import deploy as manifests
from llmctl.actions import revisions as revs
from llmctl.config import Names

MIGRATION_MANAGER = "llmctl-migration"


def recorded_deployment(record: revs.RevisionRecord) -> dict | None:
    return next((d for d in record.documents if d["kind"] == "Deployment"), None)


def live_deployment(kube, names: Names, record: revs.RevisionRecord) -> dict | None:
    """The record's own Deployment as the cluster has it (None when gone, or running another revision)."""
    doc = recorded_deployment(record)
    if doc is None:
        return None
    live = kube.get("apps/v1", "Deployment", doc["metadata"]["name"], names.namespace)
    tpl = ((live or {}).get("spec") or {}).get("template") or {}
    ok = ((tpl.get("metadata") or {}).get("annotations") or {}).get(manifests.ANNOTATION_CONFIG_HASH) == record.config_hash
    return live if ok else None


def is_legacy(deployment: dict | None) -> bool:
    """A Deployment from before per-revision Deployments: its selector does not name a revision."""
    return deployment is not None and \
        manifests.LABEL_CONFIG_HASH not in (deployment["spec"]["selector"].get("matchLabels") or {})


def keys(kube, names: Names, records: list[revs.RevisionRecord]) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of the live Deployments and env ConfigMaps of `records` (kept from the prune)."""
    out = set()
    for record in records:
        if live_deployment(kube, names, record) is None:
            continue
        for doc in revs.revision_documents(record.documents):
            out.add((doc["kind"], names.namespace, doc["metadata"]["name"]))
    return out


def label_legacy_pods(kube, names: Names, record: revs.RevisionRecord) -> None:
    """Give the old single Deployment's running pods their revision's hash label (their ReplicaSet ignores a
    label it does not select on), so the Service can select them alone while the next revision starts."""
    selector = ",".join(f"{k}={v}" for k, v in manifests.pod_selector(names).items())
    for pod in kube.list("v1", "Pod", names.namespace, label_selector=selector):
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") or (meta.get("annotations") or {}).get(
                manifests.ANNOTATION_CONFIG_HASH) != record.config_hash:
            continue
        if (meta.get("labels") or {}).get(manifests.LABEL_CONFIG_HASH) != record.config_hash:
            kube.apply({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": meta["name"], "namespace": names.namespace,
                                     "labels": {manifests.LABEL_CONFIG_HASH: record.config_hash}}},
                       field_manager=MIGRATION_MANAGER)


def routed_to(documents: list[dict], names: Names, record: revs.RevisionRecord, deployment: dict) -> list[dict]:
    """`documents` with the Service and autoscalers on `record`'s pods and Deployment (`deployment`)."""
    return manifests.route(documents, deployment["metadata"]["name"], manifests.revision_selector(names, record.config_hash))


def _parse(ts: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def kept(records: list[revs.RevisionRecord], now: datetime.datetime | None = None) -> list[revs.RevisionRecord]:
    """Revisions kept scaled up whose window has not ended."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    current = revs.serving(records)
    return [r for r in records if r.kept_until and _parse(r.kept_until) > now and r.outcome != revs.SERVING
            and (current is None or r.config_hash != current.config_hash)]  # (rolled back to: it serves)


def keep_until(minutes: int) -> str:
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
    return until.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def expire(kube, names: Names, records: list[revs.RevisionRecord]) -> list[int]:
    """Remove the Deployments (and env ConfigMaps) of kept revisions whose window ended; their numbers."""
    live_now = {r.number for r in kept(records)}
    current = revs.serving(records)
    done = []
    for record in records:
        if not record.kept_until or record.number in live_now or record.outcome == revs.SERVING:
            continue
        serves = current is not None and current.config_hash == record.config_hash  # rolled back to it
        if not serves and live_deployment(kube, names, record) is not None:
            for doc in revs.revision_documents(record.documents):
                kube.delete(doc["apiVersion"], doc["kind"], doc["metadata"]["name"], names.namespace)
        record.kept_until = None
        revs.save(kube, names, record)
        done.append(record.number)
    return done


def recorded_documents(kube, names: Names, documents: list[dict]) -> list[dict]:
    """A recorded revision's Deployment and env ConfigMap to apply again (rollback): as recorded while that
    Deployment still runs them (kept: an instant switch), else in the per-revision layout."""
    docs = revs.revision_documents(documents)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    live = kube.get("apps/v1", "Deployment", dep["metadata"]["name"], names.namespace)
    same = live is not None and live["spec"]["template"]["metadata"].get("annotations", {}).get(
        manifests.ANNOTATION_CONFIG_HASH) == dep["spec"]["template"]["metadata"]["annotations"][
        manifests.ANNOTATION_CONFIG_HASH]
    return docs if same and not is_legacy(live) else manifests.per_revision(docs, names)


def swap_revision(rendered: list[dict], revision: list[dict]) -> list[dict]:
    """`rendered` with its Deployment and env ConfigMap replaced by `revision`'s."""
    own = {id(d) for d in revs.revision_documents(rendered)}
    out, placed = [], False
    for doc in rendered:
        if id(doc) not in own:
            out.append(doc)
        elif not placed:
            out += revision
            placed = True
    return out


@dataclass
class Stage:
    """What the first apply of a deploy writes, and how traffic moves after the gate (or back after a failure)."""

    kube: object
    names: Names
    update: object  # update.Update
    rendered: list[dict]
    documents: list[dict]  # the first apply
    keep: set  # the kept revisions' objects (never pruned)
    first_keep: set  # those, and the base revision's while the new one comes up beside it
    base: revs.RevisionRecord | None = None  # the serving revision the new one comes up beside (None: in place)
    base_deployment: dict | None = None  # its live Deployment (None: gone, or stopped by a recreate)
    rolling: int = 0  # the replicas a `rolling` plan trades pod by pod (0: not rolling)
    start: int = 0  # under an autoscaler: the new Deployment's pods, set right after the first apply (0: as rendered)

    def _new(self) -> dict:
        return next(d for d in self.rendered if d["kind"] == "Deployment")

    def routed_to_new(self) -> list[dict]:
        return routed_to(self.rendered, self.names, self.update.record, self._new())

    def back(self) -> list[dict]:
        """The first apply without the new revision (pruned), the base revision's documents when it was stopped."""
        own = {id(d) for d in revs.revision_documents(self.rendered)}
        docs = [d for d, r in zip(self.documents, self.rendered) if id(r) not in own]
        if self.base_deployment is not None:
            return docs
        again = recorded_documents(self.kube, self.names, self.base.documents)
        return routed_to(docs, self.names, self.base, next(d for d in again if d["kind"] == "Deployment")) + again

    def settle(self, timeout_s: float) -> None:
        """After a rollback to a Deployment from before per-revision ones: once the new pods are gone, the Service
        selects that Deployment's own pods again (pods it starts later carry no revision label)."""
        if not is_legacy(self.base_deployment):
            return
        wait_gone(self.kube, self.names, self.update.record.config_hash, timeout_s)
        docs = manifests.route(self.back(), self.base_deployment["metadata"]["name"],
                               self.base_deployment["spec"]["selector"]["matchLabels"])
        manifests.apply_documents(self.kube, docs, self.names, keep=self.first_keep)

    def promote(self, minutes: int, say: Callable[[str], None]) -> set:
        """What the promotion's apply keeps: the kept revisions, and the base one when the window asks for it."""
        keep = set(self.keep)
        if minutes and self.update.changes and self.base_deployment is not None:
            self.base.kept_until = keep_until(minutes)
            keep |= keys(self.kube, self.names, [self.base])
            say(f"revision {self.base.number} stays up until {self.base.kept_until} for an instant rollback "
                "(`llmctl rollback`); its GPUs cost meanwhile")
        return keep


def wait_gone(kube, names: Names, config_hash: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    selector = ",".join(f"{k}={v}" for k, v in manifests.revision_selector(names, config_hash).items())
    while kube.list("v1", "Pod", names.namespace, label_selector=selector) and time.monotonic() < deadline:
        time.sleep(0.2)


def stage(kube, cfg, names: Names, update, rendered: list[dict], say: Callable[[str], None]) -> Stage:
    """Expire kept revisions whose window ended; then, when a revision serves from a Deployment the new one does
    not reuse, bring the new one up beside it with the Service and autoscalers still on the serving one."""
    from llmctl.actions.rollout.planner import RECREATE, ROLLING

    expire(kube, names, update.records)
    keep = keys(kube, names, kept(update.records))
    base = update.previous
    live = live_deployment(kube, names, base) if base is not None else None
    new_name = next(d for d in rendered if d["kind"] == "Deployment")["metadata"]["name"]
    if base is None or (not update.changes and (live is None or live["metadata"]["name"] == new_name)) or \
            (live is None and _selected(kube, names) == update.record.config_hash):  # (killed after the switch)
        return Stage(kube, names, update, rendered, rendered, keep, keep)
    if is_legacy(live):
        label_legacy_pods(kube, names, base)
    if live is not None and update.changes and update.plan.strategy == RECREATE:
        say(f"stopping revision {base.number} first (recreate)")
        kube.delete("apps/v1", "Deployment", live["metadata"]["name"], names.namespace, wait=True)
        live = None
    first = keep | (keys(kube, names, [base]) if live is not None else set())
    target = live or per_revision_deployment(base, names)
    documents = routed_to(rendered, names, base, target)
    replicas = start = 0
    if live is not None and update.changes and update.plan.strategy == ROLLING:
        replicas = update.replicas
        say(f"revision {base.number} gives up one of its {replicas} pods for the new revision's first (the canary)")
        next(d for d in documents if d["kind"] == "Deployment")["spec"]["replicas"] = 1
    elif update.changes and cfg.deploy.autoscaling.enabled:  # the serving revision's count, not the default 1
        start = update.replicas
    return Stage(kube, names, update, rendered, documents, keep, first, base, live, replicas, start)


def routed_record(kube, names: Names, records: list[revs.RevisionRecord]) -> revs.RevisionRecord | None:
    """The revision whose pods the Service selects now: the truth about traffic, ahead of the records when a
    deploy was killed between the Service's switch and the record's update (its re-run records it)."""
    return revs.by_config_hash(records, _selected(kube, names)) if records else None


def _selected(kube, names: Names) -> str | None:
    """The config hash the live Service selects."""
    service = kube.get("v1", "Service", names.app, names.namespace) or {}
    return ((service.get("spec") or {}).get("selector") or {}).get(manifests.LABEL_CONFIG_HASH)


def per_revision_deployment(record: revs.RevisionRecord, names: Names) -> dict:
    return next(d for d in manifests.per_revision(revs.revision_documents(record.documents), names)
                if d["kind"] == "Deployment")
