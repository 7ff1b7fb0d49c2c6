"""buildspec.yml: valid against the project's schema of the subset it uses, shellcheck-clean."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.build.test_dockerfile import ROOT, _tool

SCHEMA = Path(__file__).with_name("buildspec.schema.json")
PHASES = list(yaml.safe_load((ROOT / "buildspec.yml").read_text())["phases"])


@pytest.fixture(scope="module")
def buildspec() -> dict:
    return yaml.safe_load((ROOT / "buildspec.yml").read_text())


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA.read_text()))


def test_buildspec_validates_against_the_subset_schema(buildspec):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(buildspec)]
    assert errors == []


def test_schema_rejects_keys_outside_the_subset(buildspec):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    bad = {**buildspec, "cache": {"paths": ["/root/.cache"]}}
    assert any("cache" in e.message for e in validator.iter_errors(bad))
    bad_secret = {**buildspec, "env": {**buildspec["env"], "secrets-manager": {"X": "no-json-key"}}}
    assert list(validator.iter_errors(bad_secret))


def _phase_script(commands: list[str]) -> str:
    return "#!/usr/bin/env bash\n" + "\n".join(commands) + "\n"


@pytest.mark.parametrize("phase", PHASES)
def test_each_phase_passes_shellcheck(buildspec, phase):
    script = _phase_script(buildspec["phases"][phase]["commands"])
    proc = subprocess.run(
        [_tool("shellcheck"), "--shell=bash", "--severity=style", "--format=gcc", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_check_catches_a_bad_command():
    proc = subprocess.run(
        [_tool("shellcheck"), "--shell=bash", "--severity=style", "-"],
        input=_phase_script(["docker push $IMAGE_REPO_URI:latest"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "SC2086" in proc.stdout


def test_docker_hub_login_reads_the_token_from_secrets_manager_without_echoing_it(buildspec):
    secrets = buildspec["env"]["secrets-manager"]
    assert set(secrets) == {"DOCKERHUB_USERNAME", "DOCKERHUB_PASSWORD"}
    commands = "\n".join(c for p in buildspec["phases"].values() for c in p["commands"])
    assert "--password-stdin" in commands
    for line in commands.splitlines():
        if "DOCKERHUB_PASSWORD" in line and "[ -n" not in line:
            assert line.strip().startswith("printf '%s' \"$DOCKERHUB_PASSWORD\" | docker login"), line
    assert "WARNING: no Docker Hub secret configured" in commands


def test_builds_from_the_previous_image_digest_pushes_and_exports_the_digest(buildspec):
    build = " ".join(buildspec["phases"]["build"]["commands"])
    # the cache is the last pushed image by digest, never a mutable tag (a pod or CI job able to push
    # :latest could otherwise poison the next build)
    assert 'CACHE_FROM=(--cache-from "$IMAGE_REPO_URI@$CACHE_DIGEST")' in build
    assert "sort_by(imageDetails, &imagePushedAt)[-1].imageDigest" in build
    assert ":latest" not in " ".join(c for p in buildspec["phases"].values() for c in p["commands"])
    assert '--build-arg VLLM_VERSION="$VLLM_VERSION"' in build
    assert '--tag "$IMAGE_REPO_URI:$IMAGE_TAG"' in build
    assert buildspec["phases"]["build"]["on-failure"] == "ABORT"  # no push after a failed build
    post = buildspec["phases"]["post_build"]["commands"]
    assert post[0] == 'docker push "$IMAGE_REPO_URI:$IMAGE_TAG"'
    assert {"IMAGE_DIGEST", "IMAGE_URI"} <= set(buildspec["env"]["exported-variables"])
    assert "image-detail.json" in buildspec["artifacts"]["files"]
