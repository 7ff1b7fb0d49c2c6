"""What discovery finds: resources, each assigned to the teardown step that deletes it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

LOAD_BALANCERS, KUBERNETES, IRSA, CLUSTER, BUILD, UNSTEPPED = 1, 2, 3, 4, 5, 0
# Types with no charge of their own (they still count as leftovers when found in scope).
FREE_TYPES = {
    "aws_iam_role", "aws_iam_openid_connect_provider", "aws_security_group", "aws_lb_target_group",
    "aws_cloudformation_stack", "aws_codebuild_project", "k8s_service", "k8s_namespace", "k8s_object",
    "aws_iam_policy", "aws_iam_instance_profile", "aws_launch_template",
}


@dataclass
class Resource:
    """One thing a deployment owns: a Terraform-like type, a name, the teardown step that deletes it."""

    type: str
    name: str
    id: str
    step: int = UNSTEPPED
    monthly_cost: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def billable(self) -> bool:
        return self.type not in FREE_TYPES

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("extra")
        data["billable"] = self.billable
        return data


@dataclass
class Inventory:
    resources: list[Resource] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def in_steps(self, steps: Iterable[int]) -> list[Resource]:
        wanted = set(steps)
        return [r for r in self.resources if r.step in wanted]

    def monthly_cost(self, steps: Iterable[int]) -> float:
        return round(sum(r.monthly_cost or 0.0 for r in self.in_steps(steps)), 2)
