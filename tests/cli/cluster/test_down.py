"""`llmctl cluster down`: teardown steps 1-4; the model bucket and build resources stay."""

from __future__ import annotations

import json

import pytest

from tests.cli.cluster.conftest import BUCKET


def test_cluster_down_removes_the_cluster_and_role_only(cluster_env, aws, fake_eksctl):
    fake_eksctl.gpu_delay = 0.2
    cluster_env("cluster", "up", "--yes", check=True, timeout=180)
    ecr = aws.client("ecr")
    ecr.create_repository(repositoryName="llmctl/demo", tags=[{"Key": "llmctl.io/deployment", "Value": "demo"}])

    dry = cluster_env("cluster", "down", "--dry-run", "-o", "json", check=True)
    assert aws.client("eks").list_clusters()["clusters"] == ["demo"]
    assert json.loads(dry.stdout)["plan"]

    refused = cluster_env("cluster", "down")  # no TTY, no --yes: nothing is touched
    assert refused.returncode != 0 and "--yes" in refused.stderr
    assert aws.client("eks").list_clusters()["clusters"] == ["demo"]

    cluster_env("cluster", "down", "--yes", check=True, timeout=300)
    assert fake_eksctl.calls("delete", "cluster")
    assert aws.client("eks").list_clusters()["clusters"] == []
    with pytest.raises(aws.client("iam").exceptions.NoSuchEntityException):
        aws.client("iam").get_role(RoleName="demo-vllm-s3-access")
    # Not cluster resources: they stay.
    assert ecr.describe_repositories()["repositories"][0]["repositoryName"] == "llmctl/demo"
    assert aws.client("s3").head_bucket(Bucket=BUCKET)

