"""The adapters' error mapping: AWS's refusal becomes one domain error naming the operation with
the fix; "not there" is an answer, not an error; anything that is not AWS's answer (a bug such as
a KeyError) propagates unchanged. Real botocore clients with botocore's Stubber: no network."""

from __future__ import annotations

import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber

from llmctl.aws import cloudformation, codebuild, ec2, ecr, eks, elb, iam, irsa, logs, s3, secretsmanager, tagging
from llmctl.aws.errors import HINTS, aws_error
from llmctl.errors import LlmctlError

ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/k8s-tg/0123456789abcdef"
LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/k8s-lb/0123456789abcdef"


def client(service: str):
    import boto3

    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


# (service, operation AWS is asked first, the adapter call, the code that means "not there",
#  what the adapter answers then, the words the error starts with)
CASES = [
    ("eks", "describe_cluster", lambda c: eks.describe_cluster(c, "demo"), "ResourceNotFoundException", None,
     "looking up EKS cluster demo"),
    ("eks", "describe_nodegroup", lambda c: eks.describe_nodegroup(c, "demo", "gpu"), "ResourceNotFoundException", None,
     "looking up node group gpu"),
    ("iam", "get_role", lambda c: iam.get_role(c, "demo-codebuild"), "NoSuchEntity", None, "looking up IAM role demo-codebuild"),
    ("iam", "list_role_policies", lambda c: iam.delete_role(c, "demo-codebuild"), "NoSuchEntity", None,
     "deleting IAM role demo-codebuild"),
    ("iam", "delete_open_id_connect_provider", lambda c: irsa.delete_oidc_provider(c, ARN), "NoSuchEntity", None,
     "deleting the cluster's OIDC provider"),
    ("elbv2", "delete_load_balancer", lambda c: elb.delete_load_balancer(c, LB), "LoadBalancerNotFound", None,
     f"deleting load balancer {LB}"),
    ("elbv2", "delete_target_group", lambda c: elb.delete_target_group(c, TG), "TargetGroupNotFound", None,
     f"deleting target group {TG}"),
    ("elb", "delete_load_balancer", lambda c: elb.delete_classic_load_balancer(c, "k8s-old"), "LoadBalancerNotFound", None,
     "deleting classic load balancer k8s-old"),
    ("ec2", "delete_security_group", lambda c: ec2.delete_security_group(c, "sg-1", sleep=lambda s: None),
     "InvalidGroup.NotFound", None, "deleting security group sg-1"),
    ("ec2", "delete_volume", lambda c: ec2.delete_volume(c, "vol-1", sleep=lambda s: None), "InvalidVolume.NotFound", None,
     "deleting EBS volume vol-1"),
    ("ec2", "describe_volumes", lambda c: ec2.volume_size_gib(c, "vol-1"), "InvalidVolume.NotFound", None,
     "looking up EBS volume vol-1"),
    ("ecr", "describe_repositories", lambda c: ecr.describe_repository(c, "llmctl/demo"), "RepositoryNotFoundException", None,
     "looking up ECR repository llmctl/demo"),
    ("ecr", "delete_repository", lambda c: ecr.delete_repository(c, "llmctl/demo"), "RepositoryNotFoundException", None,
     "deleting ECR repository llmctl/demo"),
    ("ecr", "describe_images", lambda c: ecr.image_bytes(c, "llmctl/demo"), "RepositoryNotFoundException", 0,
     "listing the images of ECR repository llmctl/demo"),
    ("s3", "head_bucket", lambda c: s3.bucket_exists(c, "b"), "404", False, "checking S3 bucket b"),
    ("s3", "list_object_versions", lambda c: s3.delete_bucket(c, "b"), "NoSuchBucket", 0, "deleting S3 bucket b"),
    ("s3", "get_object", lambda c: s3.read_json(c, "b", "m/llmctl-manifest.json"), "NoSuchKey", None,
     "reading s3://b/m/llmctl-manifest.json"),
    ("s3", "get_object", lambda c: s3.read_object(c, "b", "m/llmctl-manifest.json"), "NoSuchBucket", None,
     "reading s3://b/m/llmctl-manifest.json"),
    ("logs", "delete_log_group", lambda c: logs.delete_log_group(c, "/aws/codebuild/demo"), "ResourceNotFoundException", None,
     "deleting log group /aws/codebuild/demo"),
    ("secretsmanager", "describe_secret", lambda c: secretsmanager.secret_arn(c, "hub"), "ResourceNotFoundException", None,
     "looking up secret hub"),
    ("secretsmanager", "delete_secret", lambda c: secretsmanager.delete_secret(c, "hub"), "ResourceNotFoundException", None,
     "deleting secret hub"),
    ("codebuild", "delete_project", lambda c: codebuild.delete_project(c, "demo-image-build"), "ResourceNotFoundException",
     None, "deleting CodeBuild project demo-image-build"),
]
IDS = [f"{service}.{op}" for service, op, *_ in CASES]
DENIED_HINT = HINTS["AccessDenied"]


@pytest.mark.parametrize(("service", "operation", "call", "absent", "answer", "doing"), CASES, ids=IDS)
def test_not_there_is_an_answer(service, operation, call, absent, answer, doing):
    c = client(service)
    with Stubber(c) as stub:
        stub.add_client_error(operation, service_error_code=absent, http_status_code=404)
        assert call(c) == answer
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(("service", "operation", "call", "absent", "answer", "doing"), CASES, ids=IDS)
def test_a_refusal_is_one_domain_error_with_the_fix(service, operation, call, absent, answer, doing):
    c = client(service)
    with Stubber(c) as stub, pytest.raises(LlmctlError) as info:
        stub.add_client_error(operation, service_error_code="AccessDenied", service_message="not allowed", http_status_code=403)
        call(c)
    assert info.value.message == f"{doing}: AccessDenied: not allowed"
    assert info.value.hint == DENIED_HINT
    assert info.value.__cause__ is None and info.value.__suppress_context__  # one line, no botocore chain


class Broken:
    """A client whose every call hits a bug: the adapters must not call that an AWS error."""

    def __getattr__(self, name):
        def call(*args, **kwargs):
            raise KeyError("Role")

        return call


@pytest.mark.parametrize(("service", "operation", "call", "absent", "answer", "doing"), CASES, ids=IDS)
def test_what_is_not_aws_s_answer_propagates_unchanged(service, operation, call, absent, answer, doing):
    with pytest.raises(KeyError, match="Role"):
        call(Broken())


def test_list_and_look_up_errors_name_what_was_being_read():
    tag_client = client("resourcegroupstaggingapi")
    with Stubber(tag_client) as stub, pytest.raises(LlmctlError, match="^listing resources tagged llmctl.io/deployment: ExpiredTokenException"):
        stub.add_client_error("get_resources", service_error_code="ExpiredTokenException", http_status_code=400)
        tagging.tagged_resources(tag_client, [{"Key": "llmctl.io/deployment", "Values": ["demo"]}])
    cfn = client("cloudformation")
    with Stubber(cfn) as stub, pytest.raises(LlmctlError) as info:
        stub.add_client_error("describe_stacks", service_error_code="ExpiredToken", http_status_code=403)
        cloudformation.eksctl_stacks(cfn, "demo", "eksctl-demo-")
    assert info.value.hint == HINTS["ExpiredToken"] and "aws sso login" in info.value.hint
    iam_client = client("iam")
    with Stubber(iam_client) as stub, pytest.raises(LlmctlError, match="^listing IAM OIDC providers: Throttling: slow down"):
        stub.add_client_error("list_open_id_connect_providers", service_error_code="Throttling", service_message="slow down")
        irsa.oidc_providers(iam_client)


def test_a_security_group_still_in_use_is_retried_until_it_goes():
    c = client("ec2")
    slept: list[float] = []
    with Stubber(c) as stub:
        stub.add_client_error("delete_security_group", service_error_code="DependencyViolation")
        stub.add_client_error("delete_security_group", service_error_code="DependencyViolation")
        stub.add_response("delete_security_group", {}, {"GroupId": "sg-1"})
        ec2.delete_security_group(c, "sg-1", retry_s=0.5, sleep=slept.append)
        stub.assert_no_pending_responses()
    assert slept == [0.5, 0.5]
    with Stubber(c) as stub, pytest.raises(LlmctlError, match="^deleting security group sg-1: DependencyViolation"):
        for _ in range(3):
            stub.add_client_error("delete_security_group", service_error_code="DependencyViolation")
        ec2.delete_security_group(c, "sg-1", attempts=3, sleep=lambda s: None)


def test_tag_shapes_and_ownership():
    assert tagging.tags([{"key": "a", "value": "1"}], "key", "value") == {"a": "1"}
    assert tagging.tag_list({"b": "2", "a": "1"}) == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
    ours = {"llmctl.io/deployment": "demo", "llmctl.io/managed-by": "llmctl"}
    assert tagging.is_ours(ours, "demo") and not tagging.is_ours(ours, "other")
    assert not tagging.is_ours({**ours, "llmctl.io/managed-by": "terraform"}, "demo")
    assert tagging.eksctl_made_for({"eksctl.cluster.k8s.io/v1alpha1/cluster-name": "demo"}, "demo")


def test_no_credentials_is_one_line_with_the_fix():
    error = aws_error(NoCredentialsError(), "looking up EKS cluster demo")
    assert error.message == "no AWS credentials found" and "aws configure" in error.hint
