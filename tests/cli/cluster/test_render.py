"""The ClusterConfig and device plugin renders: eksctl's schema, a golden file, variants."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from llmctl.actions.cluster import device_plugin_objects, render_cluster_config
from llmctl.config import Names
from llmctl.config.model import LlmctlConfig

GOLDEN = Path(__file__).parent / "golden" / "default-clusterconfig.yaml"
VARIANTS = {
    "defaults": {},
    "spot": {"cluster": {"spot": True, "instance_types": ["g4dn.xlarge", "g4dn.2xlarge"]}},
    "several-nodes": {"cluster": {"nodes_min": 1, "nodes_desired": 2, "nodes_max": 4, "gpu_taint": True,
                                  "availability_zones": ["us-east-1a", "us-east-1b"],
                                  "node_labels": {"team": "ml"}, "volume_size_gb": 200}},
    "g5": {"aws": {"region": "eu-west-1"}, "cluster": {"instance_types": ["g5.xlarge"], "ami_family": "Bottlerocket",
                                                        "kubernetes_version": "1.32", "name": "gpu-eu"}},
}


def _config(extra: dict) -> LlmctlConfig:
    return LlmctlConfig.model_validate({"project": {"name": "demo"}, "model": {"bucket": "acme-models"}, **extra})


@pytest.fixture(scope="module")
def schema() -> dict:
    path = Path(__file__).resolve().parents[4] / "shared" / "schemas" / "eksctl-clusterconfig-v1alpha5.schema.json"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return json.loads(path.read_text())


@pytest.mark.parametrize("variant", VARIANTS)
def test_clusterconfig_validates_against_eksctl_schema(variant, schema):
    import jsonschema

    cfg = _config(VARIANTS[variant])
    doc = yaml.safe_load(render_cluster_config(cfg, Names.from_config(cfg)))
    jsonschema.validate(doc, schema)
    ng = doc["managedNodeGroups"][0]
    assert doc["iam"]["withOIDC"] is True
    assert doc["metadata"]["tags"] == {"llmctl.io/deployment": "demo", "llmctl.io/managed-by": "llmctl"}
    assert ng["tags"] == doc["metadata"]["tags"]
    c = cfg.cluster
    assert (ng["minSize"], ng["desiredCapacity"], ng["maxSize"]) == (c.nodes_min, c.nodes_desired, c.nodes_max)
    assert ng.get("spot", False) is c.spot
    assert ng.get("instanceTypes") or [ng["instanceType"]] == c.instance_types
    assert ("taints" in ng) is c.gpu_taint
    assert doc["metadata"]["region"] == cfg.aws.region and doc["metadata"]["version"] == c.kubernetes_version


@pytest.mark.parametrize("variant", VARIANTS)
def test_nodes_are_least_privilege_and_enforce_network_policies(variant, schema):
    """No ECR push for the node role, no instance metadata for pods, NetworkPolicies enforced; schema-valid."""
    import jsonschema

    cfg = _config(VARIANTS[variant])
    doc = yaml.safe_load(render_cluster_config(cfg, Names.from_config(cfg)))
    jsonschema.validate(doc, schema)
    for ng in doc["managedNodeGroups"]:
        # eksctl: imageBuilder attaches AmazonEC2ContainerRegistryFullAccess; without it the managed node
        # group keeps its default, AmazonEC2ContainerRegistryReadOnly (pull only)
        assert "imageBuilder" not in ng["iam"]["withAddonPolicies"]
        assert not any(ng["iam"]["withAddonPolicies"].values()) or ng["iam"]["withAddonPolicies"] == {"cloudWatch": True}
        # IMDSv2 tokens required; eksctl's disablePodIMDS sets HttpPutResponseHopLimit 1 in the launch template
        assert ng["disableIMDSv1"] is True and ng["disablePodIMDS"] is True
    [cni] = [a for a in doc["addons"] if a["name"] == "vpc-cni"]
    assert json.loads(cni["configurationValues"]) == {"enableNetworkPolicy": "true"}
    assert doc["vpc"]["cidr"] == cfg.cluster.vpc_cidr  # the NetworkPolicies admit the NLB from this CIDR


def test_invalid_field_fails_the_schema(schema):
    import jsonschema

    cfg = _config({})
    doc = yaml.safe_load(render_cluster_config(cfg, Names.from_config(cfg)))
    doc["managedNodeGroups"][0]["gpuCount"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_default_render_matches_golden(llmctl):
    llmctl.write_config("project:\n  name: demo\nmodel:\n  bucket: acme-models\n")
    text = llmctl("cluster", "render", check=True).stdout
    if os.environ.get("LLMCTL_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert yaml.safe_load(text) == yaml.safe_load(GOLDEN.read_text()), "re-run with LLMCTL_UPDATE_GOLDEN=1 if intended"


@pytest.mark.parametrize("k8s_version", ["1.31", "1.33"])
def test_device_plugin_is_valid_pinned_and_tolerates_gpu_taint(k8s_version):
    import kubernetes_validate

    cfg = _config({"cluster": {"device_plugin_version": "v0.17.1"}})
    (ds,) = device_plugin_objects(cfg, Names.from_config(cfg))
    kubernetes_validate.validate(ds, k8s_version, strict=True)
    spec = ds["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert ds["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "llmctl"
    assert ds["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"
