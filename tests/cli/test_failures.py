"""Every AWS, Kubernetes and network failure class reads as one line with its fix, whichever command meets it.

The CLI runs as a subprocess, as a user runs it: with no credentials at all, against an AWS endpoint
nobody listens on, and with a kubeconfig whose API server is down or refuses the token. botocore's
retries are kept to one attempt (its own `AWS_MAX_ATTEMPTS`) so an unreachable endpoint fails fast.
"""

from __future__ import annotations

import socket

import pytest

from tests.doubles.kube import write_kubeconfig

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llmctl/llama@sha256:" + "ab" * 32
CONFIG = "project:\n  name: llama\nmodel:\n  bucket: llama-models\n"
COMMANDS = {
    "teardown --dry-run": ("teardown", "--dry-run"),
    "cost --running": ("cost", "--running"),
    "cluster up --dry-run": ("cluster", "up", "--dry-run"),
    "cluster status": ("cluster", "status"),
    "deploy": ("deploy", "--image", IMAGE, "--timeout", "5"),
}
FAST = {"AWS_MAX_ATTEMPTS": "1", "AWS_EC2_METADATA_DISABLED": "true"}


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line_with_fix(done, *wanted: str) -> str:
    """The command failed with exactly one `error: ...; fix: ...` line, no traceback, no "internal error"."""
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert len(errors) == 1 and "; fix: " in errors[0], done.stderr
    assert "internal error" not in done.stderr + done.stdout and "Traceback" not in done.stderr, done.stderr
    for text in wanted:
        assert text in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def project(llmctl, tmp_path):
    llmctl.write_config(CONFIG)
    llmctl.env.update(FAST, KUBECONFIG=str(tmp_path / "no-kubeconfig"))
    return llmctl


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_no_credentials(project, command):
    project.env.update(AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_CONFIG_FILE="/dev/null", AWS_REGION="us-east-1")
    done = project(*COMMANDS[command], timeout=60)
    one_line_with_fix(done, "no AWS credentials found", "aws configure")


def test_partial_credentials(project):
    project.env.update(AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_CONFIG_FILE="/dev/null", AWS_ACCESS_KEY_ID="AKIA")
    done = project("teardown", "--dry-run", timeout=60)
    one_line_with_fix(done, "AWS credentials cannot be used", "AWS_SECRET_ACCESS_KEY")


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_unreachable_endpoint(project, command):
    project.env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
                       AWS_ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}")
    done = project(*COMMANDS[command], timeout=60)
    one_line_with_fix(done, "cannot reach AWS", "network")


@pytest.fixture
def cluster_without_api(project, aws, tmp_path):
    """The EKS cluster exists in AWS (moto) and eksctl's kubeconfig context names it, but its API is down."""
    trust = '{"Version": "2012-10-17", "Statement": []}'
    role = aws.client("iam").create_role(RoleName="eks", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    aws.client("eks").create_cluster(name="llama", roleArn=role, resourcesVpcConfig={"subnetIds": [subnet]},
                                     tags={"llmctl.io/deployment": "llama", "llmctl.io/managed-by": "llmctl"})
    kubeconfig = write_kubeconfig(tmp_path / "kube" / "config", f"http://127.0.0.1:{closed_port()}", "token",
                                  context="user@llama.us-east-1.eksctl.io", cluster="llama.us-east-1.eksctl.io")
    project.env["KUBECONFIG"] = str(kubeconfig)
    return project


@pytest.mark.parametrize("command", ["cluster status", "deploy"])
def test_kubernetes_api_down(cluster_without_api, command):
    done = cluster_without_api(*COMMANDS[command], timeout=120)
    one_line_with_fix(done, "cannot reach the Kubernetes API at http://127.0.0.1:", "kubeconfig")


def test_teardown_plan_goes_on_without_the_kubernetes_api_and_says_why(cluster_without_api):
    """Teardown must still remove a cluster whose API is gone: the plan warns (with the fix) instead."""
    done = cluster_without_api("teardown", "--dry-run", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "cannot reach the Kubernetes API" in done.stdout + done.stderr
    assert "internal error" not in done.stdout + done.stderr


def test_kubernetes_rejects_the_token(llmctl, kube, aws, tmp_path):
    llmctl.write_config(CONFIG)
    kubeconfig = write_kubeconfig(tmp_path / "bad" / "config", kube.url, "not-the-token")
    llmctl.env.update(FAST, KUBECONFIG=str(kubeconfig))
    done = llmctl(*COMMANDS["deploy"], timeout=120)
    one_line_with_fix(done, "Unauthorized", "aws eks update-kubeconfig")


def test_no_kubeconfig(project, aws):
    done = project(*COMMANDS["deploy"], timeout=120)
    one_line_with_fix(done, "cannot load Kubernetes credentials", "llmctl cluster up")


# --- the map itself, class by class (the CLI cases above go through it) --------------------------
def _client_error(code: str):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, "DescribeCluster")


@pytest.mark.parametrize("code, fix", [
    ("ExpiredToken", "aws sso login"), ("ExpiredTokenException", "aws sso login"), ("RequestExpired", "aws sso login"),
    ("AccessDenied", "docs/iam.md"), ("UnauthorizedOperation", "docs/iam.md"),
    ("ThrottlingException", "aws.retry_mode: adaptive"), ("RequestLimitExceeded", "aws.retry_mode: adaptive"),
    ("UnrecognizedClientException", "enable the region"), ("InvalidClientTokenId", "enable the region"),
])
def test_every_aws_refusal_has_its_fix(code, fix):
    from llmctl.failures import explain

    failure = explain(_client_error(code))
    assert failure.message == f"{code}: {code} happened" and fix in failure.hint


@pytest.mark.parametrize("make, words, fix", [
    (lambda b: b.NoCredentialsError(), "no AWS credentials found", "aws configure"),
    (lambda b: b.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), "AWS_SECRET_ACCESS_KEY", "aws configure"),
    (lambda b: b.EndpointConnectionError(endpoint_url="https://eks.xx-nowhere-1.amazonaws.com/"), "cannot reach AWS", "aws.region"),
    (lambda b: b.ConnectTimeoutError(endpoint_url="https://sts.amazonaws.com/"), "cannot reach AWS", "network"),
    (lambda b: b.ReadTimeoutError(endpoint_url="https://sts.amazonaws.com/"), "cannot reach AWS", "network"),
    (lambda b: b.InvalidRegionError(region_name="us east 1"), "aws.region", "us-east-1"),
    (lambda b: b.UnauthorizedSSOTokenError(), "login session", "aws sso login"),
])
def test_every_botocore_failure_class_has_its_fix(make, words, fix):
    from botocore import exceptions

    from llmctl.failures import explain

    failure = explain(make(exceptions))
    assert words in failure.message and fix in failure.hint


def test_kubernetes_classes_and_a_real_bug():
    import urllib3
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    from llmctl.failures import explain

    assert "cannot load Kubernetes credentials" in explain(ConfigException("Invalid kube-config file")).message
    refused = urllib3.exceptions.MaxRetryError(urllib3.HTTPConnectionPool("127.0.0.1", 1), "/version")
    assert explain(refused).message.startswith("cannot reach the Kubernetes API at http://127.0.0.1:1")
    assert "RBAC" in explain(ApiException(status=403, reason="Forbidden")).hint
    assert "update-kubeconfig" in explain(ApiException(status=401, reason="Unauthorized")).hint
    assert explain(KeyError("a bug")) is None  # llmctl's own bugs stay "internal error"
    from botocore.exceptions import ParamValidationError

    assert explain(ParamValidationError(report="wrong parameter")) is None
