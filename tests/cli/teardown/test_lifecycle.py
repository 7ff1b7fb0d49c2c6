"""The whole lifecycle through the CLI: build -> cluster up -> deploy -> teardown --all --yes.

moto serves AWS (CodeBuild through the build simulator), the fake eksctl creates the cluster's
stacks, OIDC provider and nodes, the Kubernetes double runs the rollout, and its cloud controller
hook creates the Service's NLB, target group and security group in moto, tagged as AWS tags them.
Afterwards neither the Tagging API nor the direct look-ups find anything of the deployment, and
what was there before (an untagged bucket, another deployment's role and repository) is untouched.
"""

from __future__ import annotations

import json

from tests.cli.build.conftest import codebuild_sim  # noqa: F401 - CodeBuild that pushes an image
from tests.cli.deploy.conftest import stub_endpoint  # noqa: F401 - the smoke request's target
from tests.cli.teardown.conftest import MODEL_BUCKET, NAME, World

PREFIX = "llama-tiny"


def test_build_up_deploy_teardown_leaves_nothing(llmctl, aws, kube, fake_eksctl, gpu_quota, codebuild_sim, stub_endpoint):  # noqa: F811
    world = World(aws, kube, fake_eksctl.bin_dir)
    llmctl.write_config(
        f"project:\n  name: {NAME}\nmodel:\n  bucket: {MODEL_BUCKET}\n  prefix: {PREFIX}\n"
        f"build:\n  context: ctx\nserver:\n  port: {stub_endpoint.port}\n"
        "deploy:\n  exposure: internal\n"  # an NLB, which teardown must find and delete
    )
    ctx = llmctl.cwd / "ctx"
    (ctx / "server").mkdir(parents=True)
    (ctx / "Dockerfile").write_text('FROM python:3.11-slim\nCOPY server/ /app/server/\nCMD ["python", "-m", "server"]\n')
    (ctx / "server" / "__main__.py").write_text("print('serving')\n")
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=MODEL_BUCKET)
    manifest = {"version": 1, "files": [{"path": "model.safetensors", "size": 2 * 1024**3, "sha256": "0" * 64}]}
    s3.put_object(Bucket=MODEL_BUCKET, Key=f"{PREFIX}/llmctl-manifest.json", Body=json.dumps(manifest).encode())
    config = {"hidden_size": 2048, "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4,
              "vocab_size": 32000, "intermediate_size": 5632, "torch_dtype": "float16"}
    s3.put_object(Bucket=MODEL_BUCKET, Key=f"{PREFIX}/config.json", Body=json.dumps(config).encode())
    world.seed_foreign_aws()

    ec2 = aws.client("ec2")
    world.vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    world.subnets = [ec2.create_subnet(VpcId=world.vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]]

    def create_lb(service: dict) -> dict:
        world._create_lb(service)
        return {"ip": "127.0.0.1"}  # the stub endpoint answers the deploy's smoke request

    kube.on_load_balancer(create=create_lb, delete=world._delete_lb)
    kube.install_aws_load_balancer_controller()  # the internal exposure's NLB needs it
    llmctl.env["KUBECONFIG"] = str(kube.kubeconfig_path)
    foreign = world.foreign_aws()

    llmctl("build", check=True, timeout=240)
    llmctl("cluster", "up", "--yes", check=True, timeout=240)
    llmctl("deploy", "--timeout", "60", check=True, timeout=240)
    assert world.lb_arns(), "deploy's LoadBalancer Service got no load balancer in moto"
    before = world.ours()
    assert before["clusters"] == [NAME] and before["stacks"] and before["repositories"] == [f"llmctl/{NAME}"]

    done = llmctl("teardown", "--all", "--yes", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing billable left" in done.stdout
    assert world.nothing_left(), world.ours()
    assert world.foreign_aws() == foreign
