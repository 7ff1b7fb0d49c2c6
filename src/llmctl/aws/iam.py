"""IAM adapter: a role with exactly the wanted trust policy, inline policies and tags; its look-up
and its deletion.

Used by the CodeBuild service role and by the cluster's IRSA role alike.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from llmctl.aws.errors import AWS_ERRORS, aws_error, error_code, is_denied
from llmctl.aws.tagging import tag_list, tags
from llmctl.errors import LlmctlError
from llmctl.plan import Action, Step

NO_SUCH_ENTITY = "NoSuchEntity"


def role_arn(account_id: str, name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account_id}:role/{name}"


def document(value) -> dict:
    """Policy documents come back URL-encoded JSON from the raw API and as dicts from boto3."""
    return json.loads(unquote(value)) if isinstance(value, str) else value


def _role_or_none(iam, name: str) -> dict | None:
    """The role, or None when it does not exist; other failures raise as AWS raised them."""
    try:
        return iam.get_role(RoleName=name)["Role"]
    except AWS_ERRORS as exc:
        if error_code(exc) == NO_SUCH_ENTITY:
            return None
        raise


def get_role(iam, name: str) -> dict | None:
    """The role with its tags as a dict under `"tags"`, or None when there is no such role."""
    try:
        role = _role_or_none(iam, name)
        if role is None:
            return None
        return {**role, "tags": tags(role.get("Tags") or iam.list_role_tags(RoleName=name).get("Tags"))}
    except AWS_ERRORS as exc:
        raise aws_error(exc, f"looking up IAM role {name}") from None


def inline_policies(iam, name: str) -> dict[str, dict]:
    """The role's inline policies, name -> document."""
    try:
        names = iam.list_role_policies(RoleName=name).get("PolicyNames", [])
        return {p: document(iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]) for p in names}
    except AWS_ERRORS as exc:
        raise aws_error(exc, f"reading the policies of IAM role {name}") from None


def delete_role(iam, name: str) -> None:
    """Inline policies, attached policies and instance profiles first (IAM refuses otherwise), then the role."""
    try:
        for policy in iam.list_role_policies(RoleName=name).get("PolicyNames", []):
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        for policy in iam.list_attached_role_policies(RoleName=name).get("AttachedPolicies", []):
            iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        for profile in iam.list_instance_profiles_for_role(RoleName=name).get("InstanceProfiles", []):
            iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
        iam.delete_role(RoleName=name)
    except AWS_ERRORS as exc:
        if error_code(exc) != NO_SUCH_ENTITY:
            raise aws_error(exc, f"deleting IAM role {name}") from None


def role_step(
    iam,
    name: str,
    trust_policy: dict,
    wanted_policies: dict[str, dict],
    wanted_tags: dict[str, str],
    description: str = "",
) -> Step:
    """Ensure role `name`: create it, or update trust/inline policies/tags to exactly the wanted ones.

    Inline policies not in `wanted_policies` are deleted, so the role never keeps a permission
    llmctl no longer grants. A re-run after any partial failure finishes the job.
    """

    def drift() -> set[str] | None:
        """None when the role does not exist; else the parts that differ."""
        role = _role_or_none(iam, name)
        if role is None:
            return None
        found: set[str] = set()
        if document(role["AssumeRolePolicyDocument"]) != trust_policy:
            found.add("trust policy")
        existing = set(iam.list_role_policies(RoleName=name)["PolicyNames"])
        for policy_name, wanted in wanted_policies.items():
            if policy_name not in existing:
                found.add(f"policy {policy_name}")
            elif document(iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]) != wanted:
                found.add(f"policy {policy_name}")
        found.update(f"extra policy {p}" for p in existing - set(wanted_policies))
        current_tags = tags(iam.list_role_tags(RoleName=name).get("Tags"))
        if any(current_tags.get(k) != v for k, v in wanted_tags.items()):
            found.add("tags")
        return found

    def observe() -> Action:
        try:
            found = drift()
        except AWS_ERRORS as exc:
            raise _iam_error(exc, name, "checking") from None
        return "create" if found is None else ("update" if found else "none")

    def apply() -> str | None:
        try:
            found = drift()
            if found is None:
                iam.create_role(
                    RoleName=name,
                    AssumeRolePolicyDocument=json.dumps(trust_policy),
                    Description=description,
                    Tags=tag_list(wanted_tags),
                )
                found = drift() or set()
            if "trust policy" in found:
                iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust_policy))
            for policy_name, wanted in wanted_policies.items():
                if f"policy {policy_name}" in found:
                    iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(wanted))
            for item in sorted(found):
                if item.startswith("extra policy "):
                    iam.delete_role_policy(RoleName=name, PolicyName=item.removeprefix("extra policy "))
            if "tags" in found:
                iam.tag_role(RoleName=name, Tags=tag_list(wanted_tags))
        except AWS_ERRORS as exc:
            raise _iam_error(exc, name, "creating or updating") from None
        return ", ".join(sorted(found)) if found else None

    return Step(f"IAM role {name}", "iam-role", observe, apply, detail=description or None)


def _iam_error(exc: Exception, name: str, doing: str) -> LlmctlError:
    if is_denied(exc):
        return LlmctlError(
            f"no permission to manage IAM role {name} ({doing} it was denied)",
            hint="ask an administrator for iam:CreateRole, iam:PutRolePolicy, iam:TagRole on this role, "
            "or to create it once; re-running then finishes the rest",
        )
    return aws_error(exc, f"{doing} IAM role {name}")
