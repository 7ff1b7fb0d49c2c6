"""`llmctl cluster up [--dry-run] [--yes]`, `llmctl cluster status`, `llmctl cluster render`."""

from __future__ import annotations

from typing import Annotated

import typer

from llmctl.cli.context import App, OutputOption, get_app
from llmctl.errors import LlmctlError

cluster_app = typer.Typer(help="Create and inspect the EKS GPU cluster (eksctl).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(cluster_app, name="cluster")


def _show_preflight(app: App, pre) -> None:
    out = app.output
    out.table("pre-flight", ["check", "status", "detail", "fix"],
              [(c.name, c.status, c.detail, c.fix) for c in pre.checks], status_column="status")
    cost = pre.cost
    rows = [(line.item, f"${line.hourly:,.4f}", f"${line.monthly:,.2f}", line.note) for line in cost.lines]
    rows.append(("total", f"${cost.hourly_total:,.4f}", f"${cost.monthly_total:,.2f}", ""))
    out.table(f"estimated cost in {cost.region} ({cost.source})", ["item", "hourly", "monthly", "note"], rows)
    for note in cost.notes:
        out.print(f"note: {note}")


def _plan_rows(results) -> list[tuple]:
    return [(r.title, r.action, r.status, r.detail or "") for r in results]


@cluster_app.command("up")
def up(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Observe: run the pre-flight, read what exists and print the cost and the plan; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    gpu_timeout: Annotated[float | None, typer.Option("--gpu-timeout", min=1.0, help="Seconds to wait for an allocatable GPU (default cluster.gpu_wait_timeout_s).")] = None,
    output: OutputOption = None,
) -> None:
    """Create the cluster, OIDC provider, GPU node group, IRSA role and device plugin; wait for a GPU."""
    app = get_app(ctx, output)
    manager = app.cluster_manager()
    with app.output.status("pre-flight checks..."):
        pre = manager.preflight()
    plan = manager.plan(gpu_timeout)
    if dry_run or not pre.ok:
        results = plan.describe() if pre.ok or dry_run else []
        data = {"dry_run": dry_run, "preflight": pre.to_dict(), "plan": [r.to_dict() for r in results]}

        def render(data: dict) -> None:
            _show_preflight(app, pre)
            if results:
                app.output.table("plan (dry run: nothing changed)", ["step", "action", "status", "detail"],
                                 _plan_rows(results), status_column="action")

        app.output.result(data, render)
        if not pre.ok:
            raise pre.failure()
        return
    if not app.output.json:
        _show_preflight(app, pre)
    for check in pre.checks:
        if check.status == "warn":
            app.output.warn(f"{check.name}: {check.detail}")
    if not yes:
        app.output.confirm(f"Create/update cluster {app.names.cluster} (about ${pre.cost.monthly_total:,.0f}/month)?",
                           refusal="`cluster up` creates billable AWS resources and needs confirmation",
                           hint="review `llmctl cluster up --dry-run`, then run `llmctl cluster up --yes`")
    app.output.info(f"cluster up: {app.names.cluster} in {app.names.region}")
    results = plan.execute(app.output.report)
    context = manager.context_name()
    data = {"cluster": app.names.cluster, "region": app.names.region, "kubeconfig_context": context,
            "steps": [r.to_dict() for r in results], "cost": pre.cost.to_dict()}

    def render(data: dict) -> None:
        changed = sum(r["status"] != "unchanged" for r in data["steps"])
        app.output.print(f"cluster {data['cluster']} is ready ({changed} step(s) changed, "
                         f"{len(data['steps']) - changed} already done)")
        app.output.print(f"kubeconfig context: {context}  (kubectl config use-context {context})")

    app.output.result(data, render)


@cluster_app.command("status")
def status(ctx: typer.Context, output: OutputOption = None) -> None:
    """Control plane, node groups, GPU nodes, device plugin health and the IRSA role."""
    app = get_app(ctx, output)
    with app.output.status("reading cluster state..."):
        data = app.cluster_manager().status()

    def render(data: dict) -> None:
        out = app.output
        if not data["exists"]:
            out.print(f"cluster {data['name']} does not exist in {data['region']} (create it: llmctl cluster up)")
            return
        cp = data["control_plane"]
        out.print(f"cluster {data['name']} ({data['region']}): {cp['status']}, Kubernetes {cp['version']}")
        out.print(f"  OIDC provider: {data['oidc_provider'] or 'missing (IRSA cannot work)'}")
        out.print(f"  kubeconfig context: {data['kubeconfig_context'] or 'none (eksctl utils write-kubeconfig)'}")
        out.table("node groups", ["name", "status", "instance types", "capacity", "desired", "min", "max"],
                  [(n["name"], n["status"], ",".join(n["instance_types"] or []), n["capacity_type"], n["desired"],
                    n["min"], n["max"]) for n in data["nodegroups"]])
        if data.get("nodes") is None:
            out.print("  nodes: unknown (the Kubernetes API did not answer; see the error below)")
        else:
            out.table("nodes", ["name", "instance type", "node group", "ready", "nvidia.com/gpu"],
                      [(n["name"], n["instance_type"], n["nodegroup"], "yes" if n["ready"] else "no",
                        n["gpu_allocatable"]) for n in data["nodes"]])
            dp = data["device_plugin"]
            out.print("  device plugin: " + ("not installed" if dp is None else
                      f"{dp['name']} {dp['image']}: {dp['ready']}/{dp['desired']} ready"
                      + ("" if dp["healthy"] else " (unhealthy)")))
        role = data["irsa_role"]
        if not role["exists"]:
            out.print(f"  IRSA role {role['name']}: missing")
        else:
            out.print(f"  IRSA role {role['name']}: trust {'matches' if role['trust_matches_cluster'] else 'DOES NOT match'} "
                      f"the cluster, permissions {'match' if role['permissions_match'] else 'DIFFER'}")

    app.output.result(data, render)
    if data.get("kube_error"):  # what AWS says is shown; the cluster's own API could not be read: exit 1
        raise LlmctlError(data["kube_error"], hint=data.get("kube_fix"))


@cluster_app.command("render")
def render(
    ctx: typer.Context,
    device_plugin: Annotated[bool, typer.Option("--device-plugin", help="Print the NVIDIA device plugin manifest instead.")] = False,
    karpenter: Annotated[bool, typer.Option("--karpenter", help="Print Karpenter's GPU NodePool and EC2NodeClass instead (cluster.capacity: karpenter).")] = False,
    output: OutputOption = None,
) -> None:
    """Print the eksctl ClusterConfig `cluster up` uses (or the device plugin DaemonSet, or Karpenter's objects)."""
    import yaml

    from llmctl.actions.cluster import device_plugin_objects, render_cluster_config
    from llmctl.render import dump_documents

    app = get_app(ctx, output)
    if karpenter and device_plugin:
        raise LlmctlError("--karpenter and --device-plugin print different documents", hint="pass one of them")
    if karpenter:
        from llmctl.actions.cluster.karpenter import karpenter_objects

        if app.config.cluster.capacity != "karpenter":
            raise LlmctlError("cluster.capacity is nodegroup: there are no Karpenter objects to render",
                              hint="set cluster.capacity: karpenter in llmctl.yaml (or LLMCTL_CLUSTER_CAPACITY=karpenter)")
        documents = karpenter_objects(app.config, app.names)
        text = dump_documents(documents)
    elif device_plugin:
        documents = device_plugin_objects(app.config, app.names)
        text = dump_documents(documents)
    else:
        text = render_cluster_config(app.config, app.names)
        documents = [yaml.safe_load(text)]
    app.output.result({"documents": documents}, lambda d: app.output.document(text))


@cluster_app.command("down")
def down(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Observe: discover what exists, print the plan and stop; delete nothing.")] = False,
    output: OutputOption = None,
) -> None:
    """Delete the endpoint and the cluster (teardown steps 1-4); build resources stay."""
    from llmctl.cli.teardown import run_teardown

    code = run_teardown(get_app(ctx, output), include_build=False, yes=yes, dry_run=dry_run)
    if code:
        raise typer.Exit(code)
