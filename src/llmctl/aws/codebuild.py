"""CodeBuild adapter: the image-build project, starting builds and reading their state."""

from __future__ import annotations

import time
from collections.abc import Callable

from llmctl.aws.session import aws_error, error_code
from llmctl.errors import LlmctlError
from llmctl.plan import Action, Step

# Fields of a project llmctl owns; anything else (badges, webhooks) is left as the user set it.
_OWNED = ("source", "artifacts", "environment", "serviceRole", "timeoutInMinutes", "logsConfig")
FAILED_STATUSES = ("FAILED", "FAULT", "TIMED_OUT", "STOPPED", "CLIENT_ERROR")


def get_project(codebuild, name: str) -> dict | None:
    try:
        projects = codebuild.batch_get_projects(names=[name]).get("projects", [])
    except Exception as exc:
        raise aws_error(exc, f"looking up CodeBuild project {name}") from None
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


def project_step(codebuild, spec: dict, tags: dict[str, str], *, sleep: Callable[[float], None] = time.sleep) -> Step:
    """Ensure the project described by `spec` (create_project arguments without tags)."""
    name = spec["name"]
    tag_list = [{"key": k, "value": v} for k, v in sorted(tags.items())]

    def observe() -> Action:
        project = get_project(codebuild, name)
        if project is None:
            return "create"
        current_tags = {t["key"]: t["value"] for t in project.get("tags") or []}
        changed = _differs(project, spec) or any(current_tags.get(k) != v for k, v in tags.items())
        return "update" if changed else "none"

    def apply() -> str | None:
        project = get_project(codebuild, name)
        if project is None:
            _retry_new_role(lambda: codebuild.create_project(**spec, tags=tag_list), name, sleep)
            return None
        current_tags = {t["key"]: t["value"] for t in project.get("tags") or []}
        merged = [{"key": k, "value": v} for k, v in sorted({**current_tags, **tags}.items())]
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
        except Exception as exc:
            message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
            if error_code(exc) == "InvalidInputException" and "not authorized to perform: sts:AssumeRole" in message and attempt < attempts - 1:
                sleep(5)
                continue
            raise aws_error(exc, f"creating or updating CodeBuild project {name}") from None


def start_build(codebuild, project: str, source_location: str, env: dict[str, str], buildspec: str) -> dict:
    try:
        return codebuild.start_build(
            projectName=project,
            sourceTypeOverride="S3",
            sourceLocationOverride=source_location,
            buildspecOverride=buildspec,
            environmentVariablesOverride=[{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in env.items()],
        )["build"]
    except Exception as exc:
        raise aws_error(exc, f"starting a build of {project}") from None


def get_build(codebuild, build_id: str) -> dict:
    try:
        builds = codebuild.batch_get_builds(ids=[build_id]).get("builds", [])
    except Exception as exc:
        raise aws_error(exc, f"reading build {build_id}") from None
    if not builds:
        raise LlmctlError(f"build {build_id} not found", hint="`llmctl build status` shows this deployment's latest build")
    return builds[0]


def latest_build_id(codebuild, project: str) -> str | None:
    try:
        ids = codebuild.list_builds_for_project(projectName=project, sortOrder="DESCENDING").get("ids", [])
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise aws_error(exc, f"listing builds of {project}") from None
    if not ids:
        return None
    builds = codebuild.batch_get_builds(ids=ids[:100]).get("builds", [])
    return max(builds, key=lambda b: str(b.get("startTime", "")))["id"] if builds else ids[0]


def log_location(build: dict, default_group: str) -> tuple[str, str]:
    """(group, stream) of a build's CloudWatch log; CodeBuild names the stream after the build's UUID."""
    logs = build.get("logs") or {}
    group = logs.get("groupName") if logs.get("groupName") not in (None, "null") else default_group
    stream = logs.get("streamName") if logs.get("streamName") not in (None, "null") else build["id"].split(":", 1)[-1]
    return group, stream
