"""Discovery: exactly what is tagged for this deployment, each in its step; nothing else."""

from __future__ import annotations

from tests.cli.teardown.conftest import BUILD_BUCKET, NAME, OTHER, in_process_teardown


def by_step(inv) -> dict[int, set[tuple[str, str]]]:
    steps: dict[int, set] = {}
    for r in inv.resources:
        steps.setdefault(r.step, set()).add((r.type, r.name))
    return steps


def test_discovery_finds_exactly_what_is_tagged(world):
    world.seed()
    inv = in_process_teardown(world).inventory.discover(include_build=True)
    steps = by_step(inv)
    assert inv.warnings == []

    step1 = steps[1]
    assert ("k8s_service", "vllm/vllm-llama") in step1
    assert {t for t, _ in step1} == {"k8s_service", "aws_lb", "aws_lb_target_group", "aws_security_group"}
    assert len(step1) == 4

    assert steps[2] == {
        ("k8s_namespace", "vllm"), ("k8s_namespace", "monitoring"),
        ("k8s_object", "clusterrole/llama-prometheus"), ("k8s_object", "daemonset/kube-system/nvidia-device-plugin"),
    }
    assert steps[3] == {("aws_iam_role", f"{NAME}-vllm-s3-access")}
    step4 = {t for t, _ in steps[4]}
    assert {"aws_eks_cluster", "aws_cloudformation_stack", "aws_iam_openid_connect_provider"} <= step4
    assert ("aws_cloudformation_stack", f"eksctl-{NAME}-nodegroup-gpu") in steps[4]
    assert steps[5] == {
        ("aws_codebuild_project", f"{NAME}-image-build"), ("aws_iam_role", f"{NAME}-codebuild"),
        ("aws_ecr_repository", f"llmctl/{NAME}"), ("aws_s3_bucket", BUILD_BUCKET),
        ("aws_cloudwatch_log_group", f"/aws/codebuild/{NAME}-image-build"), ("aws_secretsmanager_secret", f"{NAME}/api-key"),
    }
    assert 0 not in steps, steps.get(0)

    everything = " ".join(f"{r.id} {r.name}" for r in inv.resources)
    for foreign in (OTHER, "someone-elses-bucket", "llama-models-test", "other-ns", "keep-me"):
        assert foreign not in everything

    costs = {r.type: r.monthly_cost for r in inv.resources}
    assert costs["aws_eks_cluster"] == 73.0
    assert costs["aws_lb"] == 16.43


def test_model_bucket_only_when_named(world):
    world.seed()
    plain = in_process_teardown(world).inventory.discover(include_build=True)
    assert "llama-models-test" not in {r.name for r in plain.resources}
    named = in_process_teardown(world, model_bucket="llama-models-test").inventory.discover(include_build=True)
    assert ("aws_s3_bucket", "llama-models-test", 5) in {(r.type, r.name, r.step) for r in named.resources}


def test_cluster_not_tagged_for_us_is_left_alone(world):
    world.c("eks").create_cluster(name=NAME, roleArn="arn:aws:iam::123456789012:role/x", resourcesVpcConfig={"subnetIds": []}, tags={"team": "search"})
    inv = in_process_teardown(world).inventory.discover(include_build=True)
    assert inv.resources == []
    assert "not tagged llmctl.io/deployment=llama" in inv.warnings[0]
