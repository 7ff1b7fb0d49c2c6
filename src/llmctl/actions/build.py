"""`llmctl build`: ensure the build infrastructure, ship the context, run CodeBuild, record the digest.

Plan (`build_infra.py`): the S3 build bucket, the ECR repository, the build log group, the
CodeBuild service role (least privilege) and the CodeBuild project are idempotent steps (observe,
then create/update). Then the context is zipped deterministically (`build_context.py`); an image already in ECR for its hash is reused
unless forced; otherwise the zip is uploaded, a build started and watched (phases, log lines),
and the pushed image's digest recorded in local state for `llmctl deploy`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmctl.actions.build_context import ContextArchive, image_tag, zip_context
from llmctl.actions.build_infra import infrastructure
from llmctl.aws import codebuild as cb
from llmctl.aws import ecr as ecr_api
from llmctl.aws import logs as logs_api
from llmctl.aws import s3 as s3_api
from llmctl.aws import secretsmanager as secrets_api
from llmctl.errors import EXIT_INTERRUPTED, ConfigError, LlmctlError
from llmctl.plan import StepResult

FAILURE_LOG_LINES = 50
STATE_IMAGE = "image"  # {"uri", "repository", "tag", "digest", "build_id"}: deploy's default image
STATE_BUILD = "last_build"  # {"id", "tag", "repository"}: the default of `build status` / `build logs`


@dataclass
class BuildOptions:
    force: bool = False
    wait: bool = True
    dry_run: bool = False
    poll_s: float = 5.0
    wait_timeout_s: float | None = None  # default: the build's own timeout plus queueing slack


@dataclass
class BuildResult:
    status: str  # SUCCEEDED, SKIPPED (image already in ECR), IN_PROGRESS (--no-wait), PLANNED (--dry-run)
    image: str | None = None
    digest: str | None = None
    tag: str | None = None
    build_id: str | None = None
    context_sha256: str | None = None
    steps: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


class BuildManager:
    """Built from injected clients (`aws.s3`, `aws.ecr`, ...), names, config, state and output."""

    def __init__(self, aws, names, cfg, state, out, *, config_dir: Path, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.aws = aws
        self.names = names
        self.cfg = cfg
        self.state = state
        self.out = out
        self.config_dir = config_dir
        self.sleep = sleep
        self.clock = clock

    # --- inputs, checked before anything is created ----------------------------------------
    def context_dir(self) -> Path:
        from llmctl import resources

        if self.cfg.build.context:
            path = Path(self.cfg.build.context).expanduser()
            return path if path.is_absolute() else (self.config_dir / path).resolve()
        return resources.dockerfile().parent

    def buildspec_text(self, context: Path, secret_arn: str | None) -> str:
        """The buildspec sent with the build: the context's own (else llmctl's), Docker Hub secret set or dropped."""
        import yaml

        from llmctl import resources

        source = context / "buildspec.yml" if (context / "buildspec.yml").is_file() else resources.buildspec()
        try:
            spec = yaml.safe_load(source.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(spec, dict) or "phases" not in spec:
            raise ConfigError(f"{source}: not a CodeBuild buildspec (no phases)")
        env = spec.setdefault("env", {})
        if secret_arn:
            env["secrets-manager"] = {
                "DOCKERHUB_USERNAME": f"{secret_arn}:username",
                "DOCKERHUB_PASSWORD": f"{secret_arn}:password",
            }
        else:
            env.pop("secrets-manager", None)
        return yaml.safe_dump(spec, sort_keys=False, width=1000)

    def dockerhub_secret_arn(self) -> str | None:
        name = self.cfg.build.dockerhub_secret
        if not name:
            return None
        arn = secrets_api.secret_arn(self.aws.secretsmanager, name)
        if arn is None:
            raise ConfigError(
                f"build.dockerhub_secret: no secret {name!r} in Secrets Manager ({self.names.region})",
                hint=f"create it: aws secretsmanager create-secret --name {name} "
                "--secret-string '{\"username\":\"...\",\"password\":\"<access token>\"}', or unset build.dockerhub_secret",
            )
        return arn

    # --- the command --------------------------------------------------------------------------
    def run(self, options: BuildOptions) -> BuildResult:
        context = self.context_dir()
        with tempfile.TemporaryDirectory(prefix="llmctl-build-") as tmp:
            # Every input is checked before anything is created.
            archive = zip_context(context, Path(tmp) / "context.zip")
            secret_arn = self.dockerhub_secret_arn()
            buildspec = self.buildspec_text(context, secret_arn)
            if not secret_arn:
                self.out.warn("build.dockerhub_secret is not set: CodeBuild pulls the base image anonymously (Docker Hub rate limits apply)")
            self.out.info(f"build context {context}: {len(archive.files)} files, sha256 {archive.sha256[:16]}")
            account = self.aws.account_id
            plan = infrastructure(self.aws, self.names, self.cfg, account, secret_arn, sleep=self.sleep)

            def report(result: StepResult) -> None:
                self.out.report(result, dry_run=options.dry_run)

            if options.dry_run:
                steps = plan.describe(report)
                return BuildResult("PLANNED", context_sha256=archive.sha256, steps=[s.to_dict() for s in steps])
            steps = [s.to_dict() for s in plan.execute(report)]
            return self._build(archive, account, buildspec, options, steps)

    def _build(self, archive: ContextArchive, account: str, buildspec: str, options: BuildOptions, steps: list[dict]) -> BuildResult:
        n = self.names
        repo = ecr_api.describe_repository(self.aws.ecr, n.ecr_repository)
        repo_uri = repo["repositoryUri"]
        tag = image_tag(archive.sha256, {"VLLM_VERSION": self.cfg.build.vllm_version})
        if not options.force and (reused := self.reuse_existing(repo_uri, tag, archive.sha256, steps)):
            return reused

        bucket = n.build_bucket(account)
        if s3_api.object_size(self.aws.s3, bucket, archive.key) == archive.size:
            self.out.step("unchanged", f"s3://{bucket}/{archive.key} (same content already uploaded)")
        else:
            with self.out.progress("uploading build context", archive.size) as advance:
                s3_api.upload_file(self.aws.s3, archive.path, bucket, archive.key, advance, n.aws_tags)
            self.out.step("created", f"s3://{bucket}/{archive.key}")

        env = {"IMAGE_REPO_URI": repo_uri, "IMAGE_TAG": tag, "VLLM_VERSION": self.cfg.build.vllm_version}
        # A run killed after starting its build left it running: attach to it rather than pay for a second.
        running = None if options.force else cb.running_build(self.aws.codebuild, n.codebuild_project, tag)
        build = running or cb.start_build(self.aws.codebuild, n.codebuild_project, f"{bucket}/{archive.key}", env, buildspec)
        build_id = build["id"]
        self.state.set(STATE_BUILD, {"id": build_id, "tag": tag, "repository": repo_uri})
        if running:
            self.out.step("unchanged", f"build {build_id} (already running for this image; attached)")
        else:
            self.out.step("created", f"build {build_id}")
        if not options.wait:
            self.out.info(f"follow it: llmctl build logs {build_id} --follow   (or: llmctl build status {build_id})")
            return BuildResult("IN_PROGRESS", None, None, tag, build_id, archive.sha256, steps)
        done = self.watch(build_id, options.poll_s, options.wait_timeout_s, follow_logs=True)
        digest = self._finish(done)
        return BuildResult("SUCCEEDED", f"{repo_uri}@{digest}", digest, tag, build_id, archive.sha256, steps)

    def reuse_existing(self, repo_uri: str, tag: str, context_sha256: str, steps: list[dict]) -> BuildResult | None:
        """The image ECR already holds for this context and these build arguments, recorded for deploy."""
        digest = ecr_api.image_digest(self.aws.ecr, self.names.ecr_repository, tag)
        if not digest:
            return None
        self.out.step("unchanged", f"image {repo_uri}:{tag} is already in ECR (--force rebuilds)")
        self._record_image(repo_uri, tag, digest, build_id=None)
        return BuildResult("SKIPPED", f"{repo_uri}@{digest}", digest, tag, None, context_sha256, steps)

    # --- watching a build ---------------------------------------------------------------------
    def watch(self, build_id: str, poll_s: float, wait_timeout_s: float | None, *, follow_logs: bool) -> dict:
        """Poll until the build ends, reporting each phase as it finishes and each new log line."""
        started = self.clock()
        limit = wait_timeout_s if wait_timeout_s is not None else (self.cfg.build.timeout_minutes + 15) * 60
        reported: set[str] = set()
        cursor = None
        current = None
        try:
            while True:
                build = cb.get_build(self.aws.codebuild, build_id)
                elapsed = _clock_text(self.clock() - started)
                for phase in _phases(build):
                    if phase.get("phaseStatus") and phase["phaseType"] not in reported:
                        reported.add(phase["phaseType"])
                        seconds = phase.get("durationInSeconds")
                        took = f" in {seconds}s" if seconds is not None else ""
                        ok = phase["phaseStatus"] == "SUCCEEDED"
                        self.out.step("done" if ok else "failed", f"[{elapsed}] {phase['phaseType']}{took}"
                                      + ("" if ok else f" ({phase['phaseStatus']})"))
                if build.get("currentPhase") != current and build.get("buildStatus") == "IN_PROGRESS":
                    current = build.get("currentPhase")
                    self.out.info(f"[{elapsed}] phase {current}...")
                if follow_logs:
                    if cursor is None:
                        cursor = logs_api.LogCursor(*cb.log_location(build, self.names.codebuild_log_group))
                    for line in logs_api.read_new_lines(self.aws.logs, cursor):
                        self.out.log_line(line)
                if build.get("buildStatus") != "IN_PROGRESS":
                    if build["buildStatus"] != "SUCCEEDED":
                        raise self._failure(build)
                    self.out.step("done", f"[{elapsed}] build {build_id}")
                    return build
                if self.clock() - started > limit:
                    raise LlmctlError(
                        f"build {build_id} is still in {build.get('currentPhase')} after {_clock_text(limit)}; stopped waiting (it keeps running in CodeBuild)",
                        hint=f"re-attach: llmctl build logs {build_id} --follow",
                    )
                self.sleep(poll_s)
        except KeyboardInterrupt:
            raise LlmctlError(
                f"stopped watching; build {build_id} keeps running in CodeBuild",
                hint=f"re-attach: llmctl build logs {build_id} --follow   (status: llmctl build status {build_id})",
                exit_code=EXIT_INTERRUPTED,
            ) from None

    def _failure(self, build: dict) -> LlmctlError:
        phase = failing_phase(build)
        name = phase["phaseType"] if phase else build.get("currentPhase", "?")
        reasons = [c.get("message") or c.get("statusCode") for c in (phase or {}).get("contexts") or [] if c.get("message") or c.get("statusCode")]
        group, stream = cb.log_location(build, self.names.codebuild_log_group)
        tail = logs_api.last_lines(self.aws.logs, group, stream, FAILURE_LOG_LINES)
        if tail:
            self.out.info(f"last {len(tail)} log lines of {build['id']}:")
            for line in tail:
                self.out.log_line(line)
        reason = "; ".join(reasons) or "no reason given"
        return LlmctlError(
            f"build {build['id']} {build['buildStatus']} in phase {name}: {reason}",
            hint=f"full log: llmctl build logs {build['id']}",
        )

    def _finish(self, build: dict) -> str:
        """The image a finished CodeBuild build pushed: its tag from the build, its digest from ECR."""
        env = {v["name"]: v["value"] for v in build.get("exportedEnvironmentVariables") or []}
        overrides = {v["name"]: v["value"] for v in build.get("environment", {}).get("environmentVariables") or []}
        last = self.state.get(STATE_BUILD) or {}
        tag = overrides.get("IMAGE_TAG") or (last.get("tag") if last.get("id") == build["id"] else None)
        repo_uri = overrides.get("IMAGE_REPO_URI") or last.get("repository")
        if not tag or not repo_uri:
            raise LlmctlError(f"build {build['id']} succeeded but llmctl cannot tell which image tag it pushed")
        return self.record_pushed(
            repo_uri, tag, build["id"], env.get("IMAGE_DIGEST"),
            pusher=f"build {build['id']}", hint=f"check the post_build phase: llmctl build logs {build['id']}",
        )

    def record_pushed(self, repo_uri: str, tag: str, build_id: str | None, reported_digest: str | None, *, pusher: str, hint: str) -> str:
        """The pushed image's digest, from ECR (the registry is the truth), recorded for deploy.

        Both ways of building end here: CodeBuild (`_finish`) and `llmctl build --local`.
        """
        digest = ecr_api.image_digest(self.aws.ecr, self.names.ecr_repository, tag)
        if not digest:
            raise LlmctlError(f"{pusher} succeeded but ECR has no image {repo_uri}:{tag}", hint=hint)
        if reported_digest and reported_digest != digest:
            self.out.warn(f"the build reported {reported_digest} but ECR's {tag} is now {digest} (a newer push?); using ECR's")
        self._record_image(repo_uri, tag, digest, build_id)
        self.out.step("done", f"recorded {repo_uri}@{digest} (deploy uses it by default)")
        return digest

    def _record_image(self, repo_uri: str, tag: str, digest: str, build_id: str | None) -> None:
        self.state.set(STATE_IMAGE, {"uri": f"{repo_uri}@{digest}", "repository": repo_uri, "tag": tag, "digest": digest, "build_id": build_id})

    # --- status and logs of any build of this deployment ------------------------------------
    def resolve_build_id(self, build_id: str | None) -> str:
        project = self.names.codebuild_project
        if build_id:
            if ":" not in build_id:
                build_id = f"{project}:{build_id}"
            if not build_id.startswith(f"{project}:"):
                raise ConfigError(f"{build_id} is not a build of deployment {self.names.deployment} (project {project})")
            return build_id
        latest = cb.latest_build_id(self.aws.codebuild, project)
        if latest is None:
            raise LlmctlError(f"deployment {self.names.deployment} has no builds yet", hint="run `llmctl build`")
        return latest

    def status(self, build_id: str | None) -> dict:
        build = cb.get_build(self.aws.codebuild, self.resolve_build_id(build_id))
        phase = failing_phase(build)
        data: dict[str, Any] = {
            "build_id": build["id"],
            "status": build["buildStatus"],
            "phase": build.get("currentPhase"),
            "started": str(build.get("startTime") or ""),
            "ended": str(build.get("endTime") or ""),
            "phases": [{"phase": p["phaseType"], "status": p.get("phaseStatus", "IN_PROGRESS"), "seconds": p.get("durationInSeconds")} for p in _phases(build)],
            "failed_phase": phase["phaseType"] if phase else None,
            "image": None,
        }
        if build["buildStatus"] == "SUCCEEDED":
            recorded = self.state.get(STATE_IMAGE) or {}
            if recorded.get("build_id") == build["id"]:
                data["image"] = recorded["uri"]
            elif (self.state.get(STATE_BUILD) or {}).get("id") == build["id"]:
                digest = self._finish(build)  # a --no-wait build finished: record its image now
                data["image"] = f"{(self.state.get(STATE_IMAGE) or {})['repository']}@{digest}"
        return data

    def logs(self, build_id: str | None, follow: bool, poll_s: float) -> str:
        build_id = self.resolve_build_id(build_id)
        if follow:
            build = self.watch(build_id, poll_s, None, follow_logs=True)
            return build["buildStatus"]
        build = cb.get_build(self.aws.codebuild, build_id)
        cursor = logs_api.LogCursor(*cb.log_location(build, self.names.codebuild_log_group))
        for line in logs_api.read_new_lines(self.aws.logs, cursor):
            self.out.log_line(line)
        return build["buildStatus"]


def _phases(build: dict) -> list[dict]:
    """Phases in order, one entry per phase type (the latest report of each)."""
    by_type: dict[str, dict] = {}
    for phase in build.get("phases") or []:
        by_type[phase["phaseType"]] = phase
    return list(by_type.values())


def failing_phase(build: dict) -> dict | None:
    return next((p for p in _phases(build) if p.get("phaseStatus") in cb.FAILED_STATUSES), None)


def _clock_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"
