"""`llmctl build --local`: build the image with the user's own engine and push it to ECR.

The same inputs as the CodeBuild path (the build context, its content-addressed tag, the ECR
repository step) and the same end: the digest ECR reports for the pushed tag is recorded by
`BuildManager.record_pushed`, so `llmctl deploy` uses it exactly as after a CodeBuild build, and
an image ECR already holds for this context is reused unless forced. Only the ECR repository is
needed: no bucket, build role, project or log group is created. The login is ECR's
GetAuthorizationToken (what `aws ecr get-login-password` prints) handed to the engine on stdin.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmctl import images
from llmctl.actions.build import BuildManager, BuildResult
from llmctl.actions.build_context import image_tag, zip_context
from llmctl.actions.build_infra import repository_step
from llmctl.aws import ecr as ecr_api
from llmctl.plan import Plan, StepResult


@dataclass
class LocalBuildOptions:
    engine: str | None = None  # docker, podman or buildah; None: the first that works
    force: bool = False
    dry_run: bool = False


class LocalBuilder:
    """`build --local` on top of a BuildManager (context, names, config, state, output, AWS)."""

    def __init__(self, manager: BuildManager, *, detect: Callable[[str | None], images.Engine] = images.detect):
        self.manager = manager
        self.detect = detect

    def run(self, options: LocalBuildOptions) -> BuildResult:
        m = self.manager
        context = m.context_dir()
        with tempfile.TemporaryDirectory(prefix="llmctl-build-") as tmp:
            # Every input is checked before anything is created: the context, then the engine.
            archive = zip_context(context, Path(tmp) / "context.zip")
        engine = self.detect(options.engine)
        m.out.info(f"build context {context}: {len(archive.files)} files, sha256 {archive.sha256[:16]}; engine {engine.name} ({engine.path})")
        plan = Plan([repository_step(m.aws, m.names, m.cfg)])

        def report(result: StepResult) -> None:
            m.out.report(result, dry_run=options.dry_run)

        if options.dry_run:
            steps = [s.to_dict() for s in plan.describe(report)]
            m.out.step("done", f"build the image with {engine.name} and push it to ECR repository {m.names.ecr_repository}", dry_run=True)
            return BuildResult("PLANNED", context_sha256=archive.sha256, steps=steps)
        steps = [s.to_dict() for s in plan.execute(report)]

        repo_uri = ecr_api.describe_repository(m.aws.ecr, m.names.ecr_repository)["repositoryUri"]
        build_args = {"VLLM_VERSION": m.cfg.build.vllm_version}
        tag = image_tag(archive.sha256, build_args)
        if not options.force and (reused := m.reuse_existing(repo_uri, tag, archive.sha256, steps)):
            return reused
        refs = [f"{repo_uri}:{tag}", f"{repo_uri}:latest"]
        m.out.info(f"building {refs[0]} with {engine.name} (for {images.PLATFORM})")
        engine.build(context, refs, build_args, m.out.log_line)
        m.out.step("done", f"built {refs[0]}")

        username, password = ecr_api.registry_credentials(m.aws.ecr)
        registry = repo_uri.split("/", 1)[0]
        with engine.logged_in(registry, username, password) as authfile:
            m.out.step("done", f"logged in to {registry} (ECR authorization token)")
            # The content tag first: its digest is the one recorded; `latest` follows it.
            reported = engine.push(refs[0], authfile, m.out.log_line)
            m.out.step("done", f"pushed {refs[0]}")
            engine.push(refs[1], authfile, m.out.log_line)
            m.out.step("done", f"pushed {refs[1]}")
        digest = m.record_pushed(
            repo_uri, tag, None, reported,
            pusher=f"{engine.name} push of {refs[0]}", hint="check the push output above, then re-run `llmctl build --local`",
        )
        return BuildResult("SUCCEEDED", f"{repo_uri}@{digest}", digest, tag, None, archive.sha256, steps)
