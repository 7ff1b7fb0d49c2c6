"""CloudWatch Logs adapter: the build log group (retention, tags), reading log streams, deletion."""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.aws.errors import AWS_ERRORS, aws_call, aws_error, error_code
from llmctl.plan import Action, Step

NOT_FOUND = "ResourceNotFoundException"


def log_group_step(logs, name: str, retention_days: int, wanted_tags: dict[str, str]) -> Step:
    """Ensure the log group exists with its retention and tags (so the build role needs no CreateLogGroup)."""

    def current() -> dict | None:
        groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
        return next((g for g in groups if g["logGroupName"] == name), None)

    def drift(group: dict) -> set[str]:
        found = set()
        if group.get("retentionInDays") != retention_days:
            found.add("retention")
        existing = logs.list_tags_log_group(logGroupName=name).get("tags", {})
        if any(existing.get(k) != v for k, v in wanted_tags.items()):
            found.add("tags")
        return found

    def observe() -> Action:
        try:
            group = current()
            return "create" if group is None else ("update" if drift(group) else "none")
        except AWS_ERRORS as exc:
            raise aws_error(exc, f"checking log group {name}") from None

    def apply() -> str | None:
        try:
            group = current()
            if group is None:
                logs.create_log_group(logGroupName=name, tags=wanted_tags)
                group = {"logGroupName": name}
            changed = drift(group)
            if "retention" in changed:
                logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
            if "tags" in changed:
                logs.tag_log_group(logGroupName=name, tags=wanted_tags)
        except AWS_ERRORS as exc:
            raise aws_error(exc, f"configuring log group {name}") from None
        return ", ".join(sorted(changed)) if changed else None

    return Step(f"log group {name}", "log-group", observe, apply, detail=f"{retention_days} days")


@dataclass
class LogCursor:
    """Where a reader of one log stream has got to (CloudWatch's forward token)."""

    group: str
    stream: str
    token: str | None = None


def read_new_lines(logs, cursor: LogCursor) -> list[str]:
    """Every line appended since the cursor, oldest first; [] while the stream does not exist yet."""
    lines: list[str] = []
    while True:
        kwargs = {"logGroupName": cursor.group, "logStreamName": cursor.stream, "startFromHead": True}
        if cursor.token:
            kwargs["nextToken"] = cursor.token
        try:
            page = logs.get_log_events(**kwargs)
        except AWS_ERRORS as exc:
            if error_code(exc) == NOT_FOUND:
                return lines
            raise aws_error(exc, f"reading log stream {cursor.group}/{cursor.stream}") from None
        events = page.get("events", [])
        lines.extend(event["message"].rstrip("\n") for event in events)
        token = page.get("nextForwardToken")
        # CloudWatch returns the same token again once the stream is read to its end.
        if not events or token == cursor.token:
            cursor.token = token or cursor.token
            return lines
        cursor.token = token


def last_lines(logs, group: str, stream: str, count: int) -> list[str]:
    """The last `count` lines of a stream (for failure reports); [] when there is no stream."""
    try:
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=False, limit=count)
    except AWS_ERRORS as exc:
        if error_code(exc) == NOT_FOUND:
            return []
        raise aws_error(exc, f"reading log stream {group}/{stream}") from None
    return [event["message"].rstrip("\n") for event in page.get("events", [])][-count:]


def delete_log_group(logs, name: str) -> None:
    aws_call(f"deleting log group {name}", lambda: logs.delete_log_group(logGroupName=name), absent=NOT_FOUND)
