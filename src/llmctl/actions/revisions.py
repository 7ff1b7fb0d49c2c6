"""Revisions of what serves, kept in the cluster (one ConfigMap each) so every teammate sees the same history.

A revision is a change of what serves: the image, the model (bucket, prefix, manifest digest) and the engine
settings, folded into the config hash the pod template already carries (`llmctl.io/config-hash`). A deploy that
changes nothing else (replicas, exposure, limits) reuses the serving revision. Each record keeps the
documents that define the revision (the env ConfigMap and the Deployment), so `llmctl rollback --to N` applies
exactly what ran then, and a re-run after an interrupted update can tell which revision the pods run.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass, field

from llmctl.config import Names

PART_OF = "llmctl-revisions"  # not the endpoint's part-of: the deploy's prune never touches revisions
LABEL_REVISION = "llmctl.io/revision"
DATA_KEY = "revision.json"
# outcomes: rolling-out (written before the rollout starts), serving, superseded (a later one serves),
# failed (its rollout or gate failed; the previous one serves again), rolled-back (left by `llmctl rollback`)
SERVING, SUPERSEDED, FAILED, ROLLING_OUT, ROLLED_BACK = "serving", "superseded", "failed", "rolling-out", "rolled-back"


@dataclass
class RevisionRecord:
    number: int
    created: str
    image: str
    config_hash: str
    model: str  # s3://bucket/prefix
    manifest_digest: str | None
    engine: dict[str, str]
    strategy: str
    reason: str
    outcome: str = ROLLING_OUT
    gate: dict | None = None
    diagnosis: str | None = None
    cold_start_s: float | None = None  # measured Ready time of its rollout (the planner's downtime estimate)
    rollback_of: int | None = None  # set when this rollout moved back to an earlier revision
    kept_until: str | None = None  # superseded but kept scaled up until then (deploy.keep_previous_minutes)
    grown: dict | None = None  # {"name", "size"}: a temporary node is out (written before the group grows,
    # cleared once it is given back), so a run killed before the give-back leaves the next run to finish it
    documents: list[dict] = field(default_factory=list)

    @property
    def image_digest(self) -> str | None:
        return self.image.split("@", 1)[1] if "@" in self.image else None

    def to_dict(self, documents: bool = False) -> dict:
        data = asdict(self)
        data["image_digest"] = self.image_digest
        if not documents:
            data.pop("documents")
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RevisionRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def object_name(names: Names, number: int) -> str:
    return f"{names.app}-revision-{number}"


def selector(names: Names) -> str:
    return ",".join(f"{k}={v}" for k, v in {**names.k8s_labels, "app.kubernetes.io/part-of": PART_OF}.items())


def history(kube, names: Names) -> list[RevisionRecord]:
    """Every recorded revision, oldest first (none when the namespace does not exist yet)."""
    if kube.get("v1", "Namespace", names.namespace) is None:
        return []
    records = []
    for cm in kube.list("v1", "ConfigMap", names.namespace, label_selector=selector(names)):
        raw = (cm.get("data") or {}).get(DATA_KEY)
        if raw:
            records.append(RevisionRecord.from_dict(json.loads(raw)))
    return sorted(records, key=lambda r: r.number)


def find(records: list[RevisionRecord], number: int) -> RevisionRecord | None:
    return next((r for r in records if r.number == number), None)


def serving(records: list[RevisionRecord]) -> RevisionRecord | None:
    return next((r for r in reversed(records) if r.outcome == SERVING), None)


def by_config_hash(records: list[RevisionRecord], config_hash: str | None) -> RevisionRecord | None:
    return next((r for r in reversed(records) if config_hash and r.config_hash == config_hash), None)


def save(kube, names: Names, record: RevisionRecord) -> None:
    """Create or update the revision's ConfigMap (server-side apply: a re-run writes the same object)."""
    kube.apply({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": object_name(names, record.number), "namespace": names.namespace,
                     "labels": {**names.k8s_labels, "app.kubernetes.io/part-of": PART_OF,
                                LABEL_REVISION: str(record.number)},
                     "annotations": {"llmctl.io/outcome": record.outcome, "llmctl.io/config-hash": record.config_hash}},
        "data": {DATA_KEY: json.dumps(asdict(record), sort_keys=True)},
    })


def mark_serving(kube, names: Names, records: list[RevisionRecord], record: RevisionRecord) -> None:
    """`record` serves now: the one that served before is superseded (only one revision serves)."""
    for other in records:
        if other.number != record.number and other.outcome == SERVING:
            other.outcome = SUPERSEDED
            save(kube, names, other)
    settle_interrupted(kube, names, records, record)
    if record.outcome != SERVING:
        record.outcome = SERVING
        save(kube, names, record)


def settle_interrupted(kube, names: Names, records: list[RevisionRecord], current: RevisionRecord) -> None:
    """Rollouts killed before they finished (left `rolling-out`) that a later run did not resume: failed."""
    for other in records:
        if other.number != current.number and other.outcome == ROLLING_OUT:
            other.outcome = FAILED
            other.diagnosis = f"interrupted before it served; revision {current.number} serves instead"
            save(kube, names, other)


def grown(records: list[RevisionRecord]) -> dict | None:
    """The temporary node a rollout asked for and has not given back yet (the group's size before it)."""
    return next((r.grown for r in reversed(records) if r.grown), None)


def next_number(records: list[RevisionRecord]) -> int:
    return max((r.number for r in records), default=0) + 1


def revision_documents(documents: list[dict]) -> list[dict]:
    """What defines a revision: the env ConfigMap and the server's Deployment (the rest, the waking responder
    included, is the endpoint's, not its)."""
    return [d for d in documents if (d["kind"] == "Deployment" and not d["metadata"]["name"].endswith("-waking")) or
            (d["kind"] == "ConfigMap" and "-env" in d["metadata"]["name"])]


def pods_revision(records: list[RevisionRecord], pods: list[dict]) -> RevisionRecord | None:
    """The revision the Ready pods run (by their config hash), newest first; None when no pod is Ready."""
    from llmctl.actions.rollout.pods import is_ready

    hashes = {((p["metadata"].get("annotations") or {}).get("llmctl.io/config-hash")) for p in pods if is_ready(p)}
    return next((r for r in reversed(records) if r.config_hash in hashes), None)


def check_weights(target: RevisionRecord, digest: str | None) -> None:
    """A rollback serves the weights in S3 now: refused when they are not the ones `target` (which recorded
    its model's manifest digest) loaded."""
    from llmctl.errors import LlmctlError

    if digest != target.manifest_digest:
        raise LlmctlError(f"revision {target.number} loaded the model whose manifest is {target.manifest_digest}; "
                          f"{target.model} now holds {digest or 'no manifest'}: its weights are gone",
                          hint=f"upload revision {target.number}'s weights to {target.model} again "
                               "(`llmctl model upload`), then roll back")


def rollback_target(records: list[RevisionRecord], number: int | None) -> RevisionRecord:
    """Revision `number`, else the newest one that served before the serving one; an error naming what exists."""
    from llmctl.errors import LlmctlError

    listed = ", ".join(str(r.number) for r in records) or "none"
    current = serving(records)
    if number is not None:
        found = find(records, number)
        if found is None or not found.documents:
            raise LlmctlError(f"no revision {number} to roll back to (recorded: {listed})",
                              hint="`llmctl history` lists the revisions; pass one of them to --to")
        if current is not None and found.config_hash == current.config_hash:
            raise LlmctlError(f"revision {number} is what serves now (revision {current.number})",
                              hint="pass --to with another revision from `llmctl history`")
        return found
    earlier = [r for r in records if r.outcome == SUPERSEDED and (current is None or r.number < current.number)
               and (current is None or r.config_hash != current.config_hash)]
    if not earlier:
        raise LlmctlError(f"no earlier revision served before this one (recorded: {listed})",
                          hint="pass --to N with a revision from `llmctl history`")
    return earlier[-1]
