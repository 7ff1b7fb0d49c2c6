"""Pure parts: the price table, the fit check, quota reading when Service Quotas cannot answer."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from llmctl import pricing
from llmctl.actions.fit import check_fit
from llmctl.aws.quotas import check_gpu_quota, quota_for
from llmctl.config.model import LlmctlConfig

LLAMA_7B = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
            "vocab_size": 32000, "intermediate_size": 11008, "torch_dtype": "float16"}


def cfg(**sections) -> LlmctlConfig:
    return LlmctlConfig.model_validate({"project": {"name": "demo"}, **sections})


def test_price_table_entries_and_estimate():
    assert pricing.PRICES_AS_OF
    g4 = pricing.instance("g4dn.xlarge")
    assert (g4.vcpus, g4.gpus, g4.gpu_model, g4.gpu_memory_gib, g4.bf16) == (4, 1, "T4", 16, False)
    with pytest.raises(KeyError, match="not in llmctl's price table"):
        pricing.instance("x9.huge")
    est = pricing.estimate(cfg(cluster={"nodes_min": 2, "nodes_desired": 2, "nodes_max": 2}))
    items = {line.item: line for line in est.lines}
    assert items["EKS control plane"].hourly == 0.10
    assert items["GPU nodes (2 x g4dn.xlarge)"].hourly == pytest.approx(1.052)
    assert items["EBS gp3 (200 GB)"].monthly == pytest.approx(16.0)
    assert est.monthly_total == pytest.approx(sum(line.monthly for line in est.lines), abs=0.02)
    spot = pricing.estimate(cfg(cluster={"spot": True}, aws={"region": "eu-west-1"}))
    assert spot.lines[1].hourly == pytest.approx(0.2124 * 1.12, abs=1e-4)


def test_fit_for_a_7b_model_on_t4_and_bf16_warning():
    weights = 13_476_839_424  # Llama-2-7B float16 safetensors
    manifest = {"version": 1, "files": [{"path": "model-00001.safetensors", "size": weights, "sha256": "x"}]}
    report = check_fit(cfg(), pricing.instance("g4dn.xlarge"), manifest, LLAMA_7B)
    assert report.status == "pass" and report.kv_bytes_per_sequence == 2 * 32 * 32 * 128 * 2 * 512
    assert report.max_concurrent_sequences == (report.usable_gpu_bytes - weights - int(1.5 * 1024**3)) // (256 * 1024**2)
    too_long = check_fit(cfg(model={"max_model_len": 8192}), pricing.instance("g4dn.xlarge"), manifest, LLAMA_7B)
    assert too_long.status == "fail" and "max_model_len" in too_long.fix
    bf16 = check_fit(cfg(model={"dtype": "bfloat16"}), pricing.instance("g4dn.xlarge"), manifest, LLAMA_7B)
    assert bf16.status == "fail" and "float16" in bf16.fix
    assert check_fit(cfg(model={"dtype": "bfloat16"}), pricing.instance("g5.xlarge"), manifest, LLAMA_7B).status == "pass"
    auto = check_fit(cfg(model={"dtype": "auto"}), pricing.instance("g4dn.xlarge"), manifest,
                     {**LLAMA_7B, "torch_dtype": "bfloat16"})
    assert auto.status == "warn" and "casts it to float16" in auto.warnings[0]
    estimated = check_fit(cfg(), pricing.instance("g4dn.xlarge"), None, LLAMA_7B)
    assert estimated.weights_source == "config.json parameter count"
    assert abs(estimated.weights_bytes - weights) / weights < 0.01
    assert check_fit(cfg(), pricing.instance("g4dn.xlarge"), None, None).status == "warn"


def test_quota_unknown_is_a_warning_and_codes_follow_family():
    import boto3

    client = boto3.client("service-quotas", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("get_service_quota", "NoSuchResourceException")
        stub.add_client_error("get_aws_default_service_quota", "NoSuchResourceException")
        check = check_gpu_quota(client, "g4dn.xlarge", 4, 2, False, "us-east-1")
    assert check.status == "warn" and check.limit_vcpus is None and "could not verify" in check.detail
    with Stubber(client) as stub:
        stub.add_client_error("get_service_quota", "NoSuchResourceException")
        stub.add_response("get_aws_default_service_quota", {"Quota": {"Value": 0.0}})
        check = check_gpu_quota(client, "g4dn.xlarge", 4, 2, False, "us-east-1")
    assert (check.status, check.needed_vcpus, check.limit_vcpus) == ("fail", 8, 0.0)
    assert quota_for("p4d.24xlarge", False)[0] == "L-417A185B"
    assert quota_for("g5.xlarge", True)[0] == "L-3819A6DF"
