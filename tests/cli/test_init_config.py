"""`llmctl init`, `config show|validate`: the user's first three commands."""

from __future__ import annotations

import json

import pytest
import yaml


def test_init_validate_show_in_empty_folder(llmctl):
    done = llmctl("init", "--name", "demo", "--bucket", "my-models", check=True)
    assert "wrote llmctl.yaml" in done.stdout
    text = (llmctl.cwd / "llmctl.yaml").read_text()
    assert text.startswith("# llmctl configuration")
    assert "# AWS region for every resource." in text

    llmctl("config", "validate", check=True)
    shown = json.loads(llmctl("config", "show", "--output", "json", check=True).stdout)
    assert shown["project"]["name"] == "demo"
    assert shown["model"]["bucket"] == "my-models"
    # Reference-architecture defaults.
    assert shown["aws"]["region"] == "us-east-1"
    assert shown["cluster"]["instance_types"] == ["g4dn.xlarge"]
    assert shown["deploy"]["namespace"] == "vllm"
    assert shown["deploy"]["service_account"] == "vllm-sa"
    assert shown["model"]["max_model_len"] == 512
    assert shown["model"]["dtype"] == "float16"
    assert shown["server"]["gpu_memory_utilization"] == 0.95
    assert shown["server"]["tensor_parallel_size"] == 1
    assert shown["server"]["port"] == 8000
    assert shown["deploy"]["requests"] == {"cpu": "2", "memory": "12Gi"}
    assert shown["deploy"]["limits"] == {"cpu": "3", "memory": "14Gi"}
    assert shown["monitoring"]["scrape_interval"] == "30s"
    assert shown["monitoring"]["retention"] == "15d"


def test_init_refuses_to_overwrite(llmctl):
    llmctl("init", check=True)
    (llmctl.cwd / "llmctl.yaml").write_text("project:\n  name: mine\n")
    done = llmctl("init")
    assert done.returncode == 2
    assert "already exists" in done.stderr and "--force" in done.stderr
    assert (llmctl.cwd / "llmctl.yaml").read_text() == "project:\n  name: mine\n"
    llmctl("init", "--force", check=True)
    assert "# llmctl configuration" in (llmctl.cwd / "llmctl.yaml").read_text()


def test_starter_file_round_trips_to_defaults(llmctl):
    from llmctl.config import LlmctlConfig

    llmctl("init", check=True)
    data = yaml.safe_load((llmctl.cwd / "llmctl.yaml").read_text())
    assert LlmctlConfig.model_validate(data) == LlmctlConfig()


def _one_line_exit_2(done, *needles):
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_wrong_type_is_one_line_exit_2(llmctl):
    llmctl.write_config("model:\n  max_model_len: lots\n")
    _one_line_exit_2(llmctl("config", "validate"), "model.max_model_len", "'lots'", "integer")


def test_unknown_key_suggests_the_right_one(llmctl):
    llmctl.write_config("deploy:\n  replica: 2\n")
    _one_line_exit_2(llmctl("config", "validate"), "deploy.replica", "unknown key", "did you mean 'deploy.replicas'")


def test_bad_region_names_value_and_fix(llmctl):
    llmctl.write_config("aws:\n  region: us-east-9\n")
    _one_line_exit_2(llmctl("config", "validate"), "aws.region", "'us-east-9'", "did you mean")


@pytest.mark.parametrize(("monitoring", "needles"), [
    ("  expose: load-balancer\n", ("monitoring", "load_balancer_source_ranges is empty", "llmctl dashboard")),
    ("  alertmanager:\n    email_to: oncall@example.com\n", ("monitoring.alertmanager", "SMTP relay", "smtp_smarthost")),
    ("  alertmanager:\n    email_to: a@example.com\n    smtp_smarthost: smtp:587\n    smtp_auth_username: u\n",
     ("monitoring.alertmanager", "smtp_auth_password_secret")),
])
def test_monitoring_cross_field_checks_fail_config_validate(llmctl, monitoring, needles):
    llmctl.write_config("monitoring:\n" + monitoring)
    _one_line_exit_2(llmctl("config", "validate"), "llmctl.yaml", *needles)


def test_debug_shows_the_traceback(llmctl):
    llmctl.write_config("aws:\n  region: mars-1\n")
    done = llmctl("--debug", "config", "validate")
    assert done.returncode == 2
    assert "Traceback" in done.stderr


def test_precedence_flags_over_env_over_file(llmctl):
    llmctl.write_config("aws:\n  region: eu-west-1\nmodel:\n  max_model_len: 1024\n")
    shown = json.loads(llmctl("config", "show", "-o", "json", check=True).stdout)
    assert shown["aws"]["region"] == "eu-west-1"
    env = {"LLMCTL_AWS_REGION": "eu-central-1", "LLMCTL_MODEL_MAX_MODEL_LEN": "2048", "LLMCTL_CLUSTER_INSTANCE_TYPES": "g5.xlarge,g6.xlarge"}
    shown = json.loads(llmctl("config", "show", "-o", "json", env=env, check=True).stdout)
    assert shown["aws"]["region"] == "eu-central-1"
    assert shown["model"]["max_model_len"] == 2048
    assert shown["cluster"]["instance_types"] == ["g5.xlarge", "g6.xlarge"]
    shown = json.loads(llmctl("--region", "us-west-2", "config", "show", "-o", "json", env=env, check=True).stdout)
    assert shown["aws"]["region"] == "us-west-2"


def test_unknown_environment_variable_is_a_usage_error(llmctl):
    _one_line_exit_2(llmctl("config", "show", env={"LLMCTL_DEPLOYY_REPLICAS": "2"}), "LLMCTL_DEPLOYY_REPLICAS")


def test_bad_env_value_names_the_field(llmctl):
    _one_line_exit_2(llmctl("config", "validate", env={"LLMCTL_DEPLOY_REPLICAS": "many"}), "deploy.replicas", "'many'")


def test_usage_errors_exit_2(llmctl):
    _one_line_exit_2(llmctl("no-such-command"), "No such command 'no-such-command'", "llmctl --help")
    _one_line_exit_2(llmctl("config", "show", "--output", "yaml"), "--output", "'yaml' is not one of 'text', 'json'")
    _one_line_exit_2(llmctl("--output", "yaml", "config", "show"), "--output", "'yaml'")
    bare = llmctl()
    assert bare.returncode == 2 and "Usage: llmctl" in bare.stderr and "config" in bare.stderr


def test_version(llmctl):
    from llmctl import __version__

    done = llmctl("--version", check=True)
    assert done.stdout.strip() == f"llmctl {__version__}"
