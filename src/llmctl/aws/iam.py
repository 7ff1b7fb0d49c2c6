"""IAM adapter: a role with exactly the wanted trust policy, inline policies and tags.

Used by the CodeBuild service role and by the cluster's IRSA role alike.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from llmctl.aws.session import aws_error, error_code
from llmctl.errors import LlmctlError
from llmctl.plan import Action, Step

_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


def role_arn(account_id: str, name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account_id}:role/{name}"


def _document(value) -> dict:
    """Policy documents come back URL-encoded JSON from the raw API and as dicts from boto3."""
    return json.loads(unquote(value)) if isinstance(value, str) else value


def role_step(
    iam,
    name: str,
    trust_policy: dict,
    inline_policies: dict[str, dict],
    tags: dict[str, str],
    description: str = "",
) -> Step:
    """Ensure role `name`: create it, or update trust/inline policies/tags to exactly the wanted ones.

    Inline policies not in `inline_policies` are deleted, so the role never keeps a permission
    llmctl no longer grants. A re-run after any partial failure finishes the job.
    """

    def drift() -> set[str] | None:
        """None when the role does not exist; else the parts that differ."""
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except Exception as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise
        found: set[str] = set()
        if _document(role["AssumeRolePolicyDocument"]) != trust_policy:
            found.add("trust policy")
        existing = set(iam.list_role_policies(RoleName=name)["PolicyNames"])
        for policy_name, document in inline_policies.items():
            if policy_name not in existing:
                found.add(f"policy {policy_name}")
            elif _document(iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]) != document:
                found.add(f"policy {policy_name}")
        found.update(f"extra policy {p}" for p in existing - set(inline_policies))
        current_tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name).get("Tags", [])}
        if any(current_tags.get(k) != v for k, v in tags.items()):
            found.add("tags")
        return found

    def observe() -> Action:
        try:
            found = drift()
        except Exception as exc:
            raise _iam_error(exc, name, "checking") from None
        return "create" if found is None else ("update" if found else "none")

    def apply() -> str | None:
        tag_list = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
        try:
            found = drift()
            if found is None:
                iam.create_role(
                    RoleName=name,
                    AssumeRolePolicyDocument=json.dumps(trust_policy),
                    Description=description,
                    Tags=tag_list,
                )
                found = drift() or set()
            if "trust policy" in found:
                iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust_policy))
            for policy_name, document in inline_policies.items():
                if f"policy {policy_name}" in found:
                    iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
            for item in sorted(found):
                if item.startswith("extra policy "):
                    iam.delete_role_policy(RoleName=name, PolicyName=item.removeprefix("extra policy "))
            if "tags" in found:
                iam.tag_role(RoleName=name, Tags=tag_list)
        except Exception as exc:
            raise _iam_error(exc, name, "creating or updating") from None
        return ", ".join(sorted(found)) if found else None

    return Step(f"IAM role {name}", "iam-role", observe, apply, detail=description or None)


def _iam_error(exc: Exception, name: str, doing: str) -> LlmctlError:
    if error_code(exc) in _DENIED:
        return LlmctlError(
            f"no permission to manage IAM role {name} ({doing} it was denied)",
            hint="ask an administrator for iam:CreateRole, iam:PutRolePolicy, iam:TagRole on this role, "
            "or to create it once; re-running then finishes the rest",
        )
    return aws_error(exc, f"{doing} IAM role {name}")
