"""Everything a deployment owns, found by tags (never by name pattern), each assigned to the
teardown step that deletes it. Shared by `teardown` (plan, each step's observation, verify) and
`cost --running` (what is billed now).

Two kinds of source, merged by ARN:

* the Resource Groups Tagging API (`llmctl.io/deployment=<name>` and `llmctl.io/managed-by=
  llmctl`; for the cluster also the tags eksctl and the AWS cloud controller put on what they
  create: `alpha.eksctl.io/cluster-name`, `kubernetes.io/cluster/<c>`, `elbv2.k8s.aws/cluster`);
* direct look-ups of the names this deployment derives (`config/names.py`), each kept only when
  its own tags say it is ours. They cover what the Tagging API cannot return: IAM roles and OIDC
  providers (IAM is not a Tagging API service), CloudFormation stacks (selected by eksctl's
  cluster tag), Kubernetes objects, and ECR repositories, CodeBuild projects and EKS clusters,
  which the real Tagging API returns but moto's does not (moto 5.2 registers no tagging backend
  for ecr, codebuild, eks or iam), so a look-up by the known name keeps tests and AWS alike.

* `resources.py`: what is found (`Resource`, `Inventory`) and the step numbers;
* `discovery.py`: `Discovery` (the injected clients) and `Scan`, one pass over the world in which
  each read is made once, whichever source asks;
* `sources.py`: one small function `(Scan) -> list[Resource]` per source, listed under its step
  in `SOURCES`: a new source is a new function there.
"""

from llmctl.actions.inventory.discovery import ClusterInfo, Discovery, Scan
from llmctl.actions.inventory.resources import (
    BUILD, CLUSTER, IRSA, KUBERNETES, LOAD_BALANCERS, UNSTEPPED, Inventory, Resource,
)
from llmctl.actions.inventory.sources import SOURCES, cluster_oidc_providers

__all__ = [
    "BUILD", "CLUSTER", "IRSA", "KUBERNETES", "LOAD_BALANCERS", "SOURCES", "UNSTEPPED", "ClusterInfo", "Discovery",
    "Inventory", "Resource", "Scan", "cluster_oidc_providers",
]
