"""A deployed world for teardown tests: moto (AWS), the Kubernetes double, the shared fake eksctl.

`world.seed()` creates, tagged exactly as the other verbs tag them, what `build`, `cluster up`
and `deploy` leave behind, plus things teardown must never touch (an untagged bucket, another
deployment's role, repository and namespace). The double's cloud-controller hook creates an NLB,
a target group and a security group in moto for each LoadBalancer Service, tagged the way the
AWS cloud controller tags them, and deletes them when the Service goes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

NAME = "llama"
OTHER = "other"
REGION = "us-east-1"
ACCOUNT = "123456789012"
BUILD_BUCKET = f"{NAME}-build-{ACCOUNT}-{REGION}"
MODEL_BUCKET = "llama-models-test"
UNTAGGED_BUCKET = "someone-elses-bucket"
OTHER_BUCKET = f"{OTHER}-build-{ACCOUNT}-{REGION}"
CONFIG = f"""project:
  name: {NAME}
model:
  bucket: {MODEL_BUCKET}
"""
TAGS = {"llmctl.io/deployment": NAME, "llmctl.io/managed-by": "llmctl"}
IAM_PATH = f"/llmctl/{NAME}/"  # where llmctl creates this deployment's IAM roles
OTHER_TAGS = {"llmctl.io/deployment": OTHER, "llmctl.io/managed-by": "llmctl"}
LABELS = {"app.kubernetes.io/managed-by": "llmctl", "app.kubernetes.io/instance": NAME}


def tag_list(tags: dict, key: str = "Key", value: str = "Value") -> list[dict]:
    return [{key: k, value: v} for k, v in tags.items()]


def _stack_template() -> str:
    return json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})


@dataclass
class World:
    moto: object
    kube: object
    bin_dir: Path
    vpc: str = ""
    subnets: list[str] = field(default_factory=list)

    def c(self, service: str):
        return self.moto.client(service, REGION)

    # --- the cloud controller in the double ------------------------------------------------
    def wire_load_balancers(self) -> None:
        self.kube.on_load_balancer(create=self._create_lb, delete=self._delete_lb)

    def _lb_tags(self, svc: dict) -> list[dict]:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        return tag_list({f"kubernetes.io/cluster/{NAME}": "owned", "kubernetes.io/service-name": f"{ns}/{name}"})

    def _create_lb(self, svc: dict) -> str:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        short = "k8s-" + hashlib.sha1(f"{ns}/{name}".encode()).hexdigest()[:20]
        tags = self._lb_tags(svc)
        ec2, elbv2 = self.c("ec2"), self.c("elbv2")
        sg = ec2.create_security_group(
            GroupName=f"k8s-elb-{short}", Description=f"Security group for Kubernetes ELB {short} ({ns}/{name})", VpcId=self.vpc,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
        )["GroupId"]
        lb = elbv2.create_load_balancer(Name=short, Subnets=self.subnets, SecurityGroups=[sg], Type="network", Scheme="internet-facing", Tags=tags)
        elbv2.create_target_group(Name=f"{short[:24]}-tg", Protocol="TCP", Port=8000, VpcId=self.vpc, TargetType="instance", Tags=tags)
        return lb["LoadBalancers"][0]["DNSName"]

    def _delete_lb(self, svc: dict) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        wanted = f"{ns}/{name}"
        tagging = self.c("resourcegroupstaggingapi")
        found = tagging.get_resources(TagFilters=[{"Key": "kubernetes.io/service-name", "Values": [wanted]}])["ResourceTagMappingList"]
        arns = [item["ResourceARN"] for item in found]
        for arn in arns:
            if ":loadbalancer/" in arn:
                self.c("elbv2").delete_load_balancer(LoadBalancerArn=arn)
        for arn in arns:
            if ":targetgroup/" in arn:
                self.c("elbv2").delete_target_group(TargetGroupArn=arn)
        for arn in arns:
            if ":security-group/" in arn:
                self.c("ec2").delete_security_group(GroupId=arn.rsplit("/", 1)[1])

    # --- what the other verbs leave behind ----------------------------------------------------
    def seed(self) -> None:
        self.seed_build()
        self.seed_cluster()
        self.seed_k8s()
        self.seed_foreign()

    def seed_build(self) -> None:
        s3 = self.c("s3")
        s3.create_bucket(Bucket=BUILD_BUCKET)
        s3.put_bucket_tagging(Bucket=BUILD_BUCKET, Tagging={"TagSet": tag_list(TAGS)})
        s3.put_bucket_versioning(Bucket=BUILD_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        for body in (b"one", b"two"):  # two versions of the same key, then a delete marker
            s3.put_object(Bucket=BUILD_BUCKET, Key="context/abc.zip", Body=body)
        s3.delete_object(Bucket=BUILD_BUCKET, Key="context/abc.zip")
        s3.put_object(Bucket=BUILD_BUCKET, Key="context/def.zip", Body=b"x" * 1000)
        ecr = self.c("ecr")
        ecr.create_repository(repositoryName=f"llmctl/{NAME}", tags=tag_list(TAGS))
        ecr.put_image(repositoryName=f"llmctl/{NAME}", imageTag="latest", imageManifest=json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": "sha256:" + "c" * 64}, "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2_000_000_000, "digest": "sha256:" + "d" * 64}]}))
        iam = self.c("iam")
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
        iam.create_role(RoleName=f"{NAME}-codebuild", Path=IAM_PATH, AssumeRolePolicyDocument=trust, Tags=tag_list(TAGS))
        iam.put_role_policy(RoleName=f"{NAME}-codebuild", PolicyName="build", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
        self.c("codebuild").create_project(
            name=f"{NAME}-image-build", source={"type": "S3", "location": f"{BUILD_BUCKET}/context/def.zip"}, artifacts={"type": "NO_ARTIFACTS"},
            environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0", "computeType": "BUILD_GENERAL1_LARGE", "privilegedMode": True},
            serviceRole=f"arn:aws:iam::{ACCOUNT}:role{IAM_PATH}{NAME}-codebuild", tags=tag_list(TAGS, "key", "value"),
        )
        self.c("logs").create_log_group(logGroupName=f"/aws/codebuild/{NAME}-image-build", tags=TAGS)
        self.c("secretsmanager").create_secret(Name=f"{NAME}/api-key", SecretString="s3cr3t", Tags=tag_list(TAGS))

    def seed_cluster(self) -> None:
        ec2 = self.c("ec2")
        self.vpc = ec2.create_vpc(CidrBlock="192.168.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [
            ec2.create_subnet(VpcId=self.vpc, CidrBlock=f"192.168.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
            for i, z in ((1, "a"), (2, "b"))
        ]
        iam = self.c("iam")
        eks_trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
        role = iam.create_role(RoleName=f"eksctl-{NAME}-cluster-ServiceRole", AssumeRolePolicyDocument=eks_trust)["Role"]["Arn"]
        cluster = self.c("eks").create_cluster(name=NAME, roleArn=role, resourcesVpcConfig={"subnetIds": self.subnets}, tags=TAGS)["cluster"]
        issuer = cluster["identity"]["oidc"]["issuer"]
        cfn = self.c("cloudformation")
        for suffix in ("cluster", "nodegroup-gpu"):
            cfn.create_stack(StackName=f"eksctl-{NAME}-{suffix}", TemplateBody=_stack_template(),
                             Tags=tag_list({**TAGS, "alpha.eksctl.io/cluster-name": NAME, "eksctl.cluster.k8s.io/v1alpha1/cluster-name": NAME}))
        iam.create_open_id_connect_provider(Url=issuer, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["9" * 40],
                                            Tags=tag_list({"alpha.eksctl.io/cluster-name": NAME}))
        host = issuer.split("://", 1)[1]
        irsa_trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"}, "Action": "sts:AssumeRoleWithWebIdentity"}]})
        # at IAM path `/`, as llmctl made it before roles moved under IAM_PATH: found by its name all the same
        iam.create_role(RoleName=f"{NAME}-vllm-s3-access", AssumeRolePolicyDocument=irsa_trust, Tags=tag_list(TAGS))
        iam.put_role_policy(RoleName=f"{NAME}-vllm-s3-access", PolicyName="model-read", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{MODEL_BUCKET}/*"}]}))
        iam.attach_role_policy(RoleName=f"{NAME}-vllm-s3-access", PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")

    def seed_k8s(self) -> None:
        self.wire_load_balancers()
        for ns in ("vllm", "monitoring"):
            self.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": LABELS}})
        self.kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vllm-llama-env", "namespace": "vllm", "labels": LABELS}, "data": {"A": "1"}})
        self.kube.create({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"vllm-{NAME}", "namespace": "vllm", "labels": LABELS},
            "spec": {"type": "LoadBalancer", "selector": {"app": f"vllm-{NAME}"}, "ports": [{"port": 8000, "targetPort": 8000}]},
        })
        self.kube.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": f"{NAME}-prometheus", "labels": LABELS},
                          "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
        self.kube.create({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "nvidia-device-plugin", "namespace": "kube-system", "labels": LABELS},
                          "spec": {"selector": {"matchLabels": {"name": "ndp"}}, "template": {"metadata": {"labels": {"name": "ndp"}}, "spec": {"containers": [{"name": "ndp", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.2"}]}}}})
        self.kube.wait_for(lambda: self.lb_arns(), timeout=10)

    def seed_foreign(self) -> None:
        self.seed_foreign_aws()
        s3 = self.c("s3")
        s3.create_bucket(Bucket=MODEL_BUCKET)
        s3.put_object(Bucket=MODEL_BUCKET, Key="llama-2-7b-merged-vllm/config.json", Body=b"{}")
        other_labels = {**LABELS, "app.kubernetes.io/instance": OTHER}
        self.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other-ns", "labels": other_labels}})
        self.kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep-me", "namespace": "default", "labels": other_labels}, "data": {}})

    def seed_foreign_aws(self) -> None:
        """An untagged bucket, another deployment's bucket, role and repository."""
        s3 = self.c("s3")
        s3.create_bucket(Bucket=UNTAGGED_BUCKET)
        s3.create_bucket(Bucket=OTHER_BUCKET)
        s3.put_bucket_tagging(Bucket=OTHER_BUCKET, Tagging={"TagSet": tag_list(OTHER_TAGS)})
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
        self.c("iam").create_role(RoleName=f"{OTHER}-codebuild", AssumeRolePolicyDocument=trust, Tags=tag_list(OTHER_TAGS))
        self.c("ecr").create_repository(repositoryName=f"llmctl/{OTHER}", tags=tag_list(OTHER_TAGS))

    # --- independent checks (not through the code under test) --------------------------------
    def lb_arns(self) -> list[str]:
        found = self.c("resourcegroupstaggingapi").get_resources(TagFilters=[{"Key": f"kubernetes.io/cluster/{NAME}", "Values": ["owned"]}])
        return sorted(item["ResourceARN"] for item in found["ResourceTagMappingList"])

    def ours(self) -> dict[str, list[str]]:
        """Everything of deployment NAME that still exists, by independent look-ups."""
        iam, eks, ecr, cb, cfn = self.c("iam"), self.c("eks"), self.c("ecr"), self.c("codebuild"), self.c("cloudformation")
        tagged = self.c("resourcegroupstaggingapi").get_resources(TagFilters=[{"Key": "llmctl.io/deployment", "Values": [NAME]}])
        roles = [r["RoleName"] for r in iam.list_roles()["Roles"]
                 if {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=r["RoleName"])["Tags"]}.get("llmctl.io/deployment") == NAME]
        repos = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]
                 if {t["Key"]: t["Value"] for t in ecr.list_tags_for_resource(resourceArn=r["repositoryArn"])["tags"]}.get("llmctl.io/deployment") == NAME]
        return {
            "tagging_api": sorted(item["ResourceARN"] for item in tagged["ResourceTagMappingList"]),
            "roles": sorted(roles),
            "repositories": repos,
            "clusters": eks.list_clusters()["clusters"],
            "codebuild": [p for p in cb.list_projects()["projects"] if p.startswith(NAME)],
            "stacks": sorted(s["StackName"] for s in cfn.describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"),
            "oidc": [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]],
            "load_balancers": self.lb_arns(),
            "k8s": sorted(
                f"{kind}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
                for api, kind in (("v1", "Namespace"), ("v1", "Service"), ("v1", "ConfigMap"), ("apps/v1", "DaemonSet"), ("rbac.authorization.k8s.io/v1", "ClusterRole"))
                for o in self.kube.list(api, kind, None, "app.kubernetes.io/instance=" + NAME)
            ),
        }

    def nothing_left(self) -> bool:
        return not any(self.ours().values())

    def foreign_aws(self) -> dict:
        s3, iam, ecr = self.c("s3"), self.c("iam"), self.c("ecr")
        buckets = sorted(b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"] != BUILD_BUCKET)
        return {
            "buckets": buckets,
            "model_objects": sorted(o["Key"] for o in s3.list_objects_v2(Bucket=MODEL_BUCKET).get("Contents", [])) if MODEL_BUCKET in buckets else None,
            "other_role": iam.get_role(RoleName=f"{OTHER}-codebuild")["Role"]["Arn"],
            "other_repo": ecr.describe_repositories(repositoryNames=[f"llmctl/{OTHER}"])["repositories"][0]["repositoryArn"],
        }

    def foreign(self) -> dict:
        """What teardown must leave exactly as it was."""
        return {
            **self.foreign_aws(),
            "other_ns": [n["metadata"]["name"] for n in self.kube.list("v1", "Namespace", None, "app.kubernetes.io/instance=" + OTHER)],
            "other_cm": [c["metadata"]["name"] for c in self.kube.list("v1", "ConfigMap", "default", "app.kubernetes.io/instance=" + OTHER)],
        }


@pytest.fixture
def world(aws, kube, llmctl, fake_eksctl) -> World:
    """A project for deployment NAME whose CLI reaches moto, the double and the shared fake eksctl."""
    llmctl.write_config(CONFIG)
    llmctl.env.update(KUBECONFIG=str(kube.kubeconfig_path))
    return World(aws, kube, fake_eksctl.bin_dir)


def in_process_teardown(world: World, **overrides):
    """The teardown action wired to moto, the double and the fake eksctl, for in-process tests.

    `overrides` may name fields of the `Discovery` (e.g. `model_bucket`) or of the `Teardown`.
    """
    import dataclasses

    import yaml

    from llmctl.actions.inventory import Discovery
    from llmctl.actions.teardown import Teardown
    from llmctl.aws.session import AwsClients
    from llmctl.config import LlmctlConfig, Names
    from llmctl.eksctl import Eksctl
    from llmctl.k8s.client import Kube

    cfg = LlmctlConfig.model_validate(yaml.safe_load(CONFIG))
    lines: list[str] = []
    options = {
        "names": Names.from_config(cfg),
        "aws": AwsClients(REGION),
        "kube_factory": lambda: Kube.from_kubeconfig(str(world.kube.kubeconfig_path)),
        "config_model_bucket": MODEL_BUCKET,
        "eksctl": Eksctl(str(world.bin_dir / "eksctl")),
        "log": lines.append,
        "lb_wait_s": 10,
        "namespace_wait_s": 10,
        "poll_s": 0.2,
    }
    options.update(overrides)
    discovery_fields = {f.name for f in dataclasses.fields(Discovery) if f.init}
    discovery = Discovery(**{k: v for k, v in options.items() if k in discovery_fields})
    action = Teardown(inventory=discovery, **{k: v for k, v in options.items() if k not in discovery_fields})
    action.lines = lines
    return action
