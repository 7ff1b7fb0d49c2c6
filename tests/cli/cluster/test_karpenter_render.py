"""`cluster.capacity: karpenter`: eksctl's `karpenter` section in the ClusterConfig (eksctl's schema), and the
EC2NodeClass and GPU NodePool(s) `cluster render --karpenter` prints (the Karpenter v1 CRDs, strictly)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmctl.actions.cluster import render_cluster_config
from llmctl.actions.cluster.karpenter import karpenter_objects
from llmctl.config import Names
from llmctl.config.model import LlmctlConfig
from tests.fixtures.crd import validate_crd

KARPENTER = {"cluster": {"capacity": "karpenter", "instance_types": ["g5.xlarge", "g6.xlarge"], "nodes_max": 3}}
VARIANTS = {
    "spot-first": KARPENTER,
    "on-demand-base": {"cluster": {**KARPENTER["cluster"], "on_demand_base": 1, "availability_zones": ["us-east-1a", "us-east-1b"]}},
    "on-demand-only-bottlerocket": {"cluster": {**KARPENTER["cluster"], "ami_family": "Bottlerocket",
                                                "karpenter": {"spot": False, "ami_version": "v1.20.0"}}},
}


def _config(extra: dict) -> LlmctlConfig:
    return LlmctlConfig.model_validate({"project": {"name": "demo"}, "model": {"bucket": "acme-models"}, **extra})


@pytest.fixture(scope="module")
def eksctl_schema() -> dict:
    path = Path(__file__).resolve().parents[4] / "shared" / "schemas" / "eksctl-clusterconfig-v1alpha5.schema.json"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return json.loads(path.read_text())


@pytest.mark.parametrize("variant", VARIANTS)
def test_clusterconfig_has_eksctls_karpenter_section(variant, eksctl_schema):
    import jsonschema

    cfg = _config(VARIANTS[variant])
    doc = yaml.safe_load(render_cluster_config(cfg, Names.from_config(cfg)))
    jsonschema.validate(doc, eksctl_schema)
    assert doc["karpenter"] == {"version": cfg.cluster.karpenter.version, "withSpotInterruptionQueue": True}
    assert doc["iam"]["withOIDC"] is True  # eksctl requires it for Karpenter
    assert doc["metadata"]["tags"]["karpenter.sh/discovery"] == "demo"
    [ng] = doc["managedNodeGroups"]  # the system node group: no GPU, no GPU labels, no taint
    assert ng["instanceType"] == "t3.large" and "spot" not in ng and "taints" not in ng
    assert ng["labels"] == {"llmctl.io/system": "true", "llmctl.io/deployment": "demo"}


def test_the_nodegroup_default_has_no_karpenter_section(eksctl_schema):
    cfg = _config({})
    doc = yaml.safe_load(render_cluster_config(cfg, Names.from_config(cfg)))
    assert "karpenter" not in doc and "karpenter.sh/discovery" not in doc["metadata"]["tags"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_nodepool_and_ec2nodeclass_pass_the_karpenter_v1_crds_strictly(variant):
    cfg = _config(VARIANTS[variant])
    objects = karpenter_objects(cfg, Names.from_config(cfg))
    for obj in objects:
        validate_crd(obj)
    node_class, *pools = objects
    assert node_class["kind"] == "EC2NodeClass"
    spec = node_class["spec"]
    assert spec["role"] == "eksctl-KarpenterNodeRole-demo"
    family = {"AmazonLinux2023": "al2023", "Bottlerocket": "bottlerocket"}[cfg.cluster.ami_family]
    assert spec["amiSelectorTerms"] == [{"alias": f"{family}@{cfg.cluster.karpenter.ami_version}"}]
    assert spec["metadataOptions"]["httpTokens"] == "required" and spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    for pool in pools:
        template = pool["spec"]["template"]["spec"]
        assert template["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": node_class["metadata"]["name"]}
        assert template["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
        req = {r["key"]: r["values"] for r in template["requirements"]}
        assert req["node.kubernetes.io/instance-type"] == ["g5.xlarge", "g6.xlarge"]
        assert req.get("topology.kubernetes.io/zone", []) == cfg.cluster.availability_zones
        assert pool["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"
        assert pool["spec"]["template"]["metadata"]["labels"]["llmctl.io/gpu"] == "true"
    capacity = {p["metadata"]["name"]: (p["spec"]["weight"], {r["key"]: r["values"] for r in
                p["spec"]["template"]["spec"]["requirements"]}["karpenter.sh/capacity-type"],
                p["spec"]["limits"]["nvidia.com/gpu"]) for p in pools}
    if variant == "spot-first":
        assert capacity == {"llmctl-gpu": (10, ["spot", "on-demand"], "3")}
    elif variant == "on-demand-base":  # the heavier on-demand pool takes the first node; spot the rest
        assert capacity == {"llmctl-gpu-on-demand": (100, ["on-demand"], "1"), "llmctl-gpu": (10, ["spot", "on-demand"], "3")}
    else:
        assert capacity == {"llmctl-gpu": (10, ["on-demand"], "3")}


def test_strict_check_catches_a_misplaced_field():
    import jsonschema

    cfg = _config(KARPENTER)
    _, pool = karpenter_objects(cfg, Names.from_config(cfg))
    pool["spec"]["template"]["spec"]["consolidationPolicy"] = "WhenEmpty"  # belongs under spec.disruption
    with pytest.raises(jsonschema.ValidationError, match="consolidationPolicy"):
        validate_crd(pool)


def test_cluster_render_karpenter_prints_the_objects(llmctl):
    llmctl.write_config("project: {name: demo}\ncluster:\n  capacity: karpenter\n")
    done = llmctl("cluster", "render", "--karpenter", "--output", "json", check=True)
    kinds = [d["kind"] for d in json.loads(done.stdout)["documents"]]
    assert kinds == ["EC2NodeClass", "NodePool"]
    llmctl.write_config("project: {name: demo}\n")
    refused = llmctl("cluster", "render", "--karpenter")
    assert refused.returncode == 1 and "cluster.capacity is nodegroup" in refused.stderr
