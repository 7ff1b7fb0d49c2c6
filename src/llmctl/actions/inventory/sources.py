"""The sources of discovery: one small function `(Scan) -> list[Resource]` each, listed under
the teardown step that deletes what it finds (`SOURCES`). A source reads through the scan's
cached look-ups (`scan.tagged()`, `scan.cluster()`, `scan.kube()`, `scan.once(...)`) and keeps
only what its own tags (or labels) say is this deployment's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from llmctl.actions.inventory.resources import BUILD, CLUSTER, IRSA, KUBERNETES, LOAD_BALANCERS, Resource
from llmctl.aws import arns
from llmctl.aws.tagging import EKSCTL_CLUSTER_TAGS, K8S_SERVICE_TAGS, KARPENTER_CLUSTER_TAG, eksctl_made_for, service_of
from llmctl.config.names import TAG_DEPLOYMENT

if TYPE_CHECKING:
    from llmctl.actions.inventory.discovery import Scan

LB_TYPES = ("aws_lb", "aws_elb", "aws_lb_target_group")
BUILD_TYPES = ("aws_s3_bucket", "aws_cloudwatch_log_group", "aws_secretsmanager_secret", "aws_ecr_repository",
               "aws_codebuild_project")
# Labelled objects that may live outside this deployment's namespaces (cluster-scoped RBAC,
# the device plugin in kube-system, monitoring CRs). Namespaced kinds only matter outside ours.
K8S_KINDS = (
    ("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"),
    ("v1", "Service"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"), ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"), ("keda.sh/v1alpha1", "ScaledObject"),
    ("http.keda.sh/v1alpha1", "HTTPScaledObject"),
    # Karpenter's GPU capacity: deleting the NodePool drains and removes its nodes before the cluster goes
    ("karpenter.sh/v1", "NodePool"), ("karpenter.k8s.aws/v1", "EC2NodeClass"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
)

Source = Callable[["Scan"], list[Resource]]


# --- step 1: LoadBalancer Services and what the cloud controller made for them -------------------
def lb_services(scan: Scan) -> list[Resource]:
    """Our Services of type LoadBalancer (each one's load balancer goes when it goes)."""
    kube = scan.kube()
    if kube is None:
        return []
    services = [s for s in kube.list("v1", "Service", None, scan.names.k8s_selector)
                if (s.get("spec") or {}).get("type") == "LoadBalancer"]
    return [Resource("k8s_service", f"{s['metadata']['namespace']}/{s['metadata']['name']}",
                     f"service/{s['metadata']['namespace']}/{s['metadata']['name']}", note="type LoadBalancer",
                     extra={"namespace": s["metadata"]["namespace"], "name": s["metadata"]["name"]})
            for s in services]


def lb_aws_side(scan: Scan) -> list[Resource]:
    """ELBs, target groups and security groups tagged as owned by our cluster."""
    if not scan.cluster().ours:
        return []
    ours = {r.name for r in lb_services(scan)}
    live = _live_lb_services(scan)
    found = []
    for arn, tags in scan.cluster_tagged().items():
        kind = arns.type_of(arn)
        service = service_of(tags)
        if not (kind in LB_TYPES or (kind == "aws_security_group" and service)):
            continue
        # Another Service's load balancer in our cluster is not ours while that Service lives;
        # once it is gone (or the cluster is), what is left is an orphan of our cluster.
        if live is not None and service in live and service not in ours:
            continue
        found.append(Resource(kind, arns.name_of(arn), arn, note=f"for Service {service}" if service else "made by the cluster's controller",
                              extra={"tags": tags}))
    return found


def _live_lb_services(scan: Scan) -> set[str] | None:
    """Every LoadBalancer Service in the cluster (`ns/name`), or None without a reachable cluster."""
    kube = scan.kube()
    if kube is None:
        return None
    return {f"{s['metadata']['namespace']}/{s['metadata']['name']}"
            for s in kube.list("v1", "Service") if (s.get("spec") or {}).get("type") == "LoadBalancer"}


# --- step 2: Kubernetes objects, namespaces, PVC volumes --------------------------------------
def k8s_objects(scan: Scan) -> list[Resource]:
    """Namespaces labelled for this deployment, and labelled objects outside them."""
    kube = scan.kube()
    if kube is None:
        return []
    selector = scan.names.k8s_selector
    namespaces = {n["metadata"]["name"] for n in kube.list("v1", "Namespace", None, selector)}
    found = [Resource("k8s_namespace", ns, f"namespace/{ns}") for ns in sorted(namespaces)]
    for api_version, kind in K8S_KINDS:
        if "." in api_version.split("/")[0] and not kube.has_kind(api_version, kind):
            continue  # a CRD kind that is not installed
        for obj in kube.list(api_version, kind, None, selector):
            ns = obj["metadata"].get("namespace")
            if ns in namespaces or (kind == "Service" and (obj.get("spec") or {}).get("type") == "LoadBalancer"):
                continue
            ref = f"{kind.lower()}/{ns}/{obj['metadata']['name']}" if ns else f"{kind.lower()}/{obj['metadata']['name']}"
            found.append(Resource("k8s_object", ref, ref, note=api_version,
                                  extra={"api_version": api_version, "kind": kind, "namespace": ns}))
    return found


def pvc_volumes(scan: Scan) -> list[Resource]:
    """EBS volumes the CSI driver made for PVCs in our cluster."""
    if not scan.cluster().ours:
        return []
    found = []
    for arn, tags in scan.cluster_tagged().items():
        if arns.type_of(arn) == "aws_ebs_volume" and any(k.startswith("kubernetes.io/created-for/pvc") for k in tags):
            pvc = f"{tags.get('kubernetes.io/created-for/pvc/namespace', '?')}/{tags.get('kubernetes.io/created-for/pvc/name', '?')}"
            found.append(Resource("aws_ebs_volume", arns.name_of(arn), arn, note=f"for PVC {pvc}"))
    return found


# --- step 3: IAM roles, policies and instance profiles ----------------------------------------
def _role(scan: Scan, name: str, note: str = "") -> list[Resource]:
    from llmctl.aws.iam import get_role

    role = scan.once(("role", name), lambda: get_role(scan.aws.iam, name))
    return [Resource("aws_iam_role", role["RoleName"], role["Arn"], note=note)] if role and scan.is_ours(role["tags"]) else []


def irsa_role(scan: Scan) -> list[Resource]:
    return _role(scan, scan.names.irsa_role)


# kind -> (resource type, name field, adapter function in llmctl.aws.iam)
IAM_KINDS = {"instance profile": ("aws_iam_instance_profile", "InstanceProfileName", "instance_profiles"),
             "role": ("aws_iam_role", "RoleName", "roles"),
             "policy": ("aws_iam_policy", "PolicyName", "local_policies")}


def _iam_ours(scan: Scan, kind: str) -> list[dict]:
    """Every IAM entity of `kind` under this deployment's IAM path or tagged for it (one listing per scan)."""
    from llmctl.aws import iam

    def read() -> list[dict]:
        listing = getattr(iam, IAM_KINDS[kind][2])(scan.aws.iam)
        return [e for e in listing if e.get("Path", "/").startswith(scan.names.iam_path) or scan.is_ours(e["tags"])]

    return scan.once(("iam", kind), read)


def _iam(scan: Scan, *, with_cluster: bool) -> list[Resource]:
    found = []
    for kind, (rtype, key, _) in IAM_KINDS.items():
        for entity in _iam_ours(scan, kind):
            if goes_with_cluster(entity["tags"], scan.names.cluster) != with_cluster:
                continue
            if kind == "role" and entity["RoleName"] == scan.names.codebuild_role:
                continue  # a build resource: step 5's
            found.append(Resource(rtype, entity[key], entity["Arn"], note=f"IAM {kind} {entity.get('Path', '/')}",
                                  extra={"kind": kind}))
    return found


def tagged_iam(scan: Scan) -> list[Resource]:
    """Roles, local policies and instance profiles llmctl did not name, found by path or tags."""
    return _iam(scan, with_cluster=False)


# --- step 4: the cluster and what eksctl made for it ------------------------------------------
def eks_cluster(scan: Scan) -> list[Resource]:
    cluster = scan.cluster()
    if not (cluster.exists and cluster.ours):
        return []
    return [Resource("aws_eks_cluster", scan.names.cluster, cluster.arn, note=f"Kubernetes {cluster.version}")]


def eksctl_stacks(scan: Scan) -> list[Resource]:
    if not scan.cluster().ours:
        return []
    return [Resource("aws_cloudformation_stack", s["name"], s["id"], note=s["status"] or "") for s in scan.stacks()]


def oidc_providers(scan: Scan) -> list[Resource]:
    if not scan.cluster().ours:
        return []
    return [Resource("aws_iam_openid_connect_provider", arn.split("/", 1)[1], arn)
            for arn in cluster_oidc_providers(scan, scan.cluster().issuer)]


def cluster_oidc_providers(scan: Scan, issuer: str | None) -> list[str]:
    """The provider of the cluster's issuer, or any provider eksctl (or llmctl) tagged for this cluster."""
    from llmctl.aws import irsa

    providers = irsa.oidc_providers(scan.aws.iam)
    of_issuer = irsa.provider_of(providers, issuer)
    found = []
    for arn in providers:
        if arn == of_issuer:
            found.append(arn)
            continue
        tags = irsa.oidc_provider_tags(scan.aws.iam, arn)
        if eksctl_made_for(tags, scan.names.cluster) or scan.is_ours(tags):
            found.append(arn)
    return found


def made_by_eksctl(scan: Scan) -> list[Resource]:
    """What eksctl's stacks or EKS tagged for the cluster (deleted with it, listed for the plan)."""
    if not scan.cluster().ours:
        return []
    found = []
    for arn, tags in {**scan.tagged(), **scan.cluster_tagged()}.items():
        kind = arns.type_of(arn)
        if kind in (*LB_TYPES, "aws_ebs_volume") and not tags.get("aws:cloudformation:stack-name"):
            continue
        if goes_with_cluster(tags, scan.names.cluster) and not (kind == "aws_security_group" and any(k in tags for k in K8S_SERVICE_TAGS)):
            stack = tags.get("aws:cloudformation:stack-name", "")
            found.append(Resource(kind, arns.name_of(arn), arn, note=f"in stack {stack}" if stack else "deleted with the cluster",
                                  extra={"tags": tags}))
    return found


def iam_made_by_eksctl(scan: Scan) -> list[Resource]:
    """Tagged IAM that eksctl's stacks made (the node role, its profile): deleted with the cluster."""
    return _iam(scan, with_cluster=True) if scan.cluster().ours else []


def node_ec2(scan: Scan) -> list[Resource]:
    """Launch templates and live instances tagged for this deployment or owned by its cluster (what a
    node provisioner such as Karpenter launches outside eksctl's stacks)."""
    from llmctl.aws import ec2

    c = scan.names.cluster
    keys = [(TAG_DEPLOYMENT, scan.names.deployment)]
    if scan.cluster().ours:
        keys += [(f"kubernetes.io/cluster/{c}", "owned"), (KARPENTER_CLUSTER_TAG, c), (EKSCTL_CLUSTER_TAGS[0], c)]
    found: dict[str, Resource] = {}
    for key in keys:
        for lt in scan.once(("launch templates", key), lambda: ec2.launch_templates(scan.aws.ec2, key)):
            if key[0] != TAG_DEPLOYMENT or scan.is_ours(lt["tags"]):
                found.setdefault(lt["Arn"], Resource("aws_launch_template", lt["LaunchTemplateName"], lt["Arn"],
                                                     extra={"id": lt["LaunchTemplateId"], "tags": lt["tags"]}))
        for inst in scan.once(("instances", key), lambda: ec2.instances(scan.aws.ec2, key)):
            if key[0] != TAG_DEPLOYMENT or scan.is_ours(inst["tags"]):
                found.setdefault(inst["Arn"], Resource("aws_instance", inst["InstanceId"], inst["Arn"],
                                                       note=inst.get("InstanceType", ""), extra={"tags": inst["tags"]}))
    return list(found.values())


def interruption_queue(scan: Scan) -> list[Resource]:
    """Karpenter's spot interruption queue (eksctl's, named after the cluster) and the EventBridge rules that
    feed it: eksctl's stack removes them; one a failed run left is deleted after it."""
    from llmctl.aws import events, sqs

    if not scan.cluster().ours:
        return []
    name = scan.names.karpenter_interruption_queue
    queue = scan.once(("sqs", name), lambda: sqs.find_queue(scan.aws.sqs, name))
    if queue is None or not (eksctl_made_for(queue["tags"], scan.names.cluster) or scan.is_ours(queue["tags"])):
        return []
    rules = scan.once(("rules", queue["arn"]), lambda: events.rules_targeting(scan.aws.events, queue["arn"]))
    return [Resource("aws_sqs_queue", name, queue["arn"], note="Karpenter interruption queue",
                     extra={"url": queue["url"]}),
            *(Resource("aws_cloudwatch_event_rule", r["name"], r["arn"], note=f"feeds queue {name}") for r in rules)]


def goes_with_cluster(tags: dict[str, str], cluster: str) -> bool:
    """Created by eksctl, EKS or Karpenter for this cluster: the cluster's deletion (or teardown after it) removes it."""
    return (
        tags.get("karpenter.sh/managed-by") == cluster  # Karpenter's instance profiles (its instances: node_ec2)
        or
        tags.get("aws:cloudformation:stack-name", "").startswith(f"eksctl-{cluster}-")
        or eksctl_made_for(tags, cluster)
        or tags.get("eks:cluster-name") == cluster
        or tags.get("aws:eks:cluster-name") == cluster
    )


# --- step 5 (--all): the build resources ------------------------------------------------------
def codebuild_project(scan: Scan) -> list[Resource]:
    from llmctl.aws.codebuild import get_project
    from llmctl.aws.tagging import tags

    project = get_project(scan.aws.codebuild, scan.names.codebuild_project)
    if project is None or not scan.is_ours(tags(project.get("tags"), "key", "value")):
        return []
    return [Resource("aws_codebuild_project", project["name"], project["arn"])]


def codebuild_role(scan: Scan) -> list[Resource]:
    return _role(scan, scan.names.codebuild_role, note="CodeBuild service role")


def ecr_repositories(scan: Scan) -> list[Resource]:
    """Every repository tagged for us, named by llmctl or not (each repository's tags: moto's Tagging API has no ECR)."""
    from llmctl.aws import ecr

    return [Resource("aws_ecr_repository", repo["repositoryName"], repo["repositoryArn"])
            for repo in scan.once("ecr", lambda: ecr.repositories(scan.aws.ecr)) if scan.is_ours(repo["tags"])]


def tagged_build_resources(scan: Scan) -> list[Resource]:
    """Buckets, log groups, secrets (and, in AWS, the repository and project) tagged for us."""
    found = []
    for arn in scan.tagged():
        kind, name = arns.type_of(arn), arns.name_of(arn)
        if kind not in BUILD_TYPES:
            continue
        if kind == "aws_s3_bucket" and name == scan.d.config_model_bucket:
            if scan.d.model_bucket != name:
                continue  # the model bucket stays unless --delete-model-bucket names it
            found.append(Resource(kind, name, arn, note="model bucket (--delete-model-bucket)"))
        else:
            found.append(Resource(kind, name, arn))
    return found


def named_model_bucket(scan: Scan) -> list[Resource]:
    """The user named the model bucket and it matches config: theirs to delete, tagged or not."""
    from llmctl.aws.s3 import bucket_exists

    bucket = scan.d.model_bucket
    if not bucket or not bucket_exists(scan.aws.s3, bucket):
        return []
    return [Resource("aws_s3_bucket", bucket, f"arn:aws:s3:::{bucket}", note="model bucket (--delete-model-bucket)")]


SOURCES: dict[int, tuple[Source, ...]] = {
    LOAD_BALANCERS: (lb_services, lb_aws_side),
    KUBERNETES: (k8s_objects, pvc_volumes),
    IRSA: (irsa_role, tagged_iam),
    CLUSTER: (eks_cluster, eksctl_stacks, oidc_providers, made_by_eksctl, iam_made_by_eksctl, node_ec2,
              interruption_queue),
    BUILD: (codebuild_project, codebuild_role, ecr_repositories, tagged_build_resources, named_model_bucket),
}
