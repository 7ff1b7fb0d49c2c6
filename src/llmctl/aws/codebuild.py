"""CodeBuild adapter: the image-build project (and its deletion), starting builds, reading their state."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from llmctl.aws.errors import AWS_ERRORS, aws_call, aws_error, error_code, error_message
from llmctl.aws.tagging import tag_list, tags
from llmctl.errors import LlmctlError
from llmctl.plan import Action, Step

# Fields of a project llmctl owns; anything else (badges, webhooks) is left as the user set it.
_OWNED = ("source", "artifacts", "environment", "serviceRole", "timeoutInMinutes", "logsConfig")
FAILED_STATUSES = ("FAILED", "FAULT", "TIMED_OUT", "STOPPED", "CLIENT_ERROR")


def get_project(codebuild, name: str) -> dict | None:
    projects = aws_call(f"looking up CodeBuild project {name}",
                        lambda: codebuild.batch_get_projects(names=[name]).get("projects", []))
    return projects[0] if projects else None


def _differs(project: dict, spec: dict) -> list[str]:
    """Owned top-level fields whose wanted keys differ from what the project has."""

    def covers(have, want) -> bool:
        if isinstance(want, dict):
            return isinstance(have, dict) and all(covers(have.get(k), v) for k, v in want.items())
        if isinstance(want, list):
            return isinstance(have, list) and len(have) == len(want) and all(covers(h, w) for h, w in zip(have, want))
        return have == want

    return [key for key in _OWNED if key in spec and not covers(project.get(key), spec[key])]


def project_step(codebuild, spec: dict, wanted_tags: dict[str, str], *, sleep: Callable[[float], None] = time.sleep) -> Step:
    """Ensure the project described by `spec` (create_project arguments without tags)."""
    name = spec["name"]

    def observe() -> Action:
        project = get_project(codebuild, name)
        if project is None:
            return "create"
        current_tags = tags(project.get("tags"), "key", "value")
        changed = _differs(project, spec) or any(current_tags.get(k) != v for k, v in wanted_tags.items())
        return "update" if changed else "none"

    def apply() -> str | None:
        project = get_project(codebuild, name)
        if project is None:
            _retry_new_role(lambda: codebuild.create_project(**spec, tags=tag_list(wanted_tags, "key", "value")), name, sleep)
            return None
        current_tags = tags(project.get("tags"), "key", "value")
        merged = tag_list({**current_tags, **wanted_tags}, "key", "value")
        changed = _differs(project, spec)
        _retry_new_role(lambda: codebuild.update_project(**spec, tags=merged), name, sleep)
        return ", ".join(changed) or "tags"

    return Step(f"CodeBuild project {name}", "codebuild-project", observe, apply)


def _retry_new_role(call: Callable[[], object], name: str, sleep: Callable[[float], None], attempts: int = 12) -> None:
    """A just-created role takes seconds to become assumable by CodeBuild (IAM is eventually consistent)."""
    for attempt in range(attempts):
        try:
            call()
            return
        except AWS_ERRORS as exc:
            assume_denied = "not authorized to perform: sts:AssumeRole" in error_message(exc)
            if error_code(exc) == "InvalidInputException" and assume_denied and attempt < attempts - 1:
                sleep(5)
                continue
            raise aws_error(exc, f"creating or updating CodeBuild project {name}") from None


def start_build(codebuild, project: str, source_location: str, env: dict[str, str], buildspec: str) -> dict:
    """Start one build. The idempotency token is fixed for this call, so botocore's retry of a start whose
    reply was lost (a 5xx, a dropped connection) returns that build instead of starting a second one."""
    token = str(uuid.uuid4())
    try:
        return codebuild.start_build(
            projectName=project,
            idempotencyToken=token,
            sourceTypeOverride="S3",
            sourceLocationOverride=source_location,
            buildspecOverride=buildspec,
            environmentVariablesOverride=[{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in env.items()],
        )["build"]
    except AWS_ERRORS as exc:
        raise aws_error(exc, f"starting a build of {project}") from None


def get_build(codebuild, build_id: str) -> dict:
    try:
        builds = codebuild.batch_get_builds(ids=[build_id]).get("builds", [])
    except AWS_ERRORS as exc:
        raise aws_error(exc, f"reading build {build_id}") from None
    if not builds:
        raise LlmctlError(f"build {build_id} not found", hint="`llmctl build status` shows this deployment's latest build")
    return builds[0]


def _recent_builds(codebuild, project: str, limit: int) -> tuple[list[str], list[dict]]:
    """The newest build ids of `project` (none when the project is gone) and up to `limit` of those builds."""
    try:
        ids = codebuild.list_builds_for_project(projectName=project, sortOrder="DESCENDING").get("ids", [])
    except AWS_ERRORS as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return [], []
        raise aws_error(exc, f"listing builds of {project}") from None
    if not ids:
        return [], []
    builds = aws_call(f"reading builds of {project}", lambda: codebuild.batch_get_builds(ids=ids[:limit]).get("builds", []))
    return ids, builds


def latest_build_id(codebuild, project: str) -> str | None:
    ids, builds = _recent_builds(codebuild, project, 100)
    if not ids:
        return None
    return max(builds, key=lambda b: str(b.get("startTime", "")))["id"] if builds else ids[0]


def running_build(codebuild, project: str, image_tag: str) -> dict | None:
    """A build of `project` still in progress for `image_tag` (one a killed or interrupted run started), if any."""
    _, builds = _recent_builds(codebuild, project, 20)
    for build in builds:
        variables = {v.get("name"): v.get("value") for v in (build.get("environment") or {}).get("environmentVariables", [])}
        if build.get("buildStatus") == "IN_PROGRESS" and variables.get("IMAGE_TAG") == image_tag:
            return build
    return None


def delete_project(codebuild, name: str) -> None:
    aws_call(f"deleting CodeBuild project {name}", lambda: codebuild.delete_project(name=name),
             absent="ResourceNotFoundException")


def log_location(build: dict, default_group: str) -> tuple[str, str]:
    """(group, stream) of a build's CloudWatch log; CodeBuild names the stream after the build's UUID."""
    logs = build.get("logs") or {}
    group = logs.get("groupName") if logs.get("groupName") not in (None, "null") else default_group
    stream = logs.get("streamName") if logs.get("streamName") not in (None, "null") else build["id"].split(":", 1)[-1]
    return group, stream
