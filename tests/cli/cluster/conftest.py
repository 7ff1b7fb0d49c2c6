"""Config and helpers shared by the `llmctl cluster` tests."""

from __future__ import annotations

import json

import pytest

BUCKET = "acme-models"
PREFIX = "llama-tiny"
CONFIG = f"""\
project:
  name: demo
model:
  bucket: {BUCKET}
  prefix: {PREFIX}
"""


@pytest.fixture
def cluster_env(llmctl, aws, kube, fake_eksctl, gpu_quota):
    """A project with a config and a model manifest in S3, against moto, the Kubernetes double and fake eksctl."""
    llmctl.write_config(CONFIG)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    manifest = {"version": 1, "files": [{"path": "model.safetensors", "size": 2 * 1024**3, "sha256": "0" * 64},
                                        {"path": "config.json", "size": 600, "sha256": "1" * 64}]}
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/llmctl-manifest.json", Body=json.dumps(manifest).encode())
    config = {"hidden_size": 2048, "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4,
              "vocab_size": 32000, "intermediate_size": 5632, "torch_dtype": "float16"}
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/config.json", Body=json.dumps(config).encode())
    return llmctl


def expected_trust(issuer: str, namespace: str = "vllm", service_account: str = "vllm-sa") -> dict:
    host = issuer.split("://", 1)[1]
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{host}"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                f"{host}:aud": "sts.amazonaws.com",
            }},
        }],
    }


EXPECTED_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "ReadModelObjects", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": [f"arn:aws:s3:::{BUCKET}/{PREFIX}/*", f"arn:aws:s3:::{BUCKET}/{PREFIX}-adapters/*"]},
        {"Sid": "ListModelPrefix", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}",
         "Condition": {"StringLike": {"s3:prefix": [PREFIX, f"{PREFIX}/*", f"{PREFIX}-adapters", f"{PREFIX}-adapters/*"]}}},
    ],
}


def snapshot(aws, kube, llmctl) -> dict:
    """The end state `cluster up` is responsible for, with generated ids left out."""
    import yaml

    eks, cfn, iam = aws.client("eks"), aws.client("cloudformation"), aws.client("iam")
    cluster = eks.describe_cluster(name="demo")["cluster"]
    issuer = cluster["identity"]["oidc"]["issuer"]
    stacks = {s["StackName"]: {t["Key"]: t["Value"] for t in s.get("Tags", [])}
              for s in cfn.describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"}
    providers = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    role = iam.get_role(RoleName="demo-vllm-s3-access")["Role"]
    policies = iam.list_role_policies(RoleName="demo-vllm-s3-access")["PolicyNames"]
    ds = kube.get("apps/v1", "DaemonSet", "nvidia-device-plugin-daemonset", "kube-system")
    kubeconfig = yaml.safe_load((llmctl.cwd.parent / "home" / ".kube" / "config").read_text())
    return {
        "cluster": {"version": cluster["version"], "status": cluster["status"],
                    "tags": {k: v for k, v in cluster["tags"].items() if k.startswith(("llmctl.io/", "alpha.eksctl.io/cluster"))}},
        "nodegroups": eks.list_nodegroups(clusterName="demo")["nodegroups"],
        "stacks": {name: tags.get("alpha.eksctl.io/cluster-name") for name, tags in stacks.items()},
        "stack_tags_ours": all(t.get("llmctl.io/deployment") == "demo" for t in stacks.values()),
        "oidc_providers": [p.split("/id/")[0] for p in providers],
        "oidc_matches_issuer": providers == [f"arn:aws:iam::123456789012:oidc-provider/{issuer.split('://')[1]}"],
        "role_trust_exact": role["AssumeRolePolicyDocument"] == expected_trust(issuer),
        "role_policies": {p: iam.get_role_policy(RoleName="demo-vllm-s3-access", PolicyName=p)["PolicyDocument"] == EXPECTED_POLICY
                          for p in policies},
        "role_tags": {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName="demo-vllm-s3-access")["Tags"]},
        "device_plugin": None if ds is None else {
            "image": ds["spec"]["template"]["spec"]["containers"][0]["image"],
            "tolerations": ds["spec"]["template"]["spec"]["tolerations"],
            "labels": {k: v for k, v in ds["metadata"]["labels"].items() if k.startswith("app.kubernetes.io/")}},
        "gpu_nodes": sorted(n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] for n in kube.list("v1", "Node")
                            if int(n["status"]["allocatable"].get("nvidia.com/gpu", "0")) >= 1),
        "kube_contexts": [c["name"] for c in kubeconfig["contexts"]],
        "current_context": kubeconfig["current-context"],
    }


CLEAN_STATE = {
    "cluster": {"version": "1.33", "status": "ACTIVE",
                "tags": {"llmctl.io/deployment": "demo", "llmctl.io/managed-by": "llmctl",
                         "alpha.eksctl.io/cluster-name": "demo"}},
    "nodegroups": ["gpu-nodes"],
    "stacks": {"eksctl-demo-cluster": "demo", "eksctl-demo-nodegroup-gpu-nodes": "demo"},
    "stack_tags_ours": True,
    "oidc_providers": ["arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com"],
    "oidc_matches_issuer": True,
    "role_trust_exact": True,
    "role_policies": {"vllm-model-read": True},
    "role_tags": {"llmctl.io/deployment": "demo", "llmctl.io/managed-by": "llmctl"},
    "device_plugin": {
        "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.2",
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                        {"key": "CriticalAddonsOnly", "operator": "Exists"}],
        "labels": {"app.kubernetes.io/managed-by": "llmctl", "app.kubernetes.io/instance": "demo",
                   "app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/version": "v0.17.2"}},
    "gpu_nodes": ["gpu-nodes"],
    "kube_contexts": ["fake-user@demo.us-east-1.eksctl.io"],
    "current_context": "fake-user@demo.us-east-1.eksctl.io",
}
