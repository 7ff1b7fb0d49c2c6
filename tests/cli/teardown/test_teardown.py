"""`llmctl teardown` end to end: plan, confirmation, order, resume, verification, exit codes."""

from __future__ import annotations

import json

import pytest

from tests.cli.teardown.conftest import BUILD_BUCKET, LABELS, NAME, REGION, TAGS, in_process_teardown, tag_list


def test_dry_run_prints_the_plan_and_changes_nothing(world, llmctl):
    world.seed()
    before, foreign = world.ours(), world.foreign()
    done = llmctl("teardown", "--all", "--dry-run", env={"COLUMNS": "250"})
    assert done.returncode == 0, done.stderr
    for text in ("aws_eks_cluster", "aws_lb", "aws_iam_role", "aws_ecr_repository", BUILD_BUCKET, "$73.00", "Plan:"):
        assert text in done.stdout
    assert world.ours() == before
    assert world.foreign() == foreign


def test_no_terminal_and_no_yes_stops_before_anything(world, llmctl):
    world.seed_build()
    before = world.ours()
    done = llmctl("teardown", "--all")
    assert done.returncode == 2  # a usage error: the command needs --yes where it cannot ask
    assert "without confirmation" in done.stderr and "--yes" in done.stderr
    assert world.ours() == before


def test_model_bucket_flag_must_match_config(world, llmctl):
    done = llmctl("teardown", "--all", "--yes", "--delete-model-bucket", "not-the-model-bucket")
    assert done.returncode == 2
    assert "does not match model.bucket" in done.stderr


def test_teardown_all_leaves_nothing_of_this_deployment(world, llmctl):
    world.seed()
    foreign = world.foreign()
    done = llmctl("teardown", "--all", "--yes", "-o", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [r["status"] for r in report["results"]] == ["deleted"] * 5
    assert report["verification"]["clean"] and report["verification"]["leftovers"] == []
    assert world.nothing_left(), world.ours()
    assert world.foreign() == foreign
    # the Service went first: its load balancer was removed by the cloud controller, not by llmctl
    assert "deleted directly" not in report["results"][0]["detail"]

    again = llmctl("teardown", "--all", "--yes")
    assert again.returncode == 0, again.stderr
    assert "Nothing of deployment 'llama' found" in again.stdout
    assert "nothing billable left" in again.stdout


def test_the_nlb_in_front_of_the_interceptor_goes_and_the_add_on_stays(world, llmctl, kube):
    """An internal endpoint that scales to zero has its NLB's Service in the add-on's namespace `keda`
    (actions/front.py): teardown finds it by its labels there, and its load balancer goes with it."""
    from tests.doubles.kube.cluster import INTERCEPTOR_PROXY_SERVICE

    world.seed()
    kube.install_keda(http_add_on=True)
    before = len(world.lb_arns())
    kube.create({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": f"vllm-{NAME}-vllm", "namespace": "keda", "labels": LABELS},
                 "spec": {"type": "LoadBalancer", "selector": INTERCEPTOR_PROXY_SERVICE["spec"]["selector"],
                          "ports": [{"port": 8000, "targetPort": "proxy"}]}})
    kube.wait_for(lambda: len(world.lb_arns()) > before, timeout=10)
    done = llmctl("teardown", "--all", "--yes", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verification"]["clean"]
    assert world.nothing_left(), world.ours()
    assert kube.get("v1", "Service", f"vllm-{NAME}-vllm", "keda") is None
    assert kube.get("v1", "Service", INTERCEPTOR_PROXY_SERVICE["metadata"]["name"], "keda") is not None
    assert kube.get("v1", "Namespace", "keda") is not None  # not ours: the add-on lives on


def test_without_all_the_build_resources_stay_and_are_named(world, llmctl):
    world.seed_build()
    world.seed_cluster()
    done = llmctl("teardown", "--yes")
    assert done.returncode == 0, done.stderr
    left = world.ours()
    assert left["clusters"] == [] and left["stacks"] == [] and left["oidc"] == []
    assert left["roles"] == [f"{NAME}-codebuild"]
    assert left["repositories"] == [f"llmctl/{NAME}"]
    assert "Kept on purpose" in done.stdout and "llmctl teardown --all" in done.stdout


def test_failed_eksctl_stops_with_exit_1_and_a_rerun_finishes(world, llmctl, fake_eksctl):
    world.seed()
    fake_eksctl.fail_at = "delete"
    failed = llmctl("teardown", "--all", "--yes")
    assert failed.returncode == 1
    assert "stopped at 'EKS cluster" in failed.stderr and "re-run" in failed.stderr
    left = world.ours()
    assert left["clusters"] == [NAME] and left["load_balancers"] == [] and f"{NAME}-vllm-s3-access" not in left["roles"]
    assert left["repositories"] == [f"llmctl/{NAME}"]  # step 5 never ran

    fake_eksctl.fail_at = None
    rerun = llmctl("teardown", "--all", "--yes")
    assert rerun.returncode == 0, rerun.stderr
    assert "unchanged" in rerun.stderr and "nothing billable left" in rerun.stdout
    assert world.nothing_left(), world.ours()


def test_a_billable_leftover_llmctl_cannot_delete_fails_verification(world, llmctl):
    world.seed_build()
    ec2 = world.c("ec2")
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=50, TagSpecifications=[{"ResourceType": "volume", "Tags": tag_list(TAGS)}])["VolumeId"]
    done = llmctl("teardown", "--all", "--yes", env={"COLUMNS": "250"})
    assert done.returncode == 1
    assert volume in done.stdout and f"aws ec2 delete-volume --volume-id {volume}" in done.stdout
    assert world.ours()["repositories"] == []  # everything else still went


def test_orphaned_load_balancer_is_deleted_directly_when_no_cluster_is_left(world):
    world.seed()
    world.c("eks").delete_cluster(name=NAME)  # lost the cluster; its NLB, TG and SG are still billed
    assert world.lb_arns()
    action = in_process_teardown(world)
    action.plan(include_build=True).execute()
    assert world.lb_arns() == []
    left = world.ours()
    # the double still answers, but with the EKS cluster gone teardown never talks to a kube API
    assert left.pop("k8s") and not any(left.values()), left
    assert any("deleting aws_lb " in line for line in action.lines)


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("after", [1, 2, 3, 4, 5])
def test_interrupted_after_each_step_converges(world, after):
    world.seed()
    foreign = world.foreign()
    seen = []

    def stop_after(result):
        seen.append(result)
        if len(seen) == after:
            raise Interrupted

    with pytest.raises(Interrupted):
        in_process_teardown(world).plan(include_build=True).execute(report=stop_after)
    assert [r.status for r in seen] == ["deleted"] * after

    rerun = in_process_teardown(world)
    results = rerun.plan(include_build=True).execute()
    assert [r.status for r in results[:after]] == ["unchanged"] * after
    assert rerun.verify(include_build=True)["clean"]
    assert world.nothing_left(), world.ours()
    assert world.foreign() == foreign
