"""Pre-flight (`--dry-run`, short quota) and `cluster status`."""

from __future__ import annotations

import json


def _aws_untouched(aws) -> bool:
    return (aws.client("eks").list_clusters()["clusters"] == []
            and aws.client("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
            and [r for r in aws.client("iam").list_roles()["Roles"] if r["RoleName"].startswith("demo-")] == [])


def test_dry_run_prints_preflight_cost_and_plan_and_changes_nothing(cluster_env, aws, kube, fake_eksctl):
    done = cluster_env("cluster", "up", "--dry-run", check=True, timeout=180)
    out = done.stdout
    assert "pre-flight" in out and "gpu quota" in out and "model fit" in out
    assert "EKS control plane" in out and "GPU nodes (1 x g4dn.xlarge)" in out and "$0.5260" in out
    assert "plan (dry run: nothing changed)" in out and "EKS cluster demo" in out and "create" in out
    assert [a for a in fake_eksctl.argv if a != ["version"]] == []
    assert _aws_untouched(aws)
    assert kube.list("apps/v1", "DaemonSet", "kube-system") == []

    data = json.loads(cluster_env("cluster", "up", "--dry-run", "--output", "json", check=True, timeout=180).stdout)
    assert data["preflight"]["ok"] is True
    assert data["preflight"]["cost"]["source"].startswith("price table (as of ")
    assert [s["action"] for s in data["plan"]] == ["create", "create", "create", "create", "create", "create", "run"]
    assert data["preflight"]["fit"]["weights_bytes"] == 2 * 1024**3


def test_an_irsa_role_an_earlier_llmctl_made_at_slash_is_kept_and_the_plan_says_so(cluster_env, aws, fake_eksctl):
    aws.client("iam").create_role(RoleName="demo-vllm-s3-access", AssumeRolePolicyDocument="{}")
    data = json.loads(cluster_env("cluster", "up", "--dry-run", "--output", "json", check=True, timeout=180).stdout)
    role = next(s for s in data["plan"] if s["kind"] == "iam-role")
    assert role["detail"].startswith("kept at IAM path / where an earlier llmctl made it (IAM cannot move a role)")
    assert "/llmctl/demo/" in role["detail"]


def test_short_quota_stops_before_eksctl(cluster_env, aws, fake_eksctl, gpu_quota):
    gpu_quota["L-DB2E81BA"] = 0
    done = cluster_env("cluster", "up", "--yes", timeout=180)
    assert done.returncode == 1
    assert "L-DB2E81BA" in done.stderr and "0 vCPUs" in done.stderr and "4 needed" in done.stderr
    assert ("aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-DB2E81BA "
            "--desired-value 4 --region us-east-1") in done.stderr.replace("\n", "")
    assert [a for a in fake_eksctl.argv if a != ["version"]] == []  # eksctl itself was only asked its version
    assert _aws_untouched(aws)


def test_spot_uses_the_spot_quota(cluster_env, aws, fake_eksctl, gpu_quota):
    cluster_env.write_config(cluster_env.cwd.joinpath("llmctl.yaml").read_text()
                             + "cluster:\n  spot: true\n  nodes_max: 3\n")
    gpu_quota["L-3819A6DF"] = 8
    done = cluster_env("cluster", "up", "--dry-run", "--output", "json", timeout=180)
    assert done.returncode == 1
    quota = json.loads(done.stdout)["result"]["preflight"]["quota"]  # the error object holds the result
    assert (quota["code"], quota["needed_vcpus"], quota["limit_vcpus"], quota["status"]) == ("L-3819A6DF", 12, 8.0, "fail")


def test_status_json_before_and_after(cluster_env, aws, kube, fake_eksctl):
    before = json.loads(cluster_env("cluster", "status", "--output", "json", check=True).stdout)
    assert before == {"name": "demo", "region": "us-east-1", "exists": False}
    cluster_env("cluster", "up", "--yes", check=True, timeout=180)
    data = json.loads(cluster_env("cluster", "status", "--output", "json", check=True).stdout)
    assert data["control_plane"]["status"] == "ACTIVE" and data["control_plane"]["version"] == "1.33"
    assert data["control_plane"]["managed_by_llmctl"] is True
    assert data["oidc_provider"].endswith(data["control_plane"]["oidc_issuer"].split("://")[1])
    assert [(n["name"], n["capacity_type"], n["instance_types"]) for n in data["nodegroups"]] == \
        [("gpu-nodes", "ON_DEMAND", ["g4dn.xlarge"])]
    assert [(n["nodegroup"], n["ready"], n["gpu_allocatable"]) for n in data["nodes"]] == [("gpu-nodes", True, 1)]
    assert data["device_plugin"]["managed_by_llmctl"] is True and data["device_plugin"]["healthy"] is True
    assert data["irsa_role"] == {"name": "demo-vllm-s3-access", "exists": True,
                                 "arn": "arn:aws:iam::123456789012:role/llmctl/demo/demo-vllm-s3-access",
                                 "trust_matches_cluster": True, "permissions_match": True}
    assert data["gpu_schedulable"] is True


def test_karpenter_checks_the_on_demand_and_the_spot_quota(cluster_env, aws, fake_eksctl, gpu_quota):
    """On-demand must hold every node (the fallback when spot is short); spot above on_demand_base only warns."""
    cluster_env.write_config(cluster_env.cwd.joinpath("llmctl.yaml").read_text()
                             + "cluster:\n  capacity: karpenter\n  nodes_max: 3\n  on_demand_base: 1\n")
    gpu_quota["L-3819A6DF"] = 4  # spot: 2 nodes x 4 vCPUs needed
    data = json.loads(cluster_env("cluster", "up", "--dry-run", "--output", "json", check=True, timeout=180).stdout)
    checks = {c["name"]: c for c in data["preflight"]["checks"]}
    assert checks["gpu quota (on-demand)"]["status"] == "pass" and "12 needed" in checks["gpu quota (on-demand)"]["detail"]
    spot = checks["gpu quota (spot)"]
    assert spot["status"] == "warn" and "8 needed" in spot["detail"] and "falls back to on-demand" in spot["detail"]
    assert "--quota-code L-3819A6DF --desired-value 8" in spot["fix"]
    gpu_quota["L-DB2E81BA"] = 8
    done = cluster_env("cluster", "up", "--dry-run", "--output", "json", timeout=180)
    assert done.returncode == 1 and "L-DB2E81BA" in done.stderr
