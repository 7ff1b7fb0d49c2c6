"""`llmctl teardown` / `llmctl cluster down`: remove exactly what this deployment created, in the
order that works, then prove nothing billable is left.

`Teardown.run` is the whole command: discover (`actions/inventory.py`), show the plan, confirm,
execute the steps, name the step that failed, verify by discovering again. Order (each a
`plan.Step` that observes afresh, so a re-run resumes):

1. LoadBalancer Services, then wait until their load balancers, target groups and security
   groups are gone (deleted directly when no controller is left to do it);
2. the other labelled Kubernetes objects, then the namespaces labelled for this deployment;
3. the IRSA role and any IAM role, policy or instance profile tagged for the deployment (or under
   its IAM path); 4. instances a node provisioner launched, `eksctl delete cluster --wait`, then
   check the stacks and OIDC provider and delete the launch templates and IAM eksctl left;
5. (`--all`) the build resources and tagged secrets; the model bucket only when named.

The verify step is the same discovery again: any leftover in scope, billable or not, fails it by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from llmctl.actions.inventory import (
    BUILD, CLUSTER, IRSA, KUBERNETES, LOAD_BALANCERS, UNSTEPPED, Discovery, Resource, cluster_oidc_providers,
)
from llmctl.aws import arns
from llmctl.errors import LlmctlError
from llmctl.plan import Plan, Step, StepFailed, StepResult

STEP_TITLES = {
    LOAD_BALANCERS: "LoadBalancer Services and their AWS load balancers",
    KUBERNETES: "workloads, monitoring stack and namespaces",
    IRSA: "IAM roles, policies and instance profiles",
    CLUSTER: "EKS cluster (eksctl delete cluster --wait)",
    BUILD: "build resources (--all)",
    UNSTEPPED: "other resources tagged for this deployment",
}
_LB_DELETE_ORDER = {"aws_lb": 0, "aws_elb": 0, "aws_lb_target_group": 1, "aws_security_group": 2}


def scope(include_build: bool) -> tuple[int, ...]:
    """The steps a run deletes: `cluster down` is 1-4, `teardown --all` adds the build resources."""
    return (LOAD_BALANCERS, KUBERNETES, IRSA, CLUSTER) + ((BUILD,) if include_build else ())


@dataclass
class TeardownReport:
    """The command's result: the plan, each step's outcome, the verification (`--output json`)."""

    deployment: str
    region: str
    scope: str  # "all" | "cluster"
    dry_run: bool
    plan: list[dict]
    monthly_cost_removed: float
    kept: list[dict]
    warnings: list[str]
    results: list[dict] = field(default_factory=list)
    verification: dict | None = None
    error: dict | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["error"] is None:
            data.pop("error")
        return data


class TeardownStopped(LlmctlError):
    """A step failed: its report (with the failed step) goes out, then this error with the fix."""

    def __init__(self, report: TeardownReport, failed: StepFailed):
        cause = failed.cause
        super().__init__(
            f"teardown stopped at '{failed.step.title}': {cause.message}",
            hint=(cause.hint + "; " if cause.hint else "") + "re-run the same command: finished steps are skipped",
        )
        self.report = report


@dataclass
class Teardown:
    """Plan, delete, verify; built from a `Discovery` and the eksctl runner (tests hand in doubles)."""

    inventory: Discovery
    eksctl: object | None = None  # llmctl.eksctl.Eksctl (found on PATH when not given)
    log: Callable[[str], None] = lambda line: None
    output: object = None  # llmctl.ui.Output: spinners and step lines of `run()`
    lb_wait_s: float = 600.0
    namespace_wait_s: float = 300.0
    poll_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    @property
    def names(self):
        return self.inventory.names

    @property
    def aws(self):
        return self.inventory.aws

    # --- the command -------------------------------------------------------------------------
    def run(self, *, include_build: bool, dry_run: bool, show_plan: Callable[[TeardownReport], None],
            confirm: Callable[[TeardownReport], None]) -> TeardownReport:
        """Discover, `show_plan`, `confirm` (raises to stop), execute, verify; a failed step raises
        `TeardownStopped` carrying the report."""
        out = self.output
        with out.status(f"discovering what deployment {self.names.deployment!r} owns..."):
            inv = self.inventory.discover(include_build=True)
        steps = scope(include_build)
        doomed = inv.in_steps(steps) + inv.in_steps([UNSTEPPED])
        kept = [] if include_build else inv.in_steps([BUILD])
        report = TeardownReport(
            deployment=self.names.deployment, region=self.names.region, scope="all" if include_build else "cluster",
            dry_run=dry_run, plan=[r.to_dict() for r in sorted(doomed, key=lambda r: (r.step or 9))],
            monthly_cost_removed=inv.monthly_cost(steps), kept=[r.to_dict() for r in kept], warnings=inv.warnings,
        )
        show_plan(report)
        if dry_run:
            return report
        if any(r.step for r in doomed):
            confirm(report)

        def reported(result: StepResult) -> None:
            report.results.append(result.to_dict())
            out.report(result)

        try:
            self.plan(include_build=include_build).execute(report=reported)
        except StepFailed as failed:
            step, cause = failed.step, failed.cause
            report.results.append(StepResult(step.title, step.kind, "delete", "failed", cause.message).to_dict())
            out.step("failed", f"{step.title}: {cause.message}")
            report.error = {"message": cause.message, "hint": cause.hint}
            raise TeardownStopped(report, failed) from None
        with out.status("verifying: discovering again..."):
            report.verification = self.verify(include_build=include_build)
        return report

    def plan(self, *, include_build: bool) -> Plan:
        """Steps 1-4 (`cluster down`), plus 5 with `--all`; each observes fresh state."""
        deletes = {
            LOAD_BALANCERS: self.delete_load_balancers,
            KUBERNETES: self.delete_k8s_objects,
            IRSA: lambda: self.delete_iam(self.inventory.find(IRSA)),
            CLUSTER: self.delete_cluster,
            BUILD: self.delete_build_resources,
        }
        kinds = {LOAD_BALANCERS: "k8s", KUBERNETES: "k8s", IRSA: "iam", CLUSTER: "eks", BUILD: "build"}
        plan = Plan()
        for number in scope(include_build):
            plan.add(Step(STEP_TITLES[number], kinds[number], self._observer(number), deletes[number]))
        return plan

    def _observer(self, step: int) -> Callable[[], str]:
        """A step's observation: does its discovery find anything now?"""
        return lambda: "delete" if self.inventory.find(step) else "none"

    # --- step 1 ------------------------------------------------------------------------------
    def delete_load_balancers(self) -> str:
        scan = self.inventory.scan()
        found = scan.find(LOAD_BALANCERS)
        services = [r for r in found if r.type == "k8s_service"]
        kube = scan.kube()
        for svc in services:
            self.log(f"deleting Service {svc.name} (its load balancer goes with it)")
            # The Service disappears when the cloud controller has removed its load balancer
            # (the service.kubernetes.io/load-balancer-cleanup finalizer): wait for that by watching.
            kube.delete("v1", "Service", svc.extra["name"], svc.extra["namespace"], wait=True, timeout_s=self.lb_wait_s)

        def aws_side() -> list[Resource]:
            return [r for r in self.inventory.find(LOAD_BALANCERS) if r.type != "k8s_service"]

        if services:
            remaining = self._wait_until_empty(aws_side, self.lb_wait_s, "load balancers to be deleted by the cluster's controller")
        else:
            remaining = aws_side()
        directly = 0
        if remaining:
            # No controller left to do it (cluster gone or stuck): they are tagged as owned by our
            # cluster, so delete them ourselves, load balancers before their target groups and SGs.
            for res in sorted(remaining, key=lambda r: _LB_DELETE_ORDER[r.type]):
                self._delete_lb_resource(res)
                directly += 1
            left = self._wait_until_empty(aws_side, self.lb_wait_s, "load balancers to disappear")
            if left:
                raise LlmctlError(
                    f"{len(left)} load-balancer resource(s) still exist: {', '.join(r.name for r in left)}",
                    hint="check the EC2 console for what still uses them, then re-run `llmctl teardown`",
                )
        return f"{len(services)} Service(s) deleted" + (f", {directly} AWS resource(s) deleted directly" if directly else "")

    def _delete_lb_resource(self, res: Resource) -> None:
        from llmctl.aws import ec2, elb

        self.log(f"deleting {res.type} {res.name}")
        if res.type == "aws_lb":
            elb.delete_load_balancer(self.aws.elbv2, res.id)
        elif res.type == "aws_elb":
            elb.delete_classic_load_balancer(self.aws.elb, res.name)
        elif res.type == "aws_lb_target_group":
            elb.delete_target_group(self.aws.elbv2, res.id)
        else:
            ec2.delete_security_group(self.aws.ec2, res.name, retry_s=self.poll_s, sleep=self.sleep)

    def _wait_until_empty(self, probe: Callable[[], list], timeout: float, what: str) -> list:
        """Poll `probe` (read-only AWS calls) until it finds nothing; back off up to `poll_s`."""
        deadline = self.clock() + timeout
        remaining = probe()
        if remaining:
            self.log(f"waiting for {what} ({len(remaining)} left)")
        attempt = 0
        while remaining and self.clock() < deadline:
            self.sleep(min(self.poll_s, 0.25 * 2**attempt))
            attempt += 1
            remaining = probe()
        return remaining

    # --- step 2 ------------------------------------------------------------------------------
    def delete_k8s_objects(self) -> str:
        from llmctl.aws import ec2

        scan = self.inventory.scan()
        found = scan.find(KUBERNETES)
        kube = scan.kube()
        objects = [r for r in found if r.type == "k8s_object"]
        namespaces = [r for r in found if r.type == "k8s_namespace"]
        for res in objects:
            self.log(f"deleting {res.name}")
            kube.delete(res.extra["api_version"], res.extra["kind"], res.name.rsplit("/", 1)[-1], res.extra["namespace"])
        for res in namespaces:
            self.log(f"deleting namespace {res.name} and everything in it")
            kube.delete("v1", "Namespace", res.name, None, wait=True, timeout_s=self.namespace_wait_s)
        volumes = [r for r in self.inventory.find(KUBERNETES) if r.type == "aws_ebs_volume"]
        for vol in volumes:  # PVC volumes the CSI driver did not get to: tagged as owned by our cluster
            self.log(f"deleting EBS volume {vol.name} ({vol.note})")
            ec2.delete_volume(self.aws.ec2, vol.name, retry_s=self.poll_s, sleep=self.sleep)
        return f"{len(objects)} object(s), {len(namespaces)} namespace(s)" + (f", {len(volumes)} volume(s)" if volumes else "")

    # --- step 3 (and the CodeBuild role in step 5, what eksctl left in step 4) -------------------
    def delete_iam(self, found: list[Resource]) -> str:
        """Instance profiles, then roles (their policies first), then managed policies (detached first)."""
        from llmctl.aws import iam

        deletes = {"aws_iam_instance_profile": lambda r: iam.delete_instance_profile(self.aws.iam, r.name),
                   "aws_iam_role": lambda r: iam.delete_role(self.aws.iam, r.name),
                   "aws_iam_policy": lambda r: iam.delete_policy(self.aws.iam, r.id)}
        done = []
        for kind in deletes:
            for res in (r for r in found if r.type == kind):
                self.log(f"deleting {kind} {res.name}")
                deletes[kind](res)
                done.append(res.name)
        return ", ".join(done)

    def delete_node_ec2(self, *, launched_outside_groups: bool) -> None:
        """Instances a node provisioner launched (before eksctl: they hold the VPC's subnets), or after
        eksctl every instance and launch template still tagged for the deployment or its cluster."""
        from llmctl.actions.inventory.sources import node_ec2
        from llmctl.aws import ec2

        found = node_ec2(self.inventory.scan())
        instances = [r for r in found if r.type == "aws_instance"
                     and not (launched_outside_groups and "aws:autoscaling:groupName" in r.extra["tags"])]
        if instances:
            self.log(f"terminating EC2 instance(s) {', '.join(r.name for r in instances)}")
            ec2.terminate_instances(self.aws.ec2, [r.name for r in instances])
        for res in [] if launched_outside_groups else [r for r in found if r.type == "aws_launch_template"]:
            self.log(f"deleting launch template {res.name}")
            ec2.delete_launch_template(self.aws.ec2, res.extra["id"])

    # --- step 4 ------------------------------------------------------------------------------
    def delete_cluster(self) -> str:
        from llmctl.aws.irsa import delete_oidc_provider
        from llmctl.aws.logs import delete_log_group

        self.delete_node_ec2(launched_outside_groups=True)
        before = self.inventory.find(CLUSTER)
        if any(r.type in ("aws_eks_cluster", "aws_cloudformation_stack") for r in before):
            from llmctl.eksctl import Eksctl

            self.log(f"running eksctl delete cluster --name {self.names.cluster} --region {self.names.region} --wait")
            (self.eksctl or Eksctl()).delete_cluster(self.names.cluster, self.names.region, on_line=self.log)
        scan = self.inventory.scan()
        stacks = scan.stacks()
        if stacks:
            raise LlmctlError(
                f"CloudFormation stack(s) still present after eksctl: {', '.join(s['name'] + ' (' + str(s['status']) + ')' for s in stacks)}",
                hint="open the stack's Events in the CloudFormation console for the resource that blocks deletion; fix it, then re-run",
            )
        for arn in cluster_oidc_providers(scan, None):  # eksctl removes it; this clears one left by a failed run
            self.log(f"deleting leftover OIDC provider {arn}")
            delete_oidc_provider(self.aws.iam, arn)
        for arn in scan.tagged():
            name = arns.name_of(arn)
            if arns.type_of(arn) == "aws_cloudwatch_log_group" and name.startswith(f"/aws/eks/{self.names.cluster}/"):
                delete_log_group(self.aws.logs, name)  # control-plane logs outlive the cluster
        self.delete_node_ec2(launched_outside_groups=False)
        self.delete_interruption_queue()
        self.delete_iam([r for r in self.inventory.find(CLUSTER) if r.type.startswith("aws_iam_") and "kind" in r.extra])
        return f"cluster {self.names.cluster} deleted"

    def delete_interruption_queue(self) -> None:
        """What eksctl's Karpenter stack left: the rules first (they target the queue), then the queue."""
        from llmctl.actions.inventory.sources import interruption_queue
        from llmctl.aws import events, sqs

        found = interruption_queue(self.inventory.scan())
        for res in sorted(found, key=lambda r: r.type == "aws_sqs_queue"):
            self.log(f"deleting leftover {res.type} {res.name}")
            if res.type == "aws_sqs_queue":
                sqs.delete_queue(self.aws.sqs, res.extra["url"])
            else:
                events.delete_rule(self.aws.events, res.name)

    # --- step 5 ------------------------------------------------------------------------------
    def delete_build_resources(self) -> str:
        from llmctl.aws import codebuild, ecr, logs, s3, secretsmanager

        deletes: dict[str, Callable[[Resource], object]] = {
            "aws_codebuild_project": lambda r: codebuild.delete_project(self.aws.codebuild, r.name),
            "aws_iam_role": lambda r: self.delete_iam([r]),
            "aws_ecr_repository": lambda r: ecr.delete_repository(self.aws.ecr, r.name),
            "aws_s3_bucket": lambda r: s3.delete_bucket(self.aws.s3, r.name),
            "aws_cloudwatch_log_group": lambda r: logs.delete_log_group(self.aws.logs, r.name),
            "aws_secretsmanager_secret": lambda r: secretsmanager.delete_secret(self.aws.secretsmanager, r.id),
        }
        done = []
        for res in self.inventory.find(BUILD):
            self.log(f"deleting {res.type} {res.name}")
            deletes[res.type](res)
            done.append(res.name)
        return f"{len(done)} resource(s) deleted"

    # --- verification ------------------------------------------------------------------------
    def verify(self, *, include_build: bool) -> dict:
        """Discover again with the same sources: what is left in this run's scope, each with how to
        remove it. Any leftover fails it, billable or not: a tagged role left behind is not "done"."""
        inv = self.inventory.discover(include_build=True)
        left = inv.in_steps((UNSTEPPED, *scope(include_build)))
        kept = [] if include_build else inv.in_steps([BUILD])
        return {
            "clean": not left,
            "leftovers": [{**r.to_dict(), "remove": removal_hint(r, self.names)} for r in left],
            "kept": [r.to_dict() for r in kept],
            "kept_monthly_cost": round(sum(r.monthly_cost or 0 for r in kept), 2),
            "warnings": inv.warnings,
        }


def removal_hint(res: Resource, names) -> str:
    """How a user removes one leftover by hand (shown when verification finds it)."""
    r = f"--region {names.region}"
    return {
        "aws_lb": f"aws elbv2 delete-load-balancer --load-balancer-arn {res.id} {r}",
        "aws_elb": f"aws elb delete-load-balancer --load-balancer-name {res.name} {r}",
        "aws_lb_target_group": f"aws elbv2 delete-target-group --target-group-arn {res.id} {r}",
        "aws_security_group": f"aws ec2 delete-security-group --group-id {res.name} {r}",
        "aws_ebs_volume": f"aws ec2 delete-volume --volume-id {res.name} {r}",
        "aws_iam_role": f"llmctl teardown (or delete role {res.name} in the IAM console: policies first)",
        "aws_iam_policy": f"aws iam delete-policy --policy-arn {res.id} (detach it, delete its other versions first)",
        "aws_iam_instance_profile": f"aws iam delete-instance-profile --instance-profile-name {res.name} (remove its roles first)",
        "aws_launch_template": f"aws ec2 delete-launch-template --launch-template-name {res.name} {r}",
        "aws_instance": f"aws ec2 terminate-instances --instance-ids {res.name} {r}",
        "aws_eks_cluster": f"eksctl delete cluster --name {names.cluster} {r} --wait",
        "aws_cloudformation_stack": f"aws cloudformation delete-stack --stack-name {res.name} {r}",
        "aws_iam_openid_connect_provider": f"aws iam delete-open-id-connect-provider --open-id-connect-provider-arn {res.id}",
        "aws_codebuild_project": f"aws codebuild delete-project --name {res.name} {r}",
        "aws_ecr_repository": f"aws ecr delete-repository --repository-name {res.name} --force {r}",
        "aws_s3_bucket": f"aws s3 rb s3://{res.name} --force",
        "aws_cloudwatch_log_group": f"aws logs delete-log-group --log-group-name {res.name} {r}",
        "aws_secretsmanager_secret": f"aws secretsmanager delete-secret --secret-id {res.id} --force-delete-without-recovery {r}",
        "k8s_service": f"kubectl delete service -n {res.name.replace('/', ' ')}",
        "k8s_namespace": f"kubectl delete namespace {res.name}",
    }.get(res.type, f"delete it in the AWS console (ARN {res.id}), or `llmctl teardown` for what llmctl manages")
