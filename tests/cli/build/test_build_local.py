"""`llmctl build --local` end to end: a real engine builds, a real registry on loopback stands in
for ECR's registry, moto answers the ECR API (tests/doubles/ecr_registry.py)."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.doubles.ecr_registry import PASSWORD

LOCAL = ("build", "--local")
# No RUN step: the build needs no base image and no network; the label proves the build
# argument arrived.
DOCKERFILE = 'FROM scratch\nARG VLLM_VERSION\nLABEL io.llmctl.vllm-version="${VLLM_VERSION}"\nCOPY server/ /app/server/\n'
DOCKER_NO_DAEMON = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"


def state(llmctl) -> dict:
    path = llmctl.cwd / ".llmctl" / "demo.json"
    return json.loads(path.read_text()) if path.exists() else {}


def flat(text: str) -> str:
    return " ".join(text.split())


def bin_folder(tmp_path: Path, **scripts: str) -> Path:
    """A PATH folder with the named shell scripts (`name=body`)."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return folder


@pytest.fixture
def local_project(build_project):
    (build_project.cwd / "ctx" / "Dockerfile").write_text(DOCKERFILE)
    return build_project


def engine_env(engine: str, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """(--engine args, extra env). `docker` is podman behind a `docker` command (what Debian's
    podman-docker package installs): the docker code path with a docker-compatible CLI."""
    if engine != "docker":
        return ["--engine", engine], {}
    folder = bin_folder(tmp_path, docker=f'exec {shutil.which("podman")} "$@"')
    # docker keeps its login in its own config; podman-as-docker keeps it here, in the test's folder.
    return ["--engine", "docker"], {"PATH": f"{folder}:{os.environ['PATH']}", "REGISTRY_AUTH_FILE": str(tmp_path / "docker-auth.json")}


@pytest.mark.parametrize("engine", ["podman", "buildah", "docker"])
def test_local_build_pushes_to_the_ecr_registry_and_records_the_digest_deploy_uses(local_project, aws, ecr_registry, engine, tmp_path):
    llmctl = local_project
    args, env = engine_env(engine, tmp_path)
    done = llmctl(*LOCAL, *args, "-o", "json", env=env, check=True)
    result = json.loads(done.stdout)
    assert result["status"] == "SUCCEEDED" and result["build_id"] is None

    ecr = aws.client("ecr")
    repo = ecr.describe_repositories(repositoryNames=["llmctl/demo"])["repositories"][0]
    assert repo["repositoryUri"] == f"{ecr_registry.host}/llmctl/demo"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    # Only the repository: a local build creates no CodeBuild infrastructure.
    assert aws.client("s3").list_buckets()["Buckets"] == []
    assert aws.client("codebuild").list_projects()["projects"] == []

    # The digest recorded is the registry's, for the content tag and for `latest`, and ECR's.
    _, media_type, digest = ecr_registry.manifest("llmctl/demo", result["tag"])
    assert ecr_registry.manifest("llmctl/demo", "latest")[2] == digest
    assert result["digest"] == digest and result["image"] == f"{repo['repositoryUri']}@{digest}"
    described = ecr.describe_images(repositoryName="llmctl/demo", imageIds=[{"imageTag": result["tag"]}])["imageDetails"][0]
    assert described["imageDigest"] == digest
    assert state(llmctl)["image"] == {
        "uri": result["image"], "repository": repo["repositoryUri"], "tag": result["tag"], "digest": digest, "build_id": None,
    }

    # What was pushed is the built image: linux/amd64, the build argument applied, server/ copied.
    manifest = json.loads(ecr_registry.manifest("llmctl/demo", digest)[0])
    with ecr_registry._request(f"/v2/llmctl/demo/blobs/{manifest['config']['digest']}") as response:
        config = json.loads(response.read())
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["config"]["Labels"]["io.llmctl.vllm-version"] == "0.32.0"
    assert len(manifest["layers"]) == 1 and media_type in (manifest.get("mediaType"), "application/vnd.oci.image.manifest.v1+json")

    for line in ("created ECR repository llmctl/demo", f"engine {engine}", "logged in", f"pushed {repo['repositoryUri']}:{result['tag']}",
                 f"pushed {repo['repositoryUri']}:latest", f"recorded {result['image']}"):
        assert line in flat(done.stderr), line
    # The ECR token was handed over on stdin and kept in no file llmctl leaves behind.
    token_b64 = base64.b64encode(f"AWS:{PASSWORD}".encode()).decode()
    assert PASSWORD not in done.stdout + done.stderr
    leftovers = [p for p in Path(llmctl.env["HOME"]).rglob("*") if p.is_file() and token_b64 in p.read_text(errors="ignore")]
    assert leftovers == []

    # `llmctl deploy` takes the recorded digest by default.
    deployed = llmctl("deploy", "--dry-run", "-o", "json", env={"LLMCTL_MODEL_BUCKET": "models"}, check=True)
    assert json.loads(deployed.stdout)["image"] == result["image"]

    # Same context and build arguments: ECR's image is reused, nothing is built or pushed.
    again = llmctl(*LOCAL, *args, "-o", "json", env=env, check=True)
    assert json.loads(again.stdout)["status"] == "SKIPPED" and json.loads(again.stdout)["digest"] == digest
    assert "already in ECR" in again.stderr and "pushed" not in again.stderr


def test_a_changed_context_pushes_a_new_tag_and_latest_follows(local_project, aws, ecr_registry):
    llmctl = local_project
    first = json.loads(llmctl(*LOCAL, "--engine", "buildah", "-o", "json", check=True).stdout)
    (llmctl.cwd / "ctx" / "server" / "__main__.py").write_text("print('serving, changed')\n")
    second = json.loads(llmctl(*LOCAL, "--engine", "buildah", "-o", "json", check=True).stdout)
    assert second["tag"] != first["tag"] and second["digest"] != first["digest"]
    assert ecr_registry.manifest("llmctl/demo", "latest")[2] == second["digest"]
    assert state(llmctl)["image"]["digest"] == second["digest"]
    assert sorted(ecr_registry.tags("llmctl/demo")) == sorted([first["tag"], second["tag"], "latest"])


def test_auto_detection_passes_over_a_docker_without_daemon(local_project, aws, tmp_path):
    llmctl = local_project
    folder = bin_folder(tmp_path, docker=f'[ "$1" = info ] && {{ echo "{DOCKER_NO_DAEMON}" >&2; exit 1; }}; exit 0')
    os.symlink(shutil.which("podman"), folder / "podman")
    done = llmctl(*LOCAL, "--dry-run", env={"PATH": str(folder)}, check=True)
    assert f"engine podman ({folder / 'podman'})" in flat(done.stderr)
    assert "would create  ECR repository llmctl/demo" in done.stderr
    assert "would run build the image with podman and push it to ECR repository llmctl/demo" in flat(done.stderr)
    assert aws.client("ecr").describe_repositories()["repositories"] == []


def test_no_usable_engine_is_one_line_naming_each_and_creates_nothing(local_project, aws, tmp_path):
    folder = bin_folder(tmp_path, docker=f'echo "{DOCKER_NO_DAEMON}" >&2; exit 1')
    done = local_project(*LOCAL, env={"PATH": str(folder)})
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert errors[0].startswith(
        "error: no usable container engine for `llmctl build --local`: "
        f"docker does not work (`docker info`: {DOCKER_NO_DAEMON}); podman not installed; buildah not installed"
    )
    assert "install docker (and start its daemon), podman or buildah" in errors[0]
    assert aws.client("ecr").describe_repositories()["repositories"] == []


def test_a_failing_build_names_the_engine_and_its_last_line_and_pushes_nothing(local_project, aws, ecr_registry):
    llmctl = local_project
    (llmctl.cwd / "ctx" / "Dockerfile").write_text("FROM scratch\nCOPY missing/ /app/\n")
    done = llmctl(*LOCAL, "--engine", "buildah")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: buildah build failed (exit ")
    assert "missing" in errors[0]
    assert ecr_registry.tags("llmctl/demo") == [] and "image" not in state(llmctl)


@pytest.mark.parametrize(
    ("args", "flag"),
    [(("--local", "--no-wait"), "--no-wait"), (("--local", "--wait-timeout", "5"), "--wait-timeout"), (("--engine", "podman"), "--engine")],
)
def test_flags_of_the_other_mode_are_refused(local_project, aws, args, flag):
    done = local_project("build", *args)
    assert done.returncode == 2 and flag in done.stderr
    assert aws.client("ecr").describe_repositories()["repositories"] == []
