"""The fault-injecting AWS proxy and the Kubernetes double's planted faults answer as the real services do."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.doubles.faulty_proxy import Fault, FaultyProxy
from tests.doubles.kube.faults import KubeFault


@pytest.fixture
def proxy(aws):
    p = FaultyProxy(aws.url).start()
    try:
        yield p
    finally:
        p.stop()


def client(proxy, service: str, attempts: int = 1):
    return boto3.client(service, region_name="us-east-1", endpoint_url=proxy.url, aws_access_key_id="testing",
                        aws_secret_access_key="testing",
                        config=Config(user_agent_extra="llmctl", retries={"mode": "standard", "total_max_attempts": attempts}))


@pytest.mark.parametrize(("service", "call", "code", "status"), [
    ("iam", lambda c: c.create_role(RoleName="r", AssumeRolePolicyDocument="{}"), "Throttling", 400),
    ("ecr", lambda c: c.create_repository(repositoryName="repo"), "ThrottlingException", 400),
    ("s3", lambda c: c.create_bucket(Bucket="bkt"), "SlowDown", 503),
    ("ec2", lambda c: c.create_vpc(CidrBlock="10.0.0.0/16"), "RequestLimitExceeded", 503),
])
def test_throttling_is_refused_before_moto_in_each_protocol(proxy, aws, service, call, code, status):
    proxy.faults.append(Fault("throttle", lambda c: c.mutating))
    with pytest.raises(ClientError) as err:
        call(client(proxy, service))
    assert err.value.response["Error"]["Code"] == code
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    call(client(proxy, service))  # once only: the second call goes through


def test_5xx_applies_the_change_and_loses_the_reply_so_the_retry_meets_it(proxy, aws):
    proxy.faults.append(Fault("5xx", lambda c: c.label == "iam:CreateRole"))
    with pytest.raises(ClientError) as err:
        client(proxy, "iam", attempts=2).create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    assert err.value.response["Error"]["Code"] == "EntityAlreadyExists"  # the retry found it made
    assert [(c.label, c.status) for c in proxy.calls] == [("iam:CreateRole", 500), ("iam:CreateRole", 409)]


def test_kill_runs_after_the_change_and_only_llmctl_calls_are_counted(proxy, aws):
    killed = []
    proxy.on_kill = lambda: killed.append(aws.client("s3").list_buckets()["Buckets"])
    proxy.faults.append(Fault("kill", lambda c: c.mutating, nth=2))
    plain = boto3.client("s3", region_name="us-east-1", endpoint_url=proxy.url, aws_access_key_id="testing",
                         aws_secret_access_key="testing")
    plain.create_bucket(Bucket="not-counted")
    c = client(proxy, "s3")
    c.create_bucket(Bucket="first")
    with pytest.raises(ClientError):
        c.create_bucket(Bucket="second")
    assert sorted(b["Name"] for b in killed[0]) == ["first", "not-counted", "second"]
    assert [c.operation for c in proxy.calls] == ["PUT /{bucket}", "PUT /{bucket}"]


@pytest.mark.parametrize(("status", "reason"), [(500, "InternalError"), (429, "TooManyRequests"), (409, "Conflict")])
def test_kube_fault_answers_a_status_once_before_the_store(kube, kube_api_client, status, reason):
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException

    kube.faults.append(KubeFault(status, method="POST", path="/configmaps$"))
    api = CoreV1Api(kube_api_client)
    body = {"metadata": {"name": "x"}, "data": {"a": "1"}}
    with pytest.raises(ApiException) as err:
        api.create_namespaced_config_map("default", body)
    assert err.value.status == status and f'"reason": "{reason}"' in err.value.body
    if status == 429:
        assert err.value.headers["Retry-After"] == "1"
    assert kube.get("v1", "ConfigMap", "x", "default") is None
    api.create_namespaced_config_map("default", body)
    assert kube.get("v1", "ConfigMap", "x", "default") is not None


def test_on_mutation_runs_after_the_change_before_the_reply(kube, kube_api_client):
    from kubernetes.client import CoreV1Api

    seen = []
    kube.on_mutation = lambda record: seen.append((record.method, record.path, kube.get("v1", "ConfigMap", "x", "default") is not None))
    CoreV1Api(kube_api_client).create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    CoreV1Api(kube_api_client).read_namespaced_config_map("x", "default")
    assert seen == [("POST", "/api/v1/namespaces/default/configmaps", True)]
