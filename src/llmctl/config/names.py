"""Every resource name and tag, derived from the deployment name in one place.

Teardown finds resources by these tags, so adapters take tags from here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.config.model import LlmctlConfig

TAG_DEPLOYMENT = "llmctl.io/deployment"
TAG_MANAGED_BY = "llmctl.io/managed-by"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_INSTANCE = "app.kubernetes.io/instance"
FIELD_MANAGER = "llmctl"


@dataclass(frozen=True)
class Names:
    deployment: str
    region: str
    cluster: str
    app: str
    namespace: str
    service_account: str

    @classmethod
    def from_config(cls, cfg: LlmctlConfig) -> "Names":
        name = cfg.project.name
        return cls(
            deployment=name,
            region=cfg.aws.region,
            cluster=cfg.cluster.name or name,
            app=cfg.deploy.app_name or f"vllm-{name}",
            namespace=cfg.deploy.namespace,
            service_account=cfg.deploy.service_account,
        )

    # --- AWS ---------------------------------------------------------------------------------
    def build_bucket(self, account_id: str) -> str:
        """Globally unique: bucket names are shared by every AWS account."""
        return f"{self.deployment}-build-{account_id}-{self.region}"

    @property
    def ecr_repository(self) -> str:
        return f"llmctl/{self.deployment}"

    @property
    def codebuild_project(self) -> str:
        return f"{self.deployment}-image-build"

    @property
    def codebuild_role(self) -> str:
        return f"{self.deployment}-codebuild"

    @property
    def codebuild_log_group(self) -> str:
        return f"/aws/codebuild/{self.codebuild_project}"

    @property
    def irsa_role(self) -> str:
        return f"{self.deployment}-vllm-s3-access"

    @property
    def iam_path(self) -> str:
        """The IAM path for llmctl's new IAM resources of this deployment; teardown lists it (and,
        as IAM is not in the Tagging API, every role, policy and instance profile's tags)."""
        return f"/llmctl/{self.deployment}/"

    # eksctl's names for what its `karpenter` section creates (pkg/cfn/builder/karpenter.go); the
    # interruption queue is named after the cluster (Karpenter's settings.interruptionQueue)
    @property
    def karpenter_node_role(self) -> str:
        return f"eksctl-KarpenterNodeRole-{self.cluster}"

    @property
    def karpenter_instance_profile(self) -> str:
        return f"eksctl-KarpenterNodeInstanceProfile-{self.cluster}"

    @property
    def karpenter_interruption_queue(self) -> str:
        return self.cluster

    @property
    def eksctl_stack_prefix(self) -> str:
        return f"eksctl-{self.cluster}-"

    @property
    def aws_tags(self) -> dict[str, str]:
        return {TAG_DEPLOYMENT: self.deployment, TAG_MANAGED_BY: "llmctl"}

    # --- Kubernetes --------------------------------------------------------------------------
    @property
    def k8s_labels(self) -> dict[str, str]:
        return {LABEL_MANAGED_BY: "llmctl", LABEL_INSTANCE: self.deployment}

    @property
    def k8s_selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.k8s_labels.items())

    @property
    def api_key_secret(self) -> str:
        return f"{self.app}-api-key"

