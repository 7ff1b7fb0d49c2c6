"""A fake `eksctl` for tests: the executable the `fake_eksctl` fixture puts first on PATH.

It behaves like eksctl where llmctl can tell: it validates `-f` ClusterConfigs against eksctl's
JSON schema (an invalid file fails with exit 1 and eksctl's message), and `create cluster`
makes what eksctl makes, in the moto server the environment points at (AWS_ENDPOINT_URL):
the EKS cluster (DescribeCluster then returns a real OIDC issuer), the IAM OIDC provider when
`iam.withOIDC` is true, CloudFormation stacks `eksctl-<name>-cluster` /
`eksctl-<name>-nodegroup-<ng>` and EKS managed node groups, tagged like eksctl tags them; it
writes a kubeconfig context `<user>@<name>.<region>.eksctl.io` for the Kubernetes double and
asks the fixture (over FAKE_EKSCTL_CONTROL) to add the node group's nodes. `delete cluster`
removes all of it.

Environment (set by the fixture):
  FAKE_EKSCTL_DIR      argv.jsonl (one JSON list per call) and knobs.json (failure injection)
  FAKE_EKSCTL_SCHEMA   the ClusterConfig JSON schema
  FAKE_EKSCTL_CONTROL  http://127.0.0.1:<port> of the fixture (nodes in the Kubernetes double)
  FAKE_EKSCTL_KUBE_SERVER / FAKE_EKSCTL_KUBE_TOKEN  where the written kubeconfig points

knobs.json: {"fail_at": null | "validate" | "cluster" | "oidc" | "nodegroup" | "kubeconfig" | "delete",
             "version": "0.230.0"}
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import urllib.request
from pathlib import Path

VERSION = "0.230.0"
NAME_TAG = "alpha.eksctl.io/cluster-name"
LEGACY_NAME_TAG = "eksctl.cluster.k8s.io/v1alpha1/cluster-name"
THUMBPRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
GPUS = {"g4dn.12xlarge": 4, "g5.12xlarge": 4, "g5.48xlarge": 8, "p4d.24xlarge": 8, "p3.8xlarge": 4}
STACK_TEMPLATE = json.dumps({"AWSTemplateFormatVersion": "2010-09-09",
                             "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}})


class Failed(Exception):
    pass


def log(symbol: str, message: str) -> None:
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} [{symbol}]  {message}", flush=True)


def state_dir() -> Path:
    return Path(os.environ["FAKE_EKSCTL_DIR"])


def knobs() -> dict:
    try:
        return json.loads((state_dir() / "knobs.json").read_text())
    except (OSError, ValueError, KeyError):
        return {}


def record(argv: list[str]) -> None:
    if "FAKE_EKSCTL_DIR" in os.environ:
        with open(state_dir() / "argv.jsonl", "a") as handle:
            handle.write(json.dumps(argv) + "\n")


def client(service: str, region: str):
    import boto3

    return boto3.client(service, region_name=region)


# -- config ---------------------------------------------------------------------------------------

def load_config(path: str) -> dict:
    import jsonschema
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise Failed(f'loading config file "{path}": {exc}') from None
    schema_path = os.environ.get("FAKE_EKSCTL_SCHEMA")
    if schema_path:
        schema = json.loads(Path(schema_path).read_text())
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            where = ".".join(str(p) for p in errors[0].path) or "(root)"
            raise Failed(f'loading config file "{path}": error unmarshaling JSON: {where}: {errors[0].message}')
    if knobs().get("fail_at") == "validate":
        raise Failed(f'loading config file "{path}": injected validation failure')
    if not isinstance(doc, dict) or doc.get("kind") != "ClusterConfig" or doc.get("apiVersion") != "eksctl.io/v1alpha5":
        raise Failed(f'loading config file "{path}": expected kind ClusterConfig, apiVersion eksctl.io/v1alpha5')
    return doc


def cluster_tags(meta: dict) -> dict:
    return {**(meta.get("tags") or {}), NAME_TAG: meta["name"], LEGACY_NAME_TAG: meta["name"],
            "alpha.eksctl.io/eksctl-version": knobs().get("version", VERSION)}


def describe(eks, name: str) -> dict | None:
    try:
        return eks.describe_cluster(name=name)["cluster"]
    except eks.exceptions.ResourceNotFoundException:
        return None


def notify(payload: dict) -> None:
    url = os.environ.get("FAKE_EKSCTL_CONTROL")
    if not url:
        return
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


# -- create ---------------------------------------------------------------------------------------

def create_cluster(cfg: dict, write_kubeconfig: bool, kubeconfig: str | None) -> None:
    meta = cfg["metadata"]
    name, region = meta["name"], meta["region"]
    eks, cfn = client("eks", region), client("cloudformation", region)
    log("ℹ", f"eksctl version {knobs().get('version', VERSION)}")
    log("ℹ", f"using region {region}")
    if describe(eks, name) is not None:
        raise Failed(f'creating CloudFormation stack "eksctl-{name}-cluster": operation error CloudFormation: '
                     f"CreateStack, AlreadyExistsException: Stack [eksctl-{name}-cluster] already exists")
    if knobs().get("fail_at") == "cluster":
        log("✖", f'unexpected status "ROLLBACK_IN_PROGRESS" while waiting for CloudFormation stack "eksctl-{name}-cluster"')
        raise Failed(f'failed to create cluster "{name}"')
    log("ℹ", f'building cluster stack "eksctl-{name}-cluster"')
    tags = cluster_tags(meta)
    cfn.create_stack(StackName=f"eksctl-{name}-cluster", TemplateBody=STACK_TEMPLATE,
                     Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    eks.create_cluster(name=name, version=str(meta.get("version", "1.33")),
                       roleArn=f"arn:aws:iam::123456789012:role/eksctl-{name}-cluster-ServiceRole",
                       resourcesVpcConfig={"subnetIds": ["subnet-0a", "subnet-0b"]}, tags=tags)
    log("✔", f'EKS cluster "{name}" in "{region}" region is ready')
    if (cfg.get("iam") or {}).get("withOIDC"):
        associate_oidc(cfg)
    create_nodegroups(cfg, None)
    if cfg.get("karpenter"):
        create_karpenter(cfg)
    if write_kubeconfig:
        write_kubeconfig_for(name, region, kubeconfig)
    log("✔", f'all EKS cluster resources for "{name}" have been created')


# What eksctl's Karpenter stack makes (pkg/cfn/builder/karpenter.go): the node role and instance profile, and
# with withSpotInterruptionQueue the queue (named after the cluster) and the EventBridge rules feeding it.
KARPENTER_RULES = {"SpotInterruption": "EC2 Spot Instance Interruption Warning",
                   "Rebalance": "EC2 Instance Rebalance Recommendation",
                   "InstanceStateChange": "EC2 Instance State-change Notification",
                   "ScheduledChange": "AWS Health Event"}


def create_karpenter(cfg: dict) -> None:
    meta = cfg["metadata"]
    name, region = meta["name"], meta["region"]
    iam, cfn = client("iam", region), client("cloudformation", region)
    stack = f"eksctl-{name}-karpenter"
    tags = cluster_tags(meta)
    log("ℹ", f'building Karpenter stack "{stack}"')
    cfn.create_stack(StackName=stack, TemplateBody=STACK_TEMPLATE, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    role = f"eksctl-KarpenterNodeRole-{name}"
    iam.create_role(RoleName=role, Path="/", Tags=tag_list, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))
    profile = f"eksctl-KarpenterNodeInstanceProfile-{name}"
    iam.create_instance_profile(InstanceProfileName=profile, Path="/", Tags=tag_list)
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    if (cfg["karpenter"] or {}).get("withSpotInterruptionQueue"):
        sqs, events = client("sqs", region), client("events", region)
        url = sqs.create_queue(QueueName=name, tags=tags)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for rule, detail_type in KARPENTER_RULES.items():
            rule_name = f"eksctl-{name}-karpenter-{rule}Rule"
            events.put_rule(Name=rule_name, Tags=tag_list,
                            EventPattern=json.dumps({"source": ["aws.ec2", "aws.health"], "detail-type": [detail_type]}))
            events.put_targets(Rule=rule_name, Targets=[{"Id": "KarpenterInterruptionQueueTarget", "Arn": arn}])
    notify({"action": "karpenter", "cluster": name, "region": region})  # the Helm chart: its CRDs in the cluster
    log("✔", f'installed Karpenter {cfg["karpenter"].get("version")} in cluster "{name}"')


def delete_karpenter(name: str, region: str) -> None:
    """The Karpenter stack's deletion; knob `leave_karpenter_queue` plays a stack that could not remove them."""
    iam, sqs, events = client("iam", region), client("sqs", region), client("events", region)
    role, profile = f"eksctl-KarpenterNodeRole-{name}", f"eksctl-KarpenterNodeInstanceProfile-{name}"
    try:
        iam.remove_role_from_instance_profile(InstanceProfileName=profile, RoleName=role)
        iam.delete_instance_profile(InstanceProfileName=profile)
        iam.delete_role(RoleName=role)
    except iam.exceptions.NoSuchEntityException:
        pass
    if knobs().get("leave_karpenter_queue"):
        return
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        return
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for rule in events.list_rule_names_by_target(TargetArn=arn)["RuleNames"]:
        events.remove_targets(Rule=rule, Ids=["KarpenterInterruptionQueueTarget"])
        events.delete_rule(Name=rule)
    sqs.delete_queue(QueueUrl=url)


def associate_oidc(cfg: dict) -> None:
    meta = cfg["metadata"]
    name, region = meta["name"], meta["region"]
    if knobs().get("fail_at") == "oidc":
        raise Failed(f'creating OIDC provider for cluster "{name}": injected failure')
    cluster = describe(client("eks", region), name)
    if cluster is None:
        raise Failed(f'unable to describe cluster control plane: ResourceNotFoundException: No cluster found for name: {name}.')
    issuer = cluster["identity"]["oidc"]["issuer"]
    iam = client("iam", region)
    host = issuer.split("://", 1)[1]
    for item in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        if item["Arn"].endswith(f":oidc-provider/{host}"):
            log("ℹ", f'IAM Open ID Connect provider is already associated with cluster "{name}" in "{region}"')
            return
    tags = {**(meta.get("tags") or {}), NAME_TAG: name, "alpha.eksctl.io/eksctl-version": knobs().get("version", VERSION)}
    iam.create_open_id_connect_provider(Url=issuer, ClientIDList=["sts.amazonaws.com"], ThumbprintList=[THUMBPRINT],
                                        Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    log("✔", f'created IAM Open ID Connect provider for cluster "{name}" in "{region}"')


def create_nodegroups(cfg: dict, include: list[str] | None) -> None:
    meta = cfg["metadata"]
    name, region = meta["name"], meta["region"]
    eks, cfn = client("eks", region), client("cloudformation", region)
    if describe(eks, name) is None:
        raise Failed(f'unable to describe cluster control plane: ResourceNotFoundException: No cluster found for name: {name}.')
    existing = set(eks.list_nodegroups(clusterName=name)["nodegroups"])
    for ng in cfg.get("managedNodeGroups") or []:
        ng_name = ng["name"]
        if include and ng_name not in include:
            continue
        if ng_name in existing:
            log("ℹ", f'nodegroup "{ng_name}" already exists and will be excluded')
            continue
        if knobs().get("fail_at") == "nodegroup":
            log("✖", f'unexpected status "CREATE_FAILED" while waiting for CloudFormation stack '
                     f'"eksctl-{name}-nodegroup-{ng_name}"')
            raise Failed(f"failed to create nodegroup {ng_name}: waiter state transitioned to Failure")
        log("ℹ", f'building managed nodegroup stack "eksctl-{name}-nodegroup-{ng_name}"')
        tags = {**cluster_tags(meta), "alpha.eksctl.io/nodegroup-name": ng_name, "alpha.eksctl.io/nodegroup-type": "managed"}
        cfn.create_stack(StackName=f"eksctl-{name}-nodegroup-{ng_name}", TemplateBody=STACK_TEMPLATE,
                         Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        types = ng.get("instanceTypes") or [ng.get("instanceType", "m5.large")]
        taints = [{"key": t["key"], "value": t.get("value", ""), "effect": {"NoSchedule": "NO_SCHEDULE",
                   "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}[t["effect"]]}
                  for t in ng.get("taints") or []]
        desired = int(ng.get("desiredCapacity", 2))
        eks.create_nodegroup(
            clusterName=name, nodegroupName=ng_name,
            scalingConfig={"minSize": int(ng.get("minSize", desired)), "maxSize": int(ng.get("maxSize", desired)),
                           "desiredSize": desired},
            subnets=["subnet-0a", "subnet-0b"], instanceTypes=types, diskSize=int(ng.get("volumeSize", 80)),
            nodeRole=f"arn:aws:iam::123456789012:role/eksctl-{name}-nodegroup-{ng_name}-NodeInstanceRole",
            labels={**(ng.get("labels") or {}), "alpha.eksctl.io/cluster-name": name,
                    "alpha.eksctl.io/nodegroup-name": ng_name},
            taints=taints, capacityType="SPOT" if ng.get("spot") else "ON_DEMAND",
            tags={**(ng.get("tags") or {}), **tags})
        notify({"action": "add", "cluster": name, "region": region, "nodegroup": ng_name, "count": desired,
                "instance_type": types[0], "gpus": GPUS.get(types[0], 1), "labels": ng.get("labels") or {},
                "taints": [{"key": t["key"], "value": t.get("value", ""), "effect": t["effect"]}
                           for t in ng.get("taints") or []]})
        log("✔", f'created 1 managed nodegroup(s) in cluster "{name}"')


def kubeconfig_file(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    first = next((p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p), None)
    return Path(first) if first else Path.home() / ".kube" / "config"


def write_kubeconfig_for(name: str, region: str, explicit: str | None) -> None:
    import yaml

    if knobs().get("fail_at") == "kubeconfig":
        raise Failed("writing kubeconfig: injected failure")
    path = kubeconfig_file(explicit)
    doc = {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": [], "preferences": {}}
    if path.exists():
        doc.update(yaml.safe_load(path.read_text()) or {})
    cluster_name = f"{name}.{region}.eksctl.io"
    user = f"fake-user@{cluster_name}"
    server = os.environ.get("FAKE_EKSCTL_KUBE_SERVER") or describe(client("eks", region), name)["endpoint"]
    token = os.environ.get("FAKE_EKSCTL_KUBE_TOKEN", "fake-token")

    def put(key: str, entry: dict) -> None:
        doc[key] = [e for e in doc.get(key) or [] if e.get("name") != entry["name"]] + [entry]

    put("clusters", {"name": cluster_name, "cluster": {"server": server}})
    put("users", {"name": user, "user": {"token": token}})
    put("contexts", {"name": user, "context": {"cluster": cluster_name, "user": user}})
    doc["current-context"] = user
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    log("✔", f'saved kubeconfig as "{path}"')


def remove_kubeconfig_for(name: str, region: str) -> None:
    import yaml

    path = kubeconfig_file(None)
    if not path.exists():
        return
    doc = yaml.safe_load(path.read_text()) or {}
    cluster_name = f"{name}.{region}.eksctl.io"
    contexts = [c for c in doc.get("contexts") or [] if (c.get("context") or {}).get("cluster") == cluster_name]
    doc["contexts"] = [c for c in doc.get("contexts") or [] if c not in contexts]
    doc["clusters"] = [c for c in doc.get("clusters") or [] if c.get("name") != cluster_name]
    doc["users"] = [u for u in doc.get("users") or [] if u.get("name") not in {c["context"]["user"] for c in contexts}]
    if doc.get("current-context") in {c["name"] for c in contexts}:
        doc["current-context"] = ""
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    log("✔", 'kubeconfig has been updated')


# -- delete / get ---------------------------------------------------------------------------------

def delete_cluster(name: str, region: str) -> None:
    eks, cfn, iam = client("eks", region), client("cloudformation", region), client("iam", region)
    cluster = describe(eks, name)
    stacks = [s["StackName"] for s in cfn.describe_stacks()["Stacks"]
              if s["StackName"].startswith(f"eksctl-{name}-") and s["StackStatus"] != "DELETE_COMPLETE"]
    if cluster is None and not stacks:
        raise Failed(f'unable to describe cluster control plane: ResourceNotFoundException: No cluster found for name: {name}.')
    log("ℹ", f'deleting EKS cluster "{name}"')
    if knobs().get("fail_at") == "delete":
        raise Failed(f'failed to delete cluster with nodegroup(s): stack "eksctl-{name}-nodegroup-gpu" is DELETE_FAILED')
    if cluster is not None:
        for ng in eks.list_nodegroups(clusterName=name)["nodegroups"]:
            eks.delete_nodegroup(clusterName=name, nodegroupName=ng)
        issuer = cluster["identity"]["oidc"]["issuer"].split("://", 1)[1]
        for item in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
            if item["Arn"].endswith(f":oidc-provider/{issuer}"):
                iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=item["Arn"])
    for stack in sorted(stacks, key=lambda s: "-cluster" in s):  # node groups first
        log("ℹ", f'will delete stack "{stack}"')
        if stack == f"eksctl-{name}-karpenter":
            delete_karpenter(name, region)
        cfn.delete_stack(StackName=stack)
    if cluster is not None:
        eks.delete_cluster(name=name)
    notify({"action": "delete", "cluster": name, "region": region})
    remove_kubeconfig_for(name, region)
    log("✔", "all cluster resources were deleted")


def get_cluster(name: str, region: str, output: str) -> None:
    cluster = describe(client("eks", region), name)
    if cluster is None:
        raise Failed(f'unable to describe control plane "{name}": ResourceNotFoundException: No cluster found for name: {name}.')
    data = [{"Name": cluster["name"], "Version": cluster["version"], "Status": cluster["status"],
             "Arn": cluster["arn"], "Endpoint": cluster.get("endpoint"),
             "Identity": {"Oidc": {"Issuer": cluster["identity"]["oidc"]["issuer"]}}, "Tags": cluster.get("tags", {})}]
    if output == "json":
        print(json.dumps(data, indent=4, default=str))
    else:
        print("NAME\tREGION\tEKSCTL CREATED")
        print(f"{name}\t{region}\tTrue")


# -- entry ----------------------------------------------------------------------------------------

def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="eksctl", add_help=False)
    p.add_argument("verb")
    p.add_argument("noun", nargs="?")
    p.add_argument("-f", "--config-file")
    p.add_argument("--name", "-n")
    p.add_argument("--cluster")
    p.add_argument("--region", "-r")
    p.add_argument("--include")
    p.add_argument("--approve", action="store_true")
    p.add_argument("--wait", "-w", action="store_true")
    p.add_argument("-o", "--output", default="table")
    p.add_argument("--kubeconfig")
    p.add_argument("--write-kubeconfig", default="true")
    p.add_argument("--install-nvidia-plugin", default="true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    record(argv)
    try:
        args = parse(argv)
    except SystemExit:
        print(f"Error: unknown command or flag in {' '.join(argv)}", file=sys.stderr)
        return 1
    try:
        if args.verb == "version":
            print(knobs().get("version", VERSION))
            return 0
        cfg = load_config(args.config_file) if args.config_file else None
        meta = (cfg or {}).get("metadata", {})
        name = args.name or args.cluster or meta.get("name")
        region = args.region or meta.get("region") or os.environ.get("AWS_REGION", "us-east-1")
        if (args.verb, args.noun) == ("create", "cluster"):
            if cfg is None:
                raise Failed("this fake only creates clusters from a config file (-f)")
            create_cluster(cfg, args.write_kubeconfig != "false", args.kubeconfig)
        elif (args.verb, args.noun) == ("create", "nodegroup"):
            if cfg is None:
                raise Failed("this fake only creates node groups from a config file (-f)")
            create_nodegroups(cfg, args.include.split(",") if args.include else None)
        elif (args.verb, args.noun) == ("utils", "associate-iam-oidc-provider"):
            if not args.approve:
                log("ℹ", "(plan) would create IAM Open ID Connect provider; add --approve")
                return 0
            associate_oidc(cfg or {"metadata": {"name": name, "region": region}})
        elif (args.verb, args.noun) == ("utils", "write-kubeconfig"):
            if describe(client("eks", region), name) is None:
                raise Failed(f"unable to describe cluster control plane: ResourceNotFoundException: No cluster found for name: {name}.")
            write_kubeconfig_for(name, region, args.kubeconfig)
        elif (args.verb, args.noun) == ("delete", "cluster"):
            delete_cluster(name, region)
        elif (args.verb, args.noun) == ("get", "cluster"):
            get_cluster(name, region, args.output)
        else:
            raise Failed(f"unknown command \"{' '.join(argv[:2])}\" for \"eksctl\"")
    except Failed as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
