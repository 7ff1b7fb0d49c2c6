#!/usr/bin/env python3
"""A stand-in `eksctl` for teardown tests: `delete cluster` removes, in moto, what eksctl's own
deletion removes (the EKS cluster with its node groups, the cluster's tagged CloudFormation
stacks, the OIDC provider eksctl tagged); `version` answers like eksctl. Other commands fail.

`FAKE_EKSCTL_FAIL=1` makes `delete cluster` fail after printing a line (a stuck stack).
"""

import os
import sys

import boto3

CLUSTER_TAG = "alpha.eksctl.io/cluster-name"


def client(service: str, region: str):
    return boto3.client(service, region_name=region, endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def delete_cluster(name: str, region: str) -> int:
    print(f"[i]  deleting EKS cluster {name!r}", flush=True)
    if os.environ.get("FAKE_EKSCTL_FAIL"):
        print("Error: failed to delete cluster with nodegroup(s)", flush=True)
        return 1
    eks, cfn, iam = client("eks", region), client("cloudformation", region), client("iam", region)
    if name in eks.list_clusters()["clusters"]:  # eksctl also cleans up stacks of a cluster already gone
        for ng in eks.list_nodegroups(clusterName=name).get("nodegroups", []):
            eks.delete_nodegroup(clusterName=name, nodegroupName=ng)
        eks.delete_cluster(name=name)
    for stack in cfn.describe_stacks()["Stacks"]:
        tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
        if tags.get(CLUSTER_TAG) == name:
            print(f"[i]  will delete stack {stack['StackName']!r}", flush=True)
            cfn.delete_stack(StackName=stack["StackName"])
    for item in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        tags = {t["Key"]: t["Value"] for t in iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=item["Arn"])["Tags"]}
        if tags.get(CLUSTER_TAG) == name:
            iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=item["Arn"])
    print("[✔]  all cluster resources were deleted", flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["version"]:
        print("0.210.0")
        return 0
    if argv[:2] == ["delete", "cluster"]:
        args = dict(zip(argv[2::2], argv[3::2]))
        return delete_cluster(args["--name"], args["--region"])
    print(f"fake eksctl: unsupported command {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
