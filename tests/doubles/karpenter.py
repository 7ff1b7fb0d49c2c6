"""A small provisioner that plays Karpenter against the Kubernetes double and moto.

`provision()` gives each pending pod that asks for `nvidia.com/gpu` a node: a moto instance tagged the way
Karpenter v1 tags what it launches (`karpenter.sh/nodepool`, `karpenter.sh/nodeclaim`,
`karpenter.k8s.aws/ec2nodeclass`, `kubernetes.io/cluster/<name>=owned`, `eks:eks-cluster-name`, and the
EC2NodeClass's own tags), its launch template (`karpenter.k8s.aws/cluster`), the instance profile Karpenter
makes from the EC2NodeClass's role (`karpenter.sh/managed-by`), and a tainted GPU node that joins the double.
`remove_empty()` is consolidation when empty: a node without pods goes, with its instance.

`interrupt(node)` is a spot interruption warning reaching Karpenter's interruption queue (Karpenter v1's
interruption and termination controllers): the node is tainted `karpenter.sh/disrupted:NoSchedule`, each of
its pods is evicted through the Eviction API (a PodDisruptionBudget that allows no disruption refuses it
and Karpenter retries), an evicted pod terminates with its terminationGracePeriodSeconds (preStop, then
SIGTERM: the server's drain), and once the node has no pods its instance is terminated and the node goes.
`start()` runs it as a controller: pending GPU pods (an evicted pod's replacement, a woken replica) get a
node, queued interruptions drain, empty nodes go after `consolidate_after_s`, until `stop()`.
"""

from __future__ import annotations

import itertools
import threading

_claims = itertools.count(1)


class KarpenterDouble:
    def __init__(self, kube, aws, cluster: str, *, nodepool: str = "llmctl-gpu", nodeclass: str = "llmctl-gpu",
                 nodeclass_tags: dict | None = None, instance_type: str = "g4dn.xlarge", region: str = "us-east-1"):
        self.kube, self.ec2, self.iam = kube, aws.client("ec2", region), aws.client("iam", region)
        self.cluster, self.nodepool, self.nodeclass, self.instance_type = cluster, nodepool, nodeclass, instance_type
        self.nodeclass_tags = nodeclass_tags or {}
        self.region = region
        self.instances: dict[str, str] = {}  # node name -> instance id
        self.interrupted: dict[str, list[str]] = {}  # node -> its pods when the notice came ("ns/name")
        self.gone: list[str] = []  # interrupted nodes whose instance was terminated
        self._stop = threading.Event()
        self._launched_for: set[str] = set()  # pods a node was launched for
        self._empty_since: dict[str, float] = {}  # node -> when it was first seen without a pod
        self._thread: threading.Thread | None = None

    def _tags(self, claim: str) -> dict[str, str]:
        return {**self.nodeclass_tags, "karpenter.sh/nodepool": self.nodepool, "karpenter.sh/nodeclaim": claim,
                "karpenter.k8s.aws/ec2nodeclass": self.nodeclass, f"kubernetes.io/cluster/{self.cluster}": "owned",
                "eks:eks-cluster-name": self.cluster, "Name": f"{self.nodepool}/{claim}"}

    def _launch_template(self) -> str:
        name = f"karpenter.k8s.aws/{self.cluster}/{self.nodeclass}"
        found = self.ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [name]}])
        if found["LaunchTemplates"]:
            return found["LaunchTemplates"][0]["LaunchTemplateId"]
        tags = {**self.nodeclass_tags, "karpenter.k8s.aws/cluster": self.cluster,
                "karpenter.k8s.aws/ec2nodeclass": self.nodeclass}
        return self.ec2.create_launch_template(
            LaunchTemplateName=name, LaunchTemplateData={"InstanceType": self.instance_type},
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )["LaunchTemplate"]["LaunchTemplateId"]

    def _instance_profile(self) -> None:
        name = f"{self.cluster}_{abs(hash(self.nodeclass)) % 10**12}"
        try:
            self.iam.get_instance_profile(InstanceProfileName=name)
        except self.iam.exceptions.NoSuchEntityException:
            tags = {**self.nodeclass_tags, "karpenter.sh/managed-by": self.cluster,
                    "karpenter.k8s.aws/ec2nodeclass": self.nodeclass, f"kubernetes.io/cluster/{self.cluster}": "owned",
                    "topology.kubernetes.io/region": self.region}
            self.iam.create_instance_profile(InstanceProfileName=name, Path="/",
                                             Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def pending_gpu_pods(self) -> list[dict]:
        out = []
        for pod in self.kube.list("v1", "Pod"):
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            requests = [((c.get("resources") or {}).get("requests") or {}).get("nvidia.com/gpu")
                        for c in pod["spec"].get("containers") or []]
            if any(requests):
                out.append(pod)
        return out

    def provision(self, pods: list[dict] | None = None) -> list[str]:
        """A node (and its instance) for each pending GPU pod (or each of `pods`); returns the new instance ids."""
        launched = []
        for _ in self.pending_gpu_pods() if pods is None else pods:
            claim = f"{self.nodepool}-{next(_claims):05d}"
            tags = self._tags(claim)
            template = self._launch_template()
            self._instance_profile()
            instance = self.ec2.run_instances(
                MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateId": template}, InstanceType=self.instance_type,
                ImageId="ami-12c6146b",
                TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
            )["Instances"][0]["InstanceId"]
            node = f"ip-10-0-{len(self.instances) + 1}-{next(_claims) % 250}.ec2.internal"
            self.kube.add_node(node, gpus=1, instance_type=self.instance_type,
                               labels={"karpenter.sh/nodepool": self.nodepool, "karpenter.sh/capacity-type": "spot",
                                       "llmctl.io/gpu": "true"},
                               taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}])
            self.instances[node] = instance
            launched.append(instance)
        self.kube.retry_unscheduled()
        return launched

    def remove_empty(self, after_s: float = 0.0) -> list[str]:
        """Consolidation when empty (`consolidationPolicy: WhenEmpty`): each of our nodes that has had no pod for
        `after_s` (the NodePool's consolidateAfter) goes, its instance terminated."""
        import time

        busy = {p["spec"].get("nodeName") for p in self.kube.list("v1", "Pod") if not p["metadata"].get("deletionTimestamp")}
        now = time.monotonic()
        for node in list(self._empty_since):
            if node in busy or node not in self.instances:
                del self._empty_since[node]
        removed = [node for node in list(self.instances) if node not in busy and node not in self.interrupted
                   and now - self._empty_since.setdefault(node, now) >= after_s]
        for node in removed:
            self.kube.remove_node(node)
            self.ec2.terminate_instances(InstanceIds=[self.instances.pop(node)])
            del self._empty_since[node]
        return removed

    def interrupt(self, node: str) -> None:
        """A spot interruption notice for `node`: taint it, then (in the controller loop) drain it."""
        with self.kube.lock:
            current = self.kube.get("v1", "Node", node)
            taints = [*(current["spec"].get("taints") or []),
                      {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}]
            self.kube.store.put(self.kube.rt("v1", "Node"), {**current, "spec": {**current["spec"], "taints": taints}})
            self.interrupted[node] = [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                                      for p in self._pods_on(node)]

    def _pods_on(self, node: str) -> list[dict]:
        return [p for p in self.kube.list("v1", "Pod") if p["spec"].get("nodeName") == node]

    def _drain(self) -> None:
        for node in [n for n in self.interrupted if n not in self.gone]:
            pods = self._pods_on(node)
            for pod in pods:
                self.kube.evict(pod["metadata"]["namespace"], pod["metadata"]["name"])  # refused: the next pass
            if not pods:
                self.kube.remove_node(node)
                self.ec2.terminate_instances(InstanceIds=[self.instances.pop(node)])
                self.gone.append(node)

    def start(self, interval: float = 0.05, consolidate_after_s: float | None = None) -> KarpenterDouble:
        """Run as a controller; with `consolidate_after_s`, empty nodes go after that long (WhenEmpty)."""
        def loop() -> None:
            while not self._stop.wait(interval):
                # as Karpenter: only pods the scheduler could not place, once each
                unschedulable = [p for p in self.pending_gpu_pods() if p["metadata"]["uid"] not in self._launched_for
                                 and any(c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
                                         for c in (p.get("status") or {}).get("conditions") or [])]
                if unschedulable:
                    self._launched_for.update(p["metadata"]["uid"] for p in unschedulable)
                    self.provision(unschedulable)
                self._drain()
                if consolidate_after_s is not None:
                    self.remove_empty(consolidate_after_s)

        self._thread = threading.Thread(target=loop, name="karpenter", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
