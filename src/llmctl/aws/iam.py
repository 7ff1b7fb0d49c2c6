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


def role_arn(account_id: str, name: str, path: str = "/", partition: str = "aws") -> str:
    """A role's ARN carries its IAM path: `arn:aws:iam::<acct>:role/llmctl/demo/demo-codebuild`."""
    return f"arn:{partition}:iam::{account_id}:role{path}{name}"


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


def existing_role_arn(iam, name: str, account_id: str, path: str) -> str:
    """The ARN of role `name`: its own when it exists (a role an earlier llmctl made at IAM path `/`
    keeps it), else the one it gets when created under `path`."""
    role = get_role(iam, name)
    return role["Arn"] if role else role_arn(account_id, name, path)


def legacy_path_note(role: dict | None, path: str) -> str | None:
    """Why an existing role is not under `path`: IAM cannot move a role, and recreating it would change
    its ARN under running pods and builds, so llmctl keeps it where an earlier version made it."""
    if role is None or role.get("Path", "/") == path:
        return None
    return (f"kept at IAM path {role.get('Path', '/')} where an earlier llmctl made it (IAM cannot move a role); "
            f"`llmctl teardown` removes it and the next run creates it under {path}")


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
    path: str = "/",
) -> Step:
    """Ensure role `name`: create it under IAM path `path`, or update trust/inline policies/tags to
    exactly the wanted ones.

    Inline policies not in `wanted_policies` are deleted, so the role never keeps a permission
    llmctl no longer grants. A re-run after any partial failure finishes the job. Role names are
    unique in an account whatever their path, so a role of this name at another path (an earlier
    llmctl's `/`) is this role: it is kept and updated in place, and the step says so.
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
                    Path=path,
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

    try:
        moved = legacy_path_note(_role_or_none(iam, name), path)
    except AWS_ERRORS:
        moved = None  # observe() reports the failure in plain words
    return Step(f"IAM role {name}", "iam-role", observe, apply, detail=moved or description or None)


def _iam_error(exc: Exception, name: str, doing: str) -> LlmctlError:
    if is_denied(exc):
        return LlmctlError(
            f"no permission to manage IAM role {name} ({doing} it was denied)",
            hint="ask an administrator for iam:CreateRole, iam:PutRolePolicy, iam:TagRole on this role, "
            "or to create it once; re-running then finishes the rest",
        )
    return aws_error(exc, f"{doing} IAM role {name}")


# --- discovery: IAM is not a Resource Groups Tagging API service, so list and read each one's tags --
def _paged(iam, operation: str, key: str, **kwargs) -> list[dict]:
    return [item for page in iam.get_paginator(operation).paginate(**kwargs) for item in page.get(key, [])]


def _tags_of(read) -> dict[str, str] | None:
    """`read()`'s tags, or None when the entity went between the listing and this read."""
    try:
        return tags(read())
    except AWS_ERRORS as exc:
        if error_code(exc) == NO_SUCH_ENTITY:
            return None
        raise


def roles(iam, path_prefix: str = "/") -> list[dict]:
    """Every role under `path_prefix`, its tags as a dict under `"tags"` (ListRoles leaves them out)."""
    def read() -> list[dict]:
        found = []
        for role in _paged(iam, "list_roles", "Roles", PathPrefix=path_prefix):
            role_tags = _tags_of(lambda: iam.list_role_tags(RoleName=role["RoleName"]).get("Tags"))
            if role_tags is not None:
                found.append({**role, "tags": role_tags})
        return found

    try:
        return read()
    except AWS_ERRORS as exc:
        raise aws_error(exc, f"listing IAM roles under {path_prefix}") from None


def local_policies(iam, path_prefix: str = "/") -> list[dict]:
    """The account's own managed policies under `path_prefix`, each with `"tags"`."""
    def read() -> list[dict]:
        found = []
        for policy in _paged(iam, "list_policies", "Policies", Scope="Local", PathPrefix=path_prefix):
            policy_tags = _tags_of(lambda: iam.list_policy_tags(PolicyArn=policy["Arn"]).get("Tags"))
            if policy_tags is not None:
                found.append({**policy, "tags": policy_tags})
        return found

    try:
        return read()
    except AWS_ERRORS as exc:
        raise aws_error(exc, f"listing IAM policies under {path_prefix}") from None


def instance_profiles(iam, path_prefix: str = "/") -> list[dict]:
    """Instance profiles under `path_prefix`, each with `"tags"` (from GetInstanceProfile, which has them)."""
    def read() -> list[dict]:
        found = []
        for profile in _paged(iam, "list_instance_profiles", "InstanceProfiles", PathPrefix=path_prefix):
            name = profile["InstanceProfileName"]
            profile_tags = _tags_of(lambda: iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"].get("Tags"))
            if profile_tags is not None:
                found.append({**profile, "tags": profile_tags})
        return found

    try:
        return read()
    except AWS_ERRORS as exc:
        raise aws_error(exc, f"listing IAM instance profiles under {path_prefix}") from None


def delete_policy(iam, arn: str) -> None:
    """Detach the policy from every role, user and group, delete its other versions, then the policy."""
    try:
        for page in iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=arn):
            for role in page.get("PolicyRoles", []):
                iam.detach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)
            for user in page.get("PolicyUsers", []):
                iam.detach_user_policy(UserName=user["UserName"], PolicyArn=arn)
            for group in page.get("PolicyGroups", []):
                iam.detach_group_policy(GroupName=group["GroupName"], PolicyArn=arn)
        for version in iam.list_policy_versions(PolicyArn=arn).get("Versions", []):
            if not version.get("IsDefaultVersion"):
                iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
        iam.delete_policy(PolicyArn=arn)
    except AWS_ERRORS as exc:
        if error_code(exc) != NO_SUCH_ENTITY:
            raise aws_error(exc, f"deleting IAM policy {arn}") from None


def delete_instance_profile(iam, name: str) -> None:
    """Take its roles out (IAM refuses otherwise), then delete the instance profile."""
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        for role in profile.get("Roles", []):
            iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role["RoleName"])
        iam.delete_instance_profile(InstanceProfileName=name)
    except AWS_ERRORS as exc:
        if error_code(exc) != NO_SUCH_ENTITY:
            raise aws_error(exc, f"deleting IAM instance profile {name}") from None
