"""`llmctl build` end to end against the moto server, driven as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from llmctl.actions.build_context import zip_context

BUILD = ("build", "--poll-interval", "0.05")
LOG_LINES = {
    "PRE_BUILD": ["Login Succeeded"],
    "BUILD": ["#1 [internal] load build definition from Dockerfile", "#6 [2/2] COPY server/ /app/server/", "#7 DONE 0.1s"],
    "POST_BUILD": ["pushed the image"],
}
TAGS = {"llmctl.io/deployment": "demo", "llmctl.io/managed-by": "llmctl"}


def flat(text: str) -> str:
    """Terminal output with rich's line wrapping undone."""
    return " ".join(text.split())


def state(llmctl) -> dict:
    return json.loads((llmctl.cwd / ".llmctl" / "demo.json").read_text())


def only_tags(tags: dict) -> dict:
    return {k: v for k, v in tags.items() if k.startswith("llmctl.io/")}


def test_first_run_creates_everything_tagged_second_run_creates_nothing(build_project, aws, codebuild_sim):
    llmctl = build_project
    codebuild_sim.log_lines = LOG_LINES
    first = llmctl(*BUILD, "-o", "json", check=True)
    result = json.loads(first.stdout)
    assert result["status"] == "SUCCEEDED"
    for title in ("S3 bucket", "ECR repository", "log group", "IAM role", "CodeBuild project"):
        assert f"created  {title}" in first.stderr
    # Phases and the seeded log lines were streamed live, in order.
    for line in [*LOG_LINES["PRE_BUILD"], *LOG_LINES["BUILD"], *LOG_LINES["POST_BUILD"]]:
        assert line in first.stderr
    assert first.stderr.index("Login Succeeded") < first.stderr.index("#7 DONE 0.1s") < first.stderr.index("pushed the image")
    assert "BUILD in 1s" in first.stderr

    account = aws.client("sts").get_caller_identity()["Account"]
    s3, ecr, iam, cb, logs = (aws.client(s) for s in ("s3", "ecr", "iam", "codebuild", "logs"))
    bucket = f"demo-build-{account}-us-east-1"
    assert only_tags({t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}) == TAGS
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    repo = ecr.describe_repositories(repositoryNames=["llmctl/demo"])["repositories"][0]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    policy = json.loads(ecr.get_lifecycle_policy(repositoryName="llmctl/demo")["lifecyclePolicyText"])
    assert policy["rules"][0]["selection"]["countNumber"] == 10
    assert only_tags({t["Key"]: t["Value"] for t in ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]}) == TAGS

    role = iam.get_role(RoleName="demo-codebuild")["Role"]
    assert role["Path"] == "/llmctl/demo/"
    project = aws.client("codebuild").batch_get_projects(names=["demo-image-build"])["projects"][0]
    assert project["serviceRole"] == role["Arn"] == "arn:aws:iam::123456789012:role/llmctl/demo/demo-codebuild"
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert only_tags({t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName="demo-codebuild")["Tags"]}) == TAGS
    inline = iam.get_role_policy(RoleName="demo-codebuild", PolicyName="llmctl-image-build")["PolicyDocument"]
    resources = {r for s in inline["Statement"] for r in s["Resource"]}
    assert resources == {
        f"arn:aws:s3:::{bucket}/builds/*", f"arn:aws:s3:::{bucket}/artifacts/*", f"arn:aws:s3:::{bucket}",
        f"arn:aws:logs:us-east-1:{account}:log-group:/aws/codebuild/demo-image-build",
        f"arn:aws:logs:us-east-1:{account}:log-group:/aws/codebuild/demo-image-build:*",
        "*", repo["repositoryArn"],
    }
    star = [s for s in inline["Statement"] if s["Resource"] == ["*"]]
    assert [s["Action"] for s in star] == [["ecr:GetAuthorizationToken"]]

    project = cb.batch_get_projects(names=["demo-image-build"])["projects"][0]
    assert project["environment"]["privilegedMode"] is True
    assert project["environment"]["computeType"] == "BUILD_GENERAL1_LARGE"
    assert project["source"]["type"] == "S3"
    assert only_tags({t["key"]: t["value"] for t in project["tags"]}) == TAGS
    group = logs.describe_log_groups(logGroupNamePrefix="/aws/codebuild/demo-image-build")["logGroups"][0]
    assert group["retentionInDays"] == 30

    # The build got the content-addressed source, the tag and the buildspec without Docker Hub secret.
    (started,) = codebuild_sim.builds.values()
    assert started.source_location == f"{bucket}/builds/{result['context_sha256']}.zip"
    assert started.env["IMAGE_TAG"] == result["tag"] and started.env["VLLM_VERSION"] == "0.32.0"
    assert "secrets-manager" not in started.buildspec and "docker build" in started.buildspec
    assert "Docker Hub rate limits" in flat(first.stderr)

    # The digest is ECR's and is what the state holds for `deploy`.
    digest = ecr.describe_images(repositoryName="llmctl/demo", imageIds=[{"imageTag": result["tag"]}])["imageDetails"][0]["imageDigest"]
    assert result["digest"] == digest and result["image"] == f"{repo['repositoryUri']}@{digest}"
    assert state(llmctl)["image"] == {
        "uri": result["image"], "repository": repo["repositoryUri"], "tag": result["tag"], "digest": digest, "build_id": result["build_id"],
    }

    second = llmctl(*BUILD, "-o", "json", check=True)
    again = json.loads(second.stdout)
    assert again["status"] == "SKIPPED" and again["digest"] == digest
    assert "created" not in second.stderr and "updated" not in second.stderr
    assert second.stderr.count("unchanged") == 6  # the five resources and the image already in ECR
    assert "already in ECR" in second.stderr
    assert len(cb.list_builds_for_project(projectName="demo-image-build")["ids"]) == 1
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="builds/")["Contents"]] == [f"builds/{result['context_sha256']}.zip"]


def test_context_zip_is_byte_identical_across_runs_and_uploaded_as_is(build_project, aws, tmp_path):
    llmctl = build_project
    ctx = llmctl.cwd / "ctx"
    first = zip_context(ctx, tmp_path / "a.zip")
    os.utime(ctx / "server" / "__main__.py", (1_000_000, 1_000_000))  # touch: content unchanged
    (ctx / "server" / "__main__.py").chmod(0o600)
    second = zip_context(ctx, tmp_path / "b.zip")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.files == (".dockerignore", "Dockerfile", "server/__main__.py")
    (ctx / "server" / "__main__.py").write_text("print('changed')\n")
    assert zip_context(ctx, tmp_path / "c.zip").sha256 != first.sha256
    (ctx / "server" / "__main__.py").write_text("print('serving')\n")

    done = llmctl(*BUILD, "--no-wait", "-o", "json", check=True)
    sha = json.loads(done.stdout)["context_sha256"]
    assert sha == first.sha256
    account = aws.client("sts").get_caller_identity()["Account"]
    body = aws.client("s3").get_object(Bucket=f"demo-build-{account}-us-east-1", Key=f"builds/{sha}.zip")["Body"].read()
    assert body == first.path.read_bytes()


def test_failed_build_names_the_phase_and_reason_and_shows_the_log_tail(build_project, codebuild_sim):
    codebuild_sim.outcome = "FAILED"
    codebuild_sim.log_lines = {"BUILD": [f"line {i}" for i in range(60)] + ["ERROR: failed to solve: exit code 1"]}
    done = build_project(*BUILD)
    assert done.returncode == 1
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert "FAILED in phase BUILD: Error while executing command: docker build . Reason: exit status 1" in error_lines[0]
    tail = done.stderr.split("last 50 log lines", 1)[1].splitlines()
    assert "line 11" in tail and "line 10" not in tail and "ERROR: failed to solve: exit code 1" in tail
    assert "llmctl build logs demo-image-build:" in done.stderr
    assert "image" not in state(build_project)


def test_codebuild_timeout_is_a_failure_with_its_phase(build_project, codebuild_sim):
    codebuild_sim.outcome = "TIMED_OUT"
    done = build_project(*BUILD)
    assert done.returncode == 1
    assert "TIMED_OUT in phase BUILD" in done.stderr


def test_in_progress_build_wait_timeout_then_status_and_logs(build_project, codebuild_sim):
    codebuild_sim.outcome = "IN_PROGRESS"
    codebuild_sim.log_lines = {"BUILD": ["#5 pip install vllm==0.32.0"]}
    done = build_project(*BUILD, "--wait-timeout", "1")
    assert done.returncode == 1
    assert "is still in BUILD after 00:01; stopped waiting (it keeps running in CodeBuild)" in done.stderr
    assert "re-attach: llmctl build logs" in done.stderr

    status = build_project("build", "status", "-o", "json", check=True)
    data = json.loads(status.stdout)
    assert data["status"] == "IN_PROGRESS" and data["phase"] == "BUILD" and data["image"] is None
    assert data["build_id"] == state(build_project)["last_build"]["id"]

    logs = build_project("build", "logs", data["build_id"].split(":", 1)[1], check=True)
    assert "#5 pip install vllm==0.32.0" in logs.stderr


def test_no_wait_returns_the_build_id_and_status_records_the_image_later(build_project, aws, codebuild_sim):
    done = build_project(*BUILD, "--no-wait", check=True)
    build_id = done.stdout.strip()
    assert build_id.startswith("demo-image-build:")
    assert f"llmctl build logs {build_id} --follow" in done.stderr
    assert "image" not in state(build_project)
    codebuild_sim.log_lines = {"BUILD": ["#7 DONE 0.1s"]}
    follow = build_project("build", "logs", build_id, "--follow", "--poll-interval", "0.05", check=True)
    assert "#7 DONE 0.1s" in follow.stderr and "COMPLETED" in follow.stderr
    status = build_project("build", "status", build_id, "-o", "json", check=True)
    data = json.loads(status.stdout)
    assert data["status"] == "SUCCEEDED" and [p["phase"] for p in data["phases"]][-1] == "COMPLETED"
    assert state(build_project)["image"]["uri"] == data["image"] and state(build_project)["image"]["build_id"] == build_id


def test_ctrl_c_leaves_the_build_running_and_says_how_to_reattach(build_project, codebuild_sim):
    codebuild_sim.outcome = "IN_PROGRESS"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmctl", *BUILD], cwd=build_project.cwd, env=build_project.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not codebuild_sim.builds:
            time.sleep(0.1)
        assert codebuild_sim.builds, "the build never started"
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "keeps running in CodeBuild" in stderr and "re-attach: llmctl build logs demo-image-build:" in stderr
    (build_id,) = codebuild_sim.builds
    status = build_project("build", "status", build_id, "-o", "json", check=True)
    assert json.loads(status.stdout)["status"] == "IN_PROGRESS"


def test_missing_dockerfile_is_one_line_and_creates_nothing(build_project, aws):
    (build_project.cwd / "ctx" / "Dockerfile").unlink()
    done = build_project(*BUILD)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[0].startswith("error: build context ") and "has no Dockerfile" in done.stderr
    assert aws.client("s3").list_buckets()["Buckets"] == []


def test_unknown_dockerhub_secret_is_one_line_and_creates_nothing(build_project, aws):
    done = build_project(*BUILD, env={"LLMCTL_BUILD_DOCKERHUB_SECRET": "dockerhub/creds"})
    assert done.returncode == 2
    assert "error: build.dockerhub_secret: no secret 'dockerhub/creds' in Secrets Manager (us-east-1)" in flat(done.stderr)
    assert aws.client("s3").list_buckets()["Buckets"] == []


def test_configured_secret_goes_into_the_buildspec_and_the_role_policy(build_project, aws, codebuild_sim):
    arn = aws.client("secretsmanager").create_secret(Name="dockerhub/creds", SecretString='{"username":"u","password":"p"}')["ARN"]
    build_project(*BUILD, "--no-wait", env={"LLMCTL_BUILD_DOCKERHUB_SECRET": "dockerhub/creds"}, check=True)
    import yaml

    (started,) = codebuild_sim.builds.values()
    spec = yaml.safe_load(started.buildspec)
    assert spec["env"]["secrets-manager"] == {"DOCKERHUB_USERNAME": f"{arn}:username", "DOCKERHUB_PASSWORD": f"{arn}:password"}
    inline = aws.client("iam").get_role_policy(RoleName="demo-codebuild", PolicyName="llmctl-image-build")["PolicyDocument"]
    assert {"Sid": "DockerHubSecret", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [arn]} in inline["Statement"]


def test_access_denied_creating_the_role_is_one_line_and_a_rerun_finishes(build_project, aws, monkeypatch):
    from moto.core.exceptions import AccessDeniedError
    from moto.iam.models import IAMBackend

    original = IAMBackend.create_role

    def denied(self, *args, **kwargs):
        raise AccessDeniedError("arn:aws:iam::123456789012:user/dev", "iam:CreateRole")

    monkeypatch.setattr(IAMBackend, "create_role", denied)
    done = build_project(*BUILD)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith("error: no permission to manage IAM role demo-codebuild (creating or updating it was denied)")
    monkeypatch.setattr(IAMBackend, "create_role", original)
    again = build_project(*BUILD, check=True)
    assert "unchanged  S3 bucket" in again.stderr and "created  IAM role demo-codebuild" in again.stderr


def test_dry_run_changes_nothing(build_project, aws):
    done = build_project(*BUILD, "--dry-run", check=True)
    assert "would create  S3 bucket" in done.stderr and "would create  CodeBuild project demo-image-build" in done.stderr
    assert aws.client("s3").list_buckets()["Buckets"] == []


def test_status_of_another_deployments_build_is_refused(build_project):
    done = build_project("build", "status", "other-project:1234")
    assert done.returncode == 2 and "is not a build of deployment demo" in done.stderr


@pytest.mark.parametrize("command", [("status",), ("logs",)])
def test_status_and_logs_without_builds_say_so(build_project, command):
    done = build_project("build", *command)
    assert done.returncode == 1 and "has no builds yet" in done.stderr
