"""The fake eksctl double itself: schema validation like eksctl, create then delete leaves nothing."""

from __future__ import annotations

from llmctl.actions.cluster import render_cluster_config
from llmctl.config import Names
from llmctl.config.model import LlmctlConfig


def test_invalid_clusterconfig_fails_like_eksctl(fake_eksctl, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata:\n  name: x\n  region: us-east-1\n"
                   "managedNodeGroups:\n  - name: ng\n    gpus: 1\n")
    done = fake_eksctl.run("create", "cluster", "-f", str(bad))
    assert done.returncode == 1
    assert done.stderr.startswith(f'Error: loading config file "{bad}"') and "gpus" in done.stderr
    assert fake_eksctl.calls("create", "cluster") == [["create", "cluster", "-f", str(bad)]]


def test_create_then_delete_leaves_nothing(fake_eksctl, aws, kube, tmp_path):
    cfg = LlmctlConfig.model_validate({"project": {"name": "demo"}, "cluster": {"nodes_desired": 2, "nodes_max": 2}})
    fake_eksctl.create_cluster(render_cluster_config(cfg, Names.from_config(cfg)), tmp_path)
    eks, iam, cfn = aws.client("eks"), aws.client("iam"), aws.client("cloudformation")
    assert eks.describe_cluster(name="demo")["cluster"]["identity"]["oidc"]["issuer"].startswith("https://oidc.eks.")
    assert len(iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1
    assert len(kube.list("v1", "Node", label_selector="eks.amazonaws.com/nodegroup=gpu-nodes")) == 2

    done = fake_eksctl.run("delete", "cluster", "--name", "demo", "--region", "us-east-1", "--wait")
    assert done.returncode == 0, done.stderr
    assert eks.list_clusters()["clusters"] == []
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    assert [s for s in cfn.describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"] == []
    assert kube.list("v1", "Node") == []
    again = fake_eksctl.run("delete", "cluster", "--name", "demo", "--region", "us-east-1")
    assert again.returncode == 1 and "ResourceNotFoundException" in again.stderr
