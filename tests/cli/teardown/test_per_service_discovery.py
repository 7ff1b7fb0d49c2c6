"""What the Resource Groups Tagging API does not return, found per service: IAM roles, policies and
instance profiles (IAM is not a Tagging API service), ECR repositories (moto's Tagging API has no
ECR) and EC2 launch templates, each planted with this deployment's tags under a name llmctl never
derives; and a verify that fails, naming it, on any tagged leftover, billable or not."""

from __future__ import annotations

import json

from tests.cli.teardown.conftest import IAM_PATH, NAME, REGION, TAGS, in_process_teardown, tag_list

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]})


def plant(world) -> dict:
    """Resources tagged for deployment NAME whose names llmctl does not know, and an untagged role under
    the deployment's IAM path (found by the path prefix alone)."""
    iam, ecr, ec2 = world.c("iam"), world.c("ecr"), world.c("ec2")
    iam.create_role(RoleName="untagged-under-path", Path=IAM_PATH, AssumeRolePolicyDocument=TRUST)
    iam.create_role(RoleName="karpenter-node-planted", Path="/team/", AssumeRolePolicyDocument=TRUST, Tags=tag_list(TAGS))
    iam.put_role_policy(RoleName="karpenter-node-planted", PolicyName="inline", PolicyDocument=POLICY)
    policy = iam.create_policy(PolicyName="planted-policy", PolicyDocument=POLICY, Tags=tag_list(TAGS))["Policy"]["Arn"]
    iam.create_policy_version(PolicyArn=policy, PolicyDocument=POLICY, SetAsDefault=True)
    iam.attach_role_policy(RoleName="karpenter-node-planted", PolicyArn=policy)
    iam.create_instance_profile(InstanceProfileName="planted-profile", Tags=tag_list(TAGS))
    iam.add_role_to_instance_profile(InstanceProfileName="planted-profile", RoleName="karpenter-node-planted")
    ecr.create_repository(repositoryName="planted/cache", tags=tag_list(TAGS))
    template = ec2.create_launch_template(
        LaunchTemplateName="planted-nodes", LaunchTemplateData={"InstanceType": "g5.xlarge"},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": tag_list(TAGS)}])["LaunchTemplate"]["LaunchTemplateId"]
    return {"policy": policy, "template": template}


def planted_left(world, planted: dict) -> dict:
    """What of the planted resources still exists, by independent look-ups."""
    iam, ecr, ec2 = world.c("iam"), world.c("ecr"), world.c("ec2")
    return {
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] in ("karpenter-node-planted", "untagged-under-path")],
        "policies": [p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"] if p["Arn"] == planted["policy"]],
        "profiles": [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]],
        "repositories": [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]
                         if r["repositoryName"] == "planted/cache"],
        "templates": [t["LaunchTemplateId"] for t in ec2.describe_launch_templates()["LaunchTemplates"]],
    }


def test_teardown_all_deletes_what_the_tagging_api_misses(world, llmctl):
    world.seed_build()
    world.seed_foreign_aws()
    planted = plant(world)
    foreign = world.foreign_aws()

    plan = llmctl("teardown", "--all", "--dry-run", env={"COLUMNS": "250"})
    assert plan.returncode == 0, plan.stderr
    for name in ("karpenter-node-planted", "untagged-under-path", "planted-policy", "planted-profile", "planted/cache", "planted-nodes"):
        assert name in plan.stdout, plan.stdout

    done = llmctl("teardown", "--all", "--yes", "-o", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["verification"]["clean"] and report["verification"]["leftovers"] == [], report["verification"]
    assert planted_left(world, planted) == {"roles": [], "policies": [], "profiles": [], "repositories": [], "templates": []}
    assert world.nothing_left(), world.ours()
    assert world.foreign_aws() == foreign  # another deployment's role and repository are untouched


def test_a_free_tagged_leftover_fails_the_verify_by_name(world, llmctl):
    """A security group tagged for this deployment (no charge, no teardown step): verify fails, naming it."""
    world.seed_build()
    ec2 = world.c("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="planted-sg", Description="planted", VpcId=vpc,
                                      TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(TAGS)}])["GroupId"]
    done = llmctl("teardown", "--all", "--yes", env={"COLUMNS": "250"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert group in done.stdout and "Still there" in done.stdout
    assert "nothing billable left" not in done.stdout
    assert group in done.stderr and "; fix: " in done.stderr  # the failure's one line names it too


class _RefusingIam:
    """The IAM client of a world where deleting a role is accepted but never happens."""

    def __init__(self, iam):
        self._iam = iam

    def delete_role(self, **kwargs):
        return {}

    def __getattr__(self, name):
        return getattr(self._iam, name)


def test_a_role_that_survives_deletion_fails_the_verify_by_name(world):
    from llmctl.aws.session import AwsClients

    world.seed_build()
    plant(world)
    aws = AwsClients(REGION)
    aws._clients["iam"] = _RefusingIam(aws.client("iam"))
    action = in_process_teardown(world, aws=aws)
    action.plan(include_build=True).execute()
    verification = action.verify(include_build=True)
    assert not verification["clean"]
    left = {r["name"] for r in verification["leftovers"]}
    assert {"karpenter-node-planted", f"{NAME}-codebuild"} <= left, left
    assert all(r["remove"] for r in verification["leftovers"])
