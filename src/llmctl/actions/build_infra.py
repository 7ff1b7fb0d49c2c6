"""The build infrastructure `llmctl build` ensures before each build, as plan steps (observe,
then create/update): the S3 build bucket, the ECR repository, the build log group, the CodeBuild
service role (least privilege) and the CodeBuild project.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from llmctl.aws import codebuild as cb
from llmctl.aws import ecr as ecr_api
from llmctl.aws import iam as iam_api
from llmctl.aws import logs as logs_api
from llmctl.aws import s3 as s3_api
from llmctl.plan import Plan, Step

LOG_RETENTION_DAYS = 30


def infrastructure(aws, names, cfg, account: str, secret_arn: str | None, *,
                   sleep: Callable[[float], None] = time.sleep) -> Plan:
    n, tags = names, names.aws_tags
    bucket = n.build_bucket(account)
    repo_arn = f"arn:aws:ecr:{n.region}:{account}:repository/{n.ecr_repository}"
    plan = Plan()
    plan.add(s3_api.bucket_step(aws.s3, bucket, n.region, tags))
    plan.add(repository_step(aws, names, cfg))
    plan.add(logs_api.log_group_step(aws.logs, n.codebuild_log_group, LOG_RETENTION_DAYS, tags))
    plan.add(
        iam_api.role_step(
            aws.iam,
            n.codebuild_role,
            codebuild_trust_policy(account),
            {"llmctl-image-build": codebuild_role_policy(n.region, account, bucket, repo_arn, n.codebuild_log_group, secret_arn)},
            tags,
            description=f"llmctl: CodeBuild image build for {n.deployment}",
            path=n.iam_path,
        )
    )
    role = iam_api.existing_role_arn(aws.iam, n.codebuild_role, account, n.iam_path)
    plan.add(cb.project_step(aws.codebuild, project_spec(names, cfg, account, bucket, role), tags, sleep=sleep))
    return plan


def repository_step(aws, names, cfg) -> Step:
    """The ECR repository every build pushes to (CodeBuild's and `build --local`'s)."""
    return ecr_api.repository_step(aws.ecr, names.ecr_repository, cfg.build.keep_images, names.aws_tags)


def project_spec(names, cfg, account: str, bucket: str, service_role: str) -> dict:
    n, build = names, cfg.build
    return {
        "name": n.codebuild_project,
        "description": f"llmctl image build for {n.deployment}",
        # Each build overrides the location with its content-addressed zip.
        "source": {"type": "S3", "location": f"{bucket}/builds/"},
        "artifacts": {
            "type": "S3",
            "location": bucket,
            "path": "artifacts",
            "namespaceType": "BUILD_ID",
            "name": "image",
            "packaging": "NONE",
        },
        "environment": {
            "type": "LINUX_CONTAINER",
            "image": build.image,
            "computeType": build.compute_type,
            "privilegedMode": True,  # docker build needs the Docker daemon
            "imagePullCredentialsType": "CODEBUILD",
        },
        "serviceRole": service_role,
        "timeoutInMinutes": build.timeout_minutes,
        "logsConfig": {"cloudWatchLogs": {"status": "ENABLED", "groupName": n.codebuild_log_group}},
    }


def codebuild_trust_policy(account: str) -> dict:
    """Only CodeBuild, and only on behalf of this account (confused-deputy guard)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "codebuild.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            }
        ],
    }


def codebuild_role_policy(region: str, account: str, bucket: str, repo_arn: str, log_group: str, secret_arn: str | None) -> dict:
    """Least privilege: its build objects, its log group, its ECR repository, the one secret."""
    log_group_arn = f"arn:aws:logs:{region}:{account}:log-group:{log_group}"
    statements = [
        {
            "Sid": "BuildSource",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": [f"arn:aws:s3:::{bucket}/builds/*"],
        },
        {
            "Sid": "BuildArtifacts",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": [f"arn:aws:s3:::{bucket}/artifacts/*"],
        },
        {
            "Sid": "BuildBucket",
            "Effect": "Allow",
            "Action": ["s3:GetBucketAcl", "s3:GetBucketLocation"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
        },
        {
            "Sid": "BuildLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [log_group_arn, f"{log_group_arn}:*"],
        },
        {
            # GetAuthorizationToken has no resource-level permissions: "*" is the only form.
            "Sid": "EcrLogin",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken"],
            "Resource": ["*"],
        },
        {
            "Sid": "EcrPushPull",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:CompleteLayerUpload",
                "ecr:DescribeImages",
                "ecr:GetDownloadUrlForLayer",
                "ecr:InitiateLayerUpload",
                "ecr:PutImage",
                "ecr:UploadLayerPart",
            ],
            "Resource": [repo_arn],
        },
    ]
    if secret_arn:
        statements.append(
            {"Sid": "DockerHubSecret", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [secret_arn]}
        )
    return {"Version": "2012-10-17", "Statement": statements}
