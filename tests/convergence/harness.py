"""Run one lifecycle command with a planted fault, then again, and compare with an undisturbed run.

A cell of the matrix is (command, call, fault). The call is the k-th occurrence of one mutating
request llmctl makes in an undisturbed run: an AWS operation seen by the fault-injecting proxy
(`aws iam:CreateRole`) or a Kubernetes request seen by the double (`k8s PATCH /api/v1/...`).
The faults:

- `kill`: the request is applied, then the CLI's whole process group gets SIGKILL before the reply
  is written (a laptop lid closed, a CI runner gone): the change happened, the CLI never knew;
- `5xx` (AWS): the request is applied and its reply lost to a 500, so botocore's retry meets it done;
- `throttle` (AWS): refused before it reaches moto with the service's throttling error;
- `500`, `429`, `409` (Kubernetes): refused before it touches the store with that Status.

Then the command runs again, undisturbed. The cell converged when the world (every AWS resource
and Kubernetes object, `snapshot()`) equals the undisturbed run's: nothing missing, nothing made
twice, nothing left over.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

from tests.doubles.faulty_proxy import AwsCall, Fault, FaultyProxy
from tests.doubles.kube.faults import KubeFault

AWS_FAULTS = ("kill", "5xx", "throttle")
K8S_FAULTS = ("kill", "500", "429", "409")


@dataclass(frozen=True)
class Call:
    """One mutating request of an undisturbed run: its side, its label and which occurrence it is."""

    side: str  # "aws" | "k8s"
    label: str  # "iam:CreateRole" | "PATCH /api/v1/namespaces/vllm"
    occurrence: int = 1

    @property
    def name(self) -> str:
        return f"{self.side} {self.label}" + (f" (#{self.occurrence})" if self.occurrence > 1 else "")


def number(labels: list[tuple[str, str]]) -> list[Call]:
    seen: dict[tuple[str, str], int] = {}
    calls = []
    for side, label in labels:
        seen[(side, label)] = seen.get((side, label), 0) + 1
        calls.append(Call(side, label, seen[(side, label)]))
    return calls


def aws_label(call: AwsCall) -> str:
    return call.label


def k8s_label(record) -> str:
    return f"{record.method} {record.path}"


class Runner:
    """Drives the CLI as a subprocess (own process group) and plants one fault per run."""

    def __init__(self, llmctl, proxy: FaultyProxy, kube):
        self.llmctl, self.proxy, self.kube = llmctl, proxy, kube
        self._proc: subprocess.Popen | None = None
        self.killed = threading.Event()
        self._k8s_seen: dict[str, int] = {}

    def mutating_calls(self, kube_before: int) -> list[Call]:
        """The mutating requests llmctl made since the kube double had `kube_before` records."""
        aws = [("aws", aws_label(c)) for c in self.proxy.mutating() if c.status < 400]
        with self.kube.lock:
            records = list(self.kube.requests[kube_before:])
        k8s = [("k8s", k8s_label(r)) for r in records
               if r.method in ("POST", "PUT", "PATCH", "DELETE") and "dryRun" not in r.query and r.status < 400]
        return number(aws) + number(k8s)

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self.killed.set()
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def plant(self, call: Call, fault: str) -> None:
        self.killed.clear()
        if call.side == "aws":
            self.proxy.faults.append(Fault(fault, lambda c, want=call.label: c.label == want, nth=call.occurrence))
            self.proxy.on_kill = self._kill
            return
        method, path = call.label.split(" ", 1)
        if fault == "kill":
            self._k8s_seen = {}

            def on_mutation(record) -> None:
                if k8s_label(record) != call.label:
                    return
                self._k8s_seen[call.label] = self._k8s_seen.get(call.label, 0) + 1
                if self._k8s_seen[call.label] == call.occurrence:
                    self._kill()

            self.kube.on_mutation = on_mutation
        else:
            self.kube.faults.append(KubeFault(int(fault), nth=call.occurrence, method=method, path=f"^{re.escape(path)}$"))

    def clear(self) -> None:
        self.proxy.faults.clear()
        self.proxy.on_kill = None
        self.kube.faults.clear()
        self.kube.on_mutation = None

    def run(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        proc = subprocess.Popen([sys.executable, "-m", "llmctl", *args], cwd=self.llmctl.cwd, env=self.llmctl.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self._proc = proc
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        finally:
            self._proc = None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# --- the world, read independently of llmctl -------------------------------------------------------

K8S_KINDS = (
    ("v1", "Namespace"), ("v1", "ServiceAccount"), ("v1", "Secret"), ("v1", "ConfigMap"), ("v1", "Service"),
    ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"), ("apps/v1", "ReplicaSet"),
    ("policy/v1", "PodDisruptionBudget"), ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
)
_SYSTEM_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}


def _k8s(kube) -> dict:
    objects = {}
    for api_version, kind in K8S_KINDS:
        for obj in kube.list(api_version, kind):
            meta = obj["metadata"]
            if kind == "Namespace" and meta["name"] in _SYSTEM_NAMESPACES:
                continue
            if kind == "ReplicaSet":  # generated names: count them per owner
                owner = (meta.get("ownerReferences") or [{}])[0].get("name", "?")
                key = f"ReplicaSet {meta.get('namespace')}/{owner}-*"
                objects[key] = objects.get(key, 0) + 1
                continue
            if kind == "ServiceAccount" and meta["name"] == "default":
                continue
            labels = {k: v for k, v in (meta.get("labels") or {}).items() if k.startswith("app.kubernetes.io/")}
            spec = obj.get("spec") or {}
            template = (spec.get("template") or {}).get("spec") or {}
            images = [c.get("image") for c in template.get("containers", [])]
            objects[f"{kind} {meta.get('namespace') or ''}/{meta['name']}"] = {
                "labels": labels, "images": images, "terminating": bool(meta.get("deletionTimestamp"))}
    if kube.registry.by_kind("http.keda.sh/v1alpha1", "HTTPScaledObject") is not None:
        for routing in kube.list("http.keda.sh/v1alpha1", "HTTPScaledObject"):  # a host lost is a request refused
            meta = routing["metadata"]
            objects[f"HTTPScaledObject {meta['namespace']}/{meta['name']}"] = {"hosts": routing["spec"]["hosts"]}
    pods: dict[str, int] = {}
    for pod in kube.list("v1", "Pod"):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        owner = (pod["metadata"].get("ownerReferences") or [{}])[0].get("kind", "none")
        key = f"Pod {pod['metadata']['namespace']} of {owner}"
        pods[key] = pods.get(key, 0) + 1
    return {**objects, **pods}


def _aws(moto) -> dict:
    c = moto.client
    s3, iam, ecr, logs, cb = c("s3"), c("iam"), c("ecr"), c("logs"), c("codebuild")
    eks, cfn, elbv2, ec2, sm = c("eks"), c("cloudformation"), c("elbv2"), c("ec2"), c("secretsmanager")
    buckets = {}
    for bucket in s3.list_buckets()["Buckets"]:
        versions = s3.list_object_versions(Bucket=bucket["Name"])
        buckets[bucket["Name"]] = sorted(v["Key"] for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []))
    roles = {}
    for role in iam.list_roles()["Roles"]:
        name = role["RoleName"]
        roles[name] = {"inline": sorted(iam.list_role_policies(RoleName=name)["PolicyNames"]),
                       "attached": sorted(p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]),
                       "tags": {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name)["Tags"]}}
    repos = {r["repositoryName"]: len(ecr.list_images(repositoryName=r["repositoryName"])["imageIds"])
             for r in ecr.describe_repositories()["repositories"]}
    projects = {p: len(cb.list_builds_for_project(projectName=p)["ids"]) for p in cb.list_projects()["projects"]}
    clusters = {n: sorted(eks.list_nodegroups(clusterName=n)["nodegroups"]) for n in eks.list_clusters()["clusters"]}
    sizes = {f"{n}/{g}": eks.describe_nodegroup(clusterName=n, nodegroupName=g)["nodegroup"]["scalingConfig"]["desiredSize"]
             for n, ngs in clusters.items() for g in ngs}  # a surge's temporary node given back
    instances = sum(1 for g in c("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
                    for i in g["Instances"] if i["LifecycleState"] == "InService")
    groups = [g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"]
    return {
        "s3": buckets,
        "iam_roles": roles,
        "iam_policies": sorted(p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]),
        "oidc_providers": len(iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]),
        "ecr": repos,
        "log_groups": sorted(g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]),
        "codebuild_builds": projects,
        "eks": clusters,
        "nodegroup_sizes": sizes,
        "asg_instances": instances,
        "stacks": sorted(s["StackName"] for s in cfn.describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"),
        "load_balancers": len(elbv2.describe_load_balancers()["LoadBalancers"]),
        "target_groups": len(elbv2.describe_target_groups()["TargetGroups"]),
        "security_groups": len(groups),
        "secrets": sorted(s["Name"] for s in sm.list_secrets()["SecretList"]),
    }


def served(kube, namespace: str = "vllm", service: str = "vllm-llama") -> set[str]:
    """The config hashes of the Ready, not terminating pods the Service selects (empty: nothing serves)."""
    svc = kube.get("v1", "Service", service, namespace)
    selector = ((svc or {}).get("spec") or {}).get("selector") or {}
    if not selector:
        return set()
    return {p["metadata"]["annotations"].get("llmctl.io/config-hash") for p in kube.list("v1", "Pod", namespace)
            if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
            and not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])}


def snapshot(moto, kube) -> dict:
    return {"aws": _aws(moto), "k8s": _k8s(kube)}


def diff(want: dict, got: dict, prefix: str = "") -> list[str]:
    """Readable differences between two snapshots ("missing", "extra", "changed")."""
    out = []
    for key in sorted(set(want) | set(got), key=str):
        path = f"{prefix}{key}"
        if key not in got:
            out.append(f"missing {path}: {want[key]!r}")
        elif key not in want:
            out.append(f"extra   {path}: {got[key]!r}")
        elif isinstance(want[key], dict) and isinstance(got[key], dict):
            out.extend(diff(want[key], got[key], path + "."))
        elif want[key] != got[key]:
            out.append(f"changed {path}: {want[key]!r} -> {got[key]!r}")
    return out
