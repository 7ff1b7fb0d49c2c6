"""The build's idempotent steps on their own: drift is detected and repaired to exactly the wanted state."""

from __future__ import annotations

import json

from botocore.stub import Stubber

from llmctl.actions.build_infra import codebuild_trust_policy
from llmctl.actions.build_context import DockerIgnore
from llmctl.aws import codebuild as cb
from llmctl.aws import iam as iam_api
from llmctl.aws import s3 as s3_api

TAGS = {"llmctl.io/deployment": "demo", "llmctl.io/managed-by": "llmctl"}
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/*"]}]}


def test_role_step_converges_to_exactly_the_wanted_trust_policies_and_tags(aws):
    iam = aws.client("iam")
    step = iam_api.role_step(iam, "r1", codebuild_trust_policy("123456789012"), {"main": POLICY}, TAGS)
    assert step.observe() == "create"
    step.apply()
    assert step.observe() == "none"
    # Someone widens the policy, adds another one and edits the trust policy by hand.
    wider = {**POLICY, "Statement": [{**POLICY["Statement"][0], "Action": ["s3:*"]}]}
    iam.put_role_policy(RoleName="r1", PolicyName="main", PolicyDocument=json.dumps(wider))
    iam.put_role_policy(RoleName="r1", PolicyName="stray", PolicyDocument=json.dumps(POLICY))
    iam.update_assume_role_policy(RoleName="r1", PolicyDocument=json.dumps(codebuild_trust_policy("999999999999")))
    assert step.observe() == "update"
    assert step.apply() == "extra policy stray, policy main, trust policy"
    assert step.observe() == "none"
    assert iam.list_role_policies(RoleName="r1")["PolicyNames"] == ["main"]
    assert iam.get_role_policy(RoleName="r1", PolicyName="main")["PolicyDocument"] == POLICY


def test_role_step_creates_under_the_deployment_path_and_keeps_an_earlier_llmctls_role_at_slash(aws):
    iam = aws.client("iam")
    trust = codebuild_trust_policy("123456789012")
    step = iam_api.role_step(iam, "r2", trust, {"main": POLICY}, TAGS, path="/llmctl/demo/")
    assert step.detail is None and step.observe() == "create"
    step.apply()
    assert iam.get_role(RoleName="r2")["Role"]["Arn"] == "arn:aws:iam::123456789012:role/llmctl/demo/r2"
    assert [r["RoleName"] for r in iam.list_roles(PathPrefix="/llmctl/demo/")["Roles"]] == ["r2"]
    assert iam_api.existing_role_arn(iam, "r2", "123456789012", "/llmctl/demo/") == \
        iam_api.role_arn("123456789012", "r2", "/llmctl/demo/")

    # An earlier llmctl made its role at `/`: role names are unique whatever the path, so it is this role.
    # IAM cannot move it and recreating it would change the ARN under running builds: kept, updated, said.
    iam.create_role(RoleName="old", AssumeRolePolicyDocument=json.dumps(trust))
    legacy = iam_api.role_step(iam, "old", trust, {"main": POLICY}, TAGS, path="/llmctl/demo/")
    assert "kept at IAM path / where an earlier llmctl made it" in legacy.detail and "/llmctl/demo/" in legacy.detail
    assert legacy.observe() == "update"
    assert legacy.apply() == "policy main, tags"
    assert legacy.observe() == "none"
    role = iam.get_role(RoleName="old")["Role"]
    assert role["Path"] == "/" and len(iam.list_roles()["Roles"]) == 2
    assert iam_api.existing_role_arn(iam, "old", "123456789012", "/llmctl/demo/") == "arn:aws:iam::123456789012:role/old"


def test_bucket_step_repairs_a_bucket_that_lost_its_settings(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="pre-existing")
    step = s3_api.bucket_step(s3, "pre-existing", "us-east-1", TAGS)
    assert step.observe() == "update"
    assert step.apply() == "encryption, public-access, tags"
    assert step.observe() == "none"


def test_project_step_updates_a_drifted_project():
    """moto has no UpdateProject: botocore's Stubber stands in for CodeBuild here."""
    import boto3

    client = boto3.client("codebuild", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    spec = {
        "name": "demo-image-build",
        "source": {"type": "S3", "location": "b/builds/"},
        "artifacts": {"type": "NO_ARTIFACTS"},
        "environment": {"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0", "computeType": "BUILD_GENERAL1_LARGE", "privilegedMode": True},
        "serviceRole": "arn:aws:iam::123456789012:role/demo-codebuild",
        "timeoutInMinutes": 60,
    }
    current = {**spec, "environment": {**spec["environment"], "privilegedMode": False}, "tags": [{"key": k, "value": v} for k, v in TAGS.items()]}
    step = cb.project_step(client, spec, TAGS, sleep=lambda s: None)
    with Stubber(client) as stub:
        stub.add_response("batch_get_projects", {"projects": [current]}, {"names": ["demo-image-build"]})
        assert step.observe() == "update"
        stub.add_response("batch_get_projects", {"projects": [current]}, {"names": ["demo-image-build"]})
        stub.add_client_error(
            "update_project", "InvalidInputException", "CodeBuild is not authorized to perform: sts:AssumeRole on arn:aws:iam::123456789012:role/demo-codebuild"
        )
        stub.add_response("update_project", {"project": {"name": "demo-image-build"}}, {**spec, "tags": current["tags"]})
        assert step.apply() == "environment"  # retried once while the new role propagated
        stub.assert_no_pending_responses()


def test_dockerignore_follows_dockers_rules():
    ignore = DockerIgnore("# comment\n*\n!server/\nserver/**/__pycache__/\n**/*.log\n!keep.log\n")
    assert not ignore.excludes("server/app.py")
    assert ignore.excludes("server/__pycache__/a.pyc") and ignore.excludes("server/x/__pycache__/a.pyc")
    assert ignore.excludes("src/app.py") and ignore.excludes("server/debug.log")
    assert not ignore.excludes("keep.log")
    assert ignore.can_prune(".venv") and not ignore.can_prune("server")
