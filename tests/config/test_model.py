"""The config model: defaults, validation, derived names and tags."""

from __future__ import annotations

import pytest

from llmctl.config import LlmctlConfig, Names, load_config
from llmctl.config.names import LABEL_INSTANCE, LABEL_MANAGED_BY, TAG_DEPLOYMENT, TAG_MANAGED_BY
from llmctl.errors import ConfigError


def test_node_counts_must_be_ordered(tmp_path):
    path = tmp_path / "llmctl.yaml"
    path.write_text("cluster:\n  nodes_min: 2\n  nodes_desired: 1\n  nodes_max: 3\n")
    with pytest.raises(ConfigError, match="nodes_min <= nodes_desired <= nodes_max"):
        load_config(path, env={})


def test_autoscaling_cannot_outgrow_the_node_group(tmp_path):
    path = tmp_path / "llmctl.yaml"
    path.write_text("deploy:\n  autoscaling:\n    enabled: true\n    max_replicas: 3\n")
    with pytest.raises(ConfigError, match="cluster.nodes_max"):
        load_config(path, env={})


@pytest.mark.parametrize(
    "yaml_text, needle",
    [
        ("project:\n  name: Bad_Name\n", "project.name"),
        ("deploy:\n  load_balancer_source_ranges: [not-a-cidr]\n", "not a CIDR"),
        ("deploy:\n  hostnames: [llm.example.com]\n", "deploy.hostnames llm.example.com names the endpoint"),
        ("cluster:\n  nodes_max: 3\ndeploy:\n  hostnames: ['*.example.com']\n  autoscaling: {enabled: true, "
         "idle_minutes: 10}\n", "is a wildcard"),
        ("deploy:\n  hostnames: [not_a_name]\n", "'not_a_name' is not a DNS name"),
        ("cluster:\n  instance_types: [gpu-large]\n", "not an EC2 instance type"),
        ("model:\n  dtype: float8\n", "model.dtype"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("model: [\n", "not valid YAML"),
        ("server:\n  lora_modules: {sql: /adapters/sql}\n", "server.lora_modules set but server.enable_lora is false"),
        ("server:\n  enable_lora: true\n  max_lora_rank: 7\n", "server.max_lora_rank"),
        ("server:\n  enable_lora: true\n  lora_modules: {'a b': /x}\n", "lora_modules name 'a b'"),
        ("server:\n  vllm_extra_args: --enable-prefix-caching\n", "server.vllm_extra_args"),
    ],
)
def test_bad_values_name_the_field(tmp_path, yaml_text, needle):
    path = tmp_path / "llmctl.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")) as info:
        load_config(path, env={})
    assert info.value.exit_code == 2


def test_names_and_tags_are_derived_from_the_deployment_name():
    cfg = LlmctlConfig.model_validate({"project": {"name": "chat"}, "aws": {"region": "eu-west-1"}})
    names = Names.from_config(cfg)
    assert names.cluster == "chat"
    assert names.app == "vllm-chat"
    assert names.irsa_role == "chat-vllm-s3-access"
    assert names.build_bucket("123456789012") == "chat-build-123456789012-eu-west-1"
    assert names.ecr_repository == "llmctl/chat"
    assert names.aws_tags == {TAG_DEPLOYMENT: "chat", TAG_MANAGED_BY: "llmctl"}
    assert names.k8s_labels == {LABEL_MANAGED_BY: "llmctl", LABEL_INSTANCE: "chat"}


def test_connections_must_hold_every_admitted_request(tmp_path):
    """The server refuses MAX_CONNECTIONS <= MAX_CONCURRENT_REQUESTS + MAX_QUEUED_REQUESTS at start-up;
    the config says so first, with the fix, instead of rendering a crash-looping pod."""
    path = tmp_path / "llmctl.yaml"
    path.write_text("server:\n  max_concurrent_requests: 300\n  max_queued_requests: 300\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert "server.max_connections 512 is not above" in str(caught.value)
    assert "600" in caught.value.hint
    path.write_text("server:\n  max_concurrent_requests: 300\n  max_queued_requests: 300\n  max_connections: 700\n")
    assert load_config(path, env={}).server.max_connections == 700
