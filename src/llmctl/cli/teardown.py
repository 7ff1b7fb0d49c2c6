"""`llmctl teardown`: plan, confirm, delete in order, verify nothing billable is left.

`run_teardown(app, include_build=False, ...)` is also what `llmctl cluster down` runs (steps 1-4).
"""

from __future__ import annotations

from typing import Annotated

import typer

from llmctl.cli.context import OutputOption, get_app
from llmctl.errors import ConfigError, LlmctlError


def register(app: typer.Typer) -> None:
    app.command("teardown", help="Delete everything this deployment created (--all: build resources too), then verify.")(teardown)


def teardown(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Also the CodeBuild project and role, ECR repository, build bucket, log groups and secrets.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Observe: discover what exists, print the plan and its cost and stop; delete nothing.")] = False,
    delete_model_bucket: Annotated[str | None, typer.Option("--delete-model-bucket", metavar="NAME", help="Also delete the model bucket (must equal model.bucket; needs --all).")] = None,
    output: OutputOption = None,
) -> None:
    app = get_app(ctx, output)
    if delete_model_bucket is not None:
        if not all_:
            raise ConfigError("--delete-model-bucket needs --all", hint="add --all: the model bucket goes in the build-resources step")
        if delete_model_bucket != app.config.model.bucket:
            raise ConfigError(
                f"--delete-model-bucket {delete_model_bucket!r} does not match model.bucket ({app.config.model.bucket!r})",
                hint="name the bucket exactly as llmctl.yaml's model.bucket does",
            )
    code = run_teardown(app, include_build=all_, yes=yes, dry_run=dry_run, model_bucket=delete_model_bucket)
    if code:
        raise typer.Exit(code)


def make_teardown(app, model_bucket: str | None = None):
    """The `Teardown` action for this run: config's names, AWS clients, the cluster's kube context."""
    from llmctl.actions.teardown import Teardown

    names = app.names

    def kube_factory():
        from llmctl.eksctl import kubeconfig_context

        return app.kube(context=kubeconfig_context(names.cluster, names.region))

    return Teardown(
        names=names,
        aws=app.aws,
        kube_factory=kube_factory,
        model_bucket=model_bucket,
        config_model_bucket=app.config.model.bucket,
        log=app.output.log_line,
    )


def run_teardown(app, *, include_build: bool, yes: bool, dry_run: bool, model_bucket: str | None = None) -> int:
    """Discover, print the plan, confirm, execute, verify; returns the exit code (0 or 1)."""
    from llmctl.actions.teardown import STEP_TITLES

    out = app.output
    action = make_teardown(app, model_bucket)
    steps = (1, 2, 3, 4, 5) if include_build else (1, 2, 3, 4)
    with out.status(f"discovering what deployment {app.names.deployment!r} owns..."):
        inv = action.discover(include_build=True)
    doomed = inv.in_steps(steps) + inv.in_steps([0])
    kept = [] if include_build else inv.in_steps([5])
    data: dict = {
        "deployment": app.names.deployment,
        "region": app.names.region,
        "scope": "all" if include_build else "cluster",
        "dry_run": dry_run,
        "plan": [r.to_dict() for r in sorted(doomed, key=lambda r: (r.step or 9))],
        "monthly_cost_removed": inv.monthly_cost(steps),
        "kept": [r.to_dict() for r in kept],
        "warnings": inv.warnings,
        "results": [],
        "verification": None,
    }
    for warning in inv.warnings:
        out.warn(warning)
    _render_plan(out, data, STEP_TITLES)
    if dry_run:
        out.result(data, lambda d: None)
        return 0
    if any(r.step for r in doomed) and not yes:
        count = len(doomed)
        out.confirm(f"Delete these {count} resource(s) of deployment {app.names.deployment!r}?",
                    refusal=f"refusing to delete {count} resource(s) of deployment {app.names.deployment!r} without "
                            "confirmation",
                    hint="re-run with --yes to confirm, or --dry-run to only print the plan")

    results = data["results"]
    plan = action.plan(include_build=include_build)
    try:
        plan.execute(report=lambda r: (results.append(r.to_dict()), out.report(r)))
    except LlmctlError as exc:
        failed = plan.steps[len(results)]
        results.append({"title": failed.title, "kind": failed.kind, "action": "delete", "status": "failed", "detail": exc.message})
        out.step("failed", f"{failed.title}: {exc.message}")
        data["error"] = {"message": exc.message, "hint": exc.hint}
        out.result(data, lambda d: None)
        raise LlmctlError(
            f"teardown stopped at '{failed.title}': {exc.message}",
            hint=(exc.hint + "; " if exc.hint else "") + "re-run the same command: finished steps are skipped",
        ) from None

    with out.status("verifying: discovering again..."):
        data["verification"] = verification = action.verify(include_build=include_build)
    out.result(data, lambda d: _render_verification(out, d["verification"]))
    return 0 if verification["clean"] else 1


def _money(value) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _render_plan(out, data: dict, titles: dict) -> None:
    if out.json:
        return
    rows = [("-", r["step"] or "?", r["type"], r["name"], _money(r["monthly_cost"]), r["note"]) for r in data["plan"]]
    if not rows:
        out.print(f"Nothing of deployment {data['deployment']!r} found in {data['region']}.")
    else:
        out.table(f"llmctl teardown: deployment {data['deployment']} in {data['region']}", ["", "step", "type", "resource", "monthly", "note"], rows)
        out.print(f"Plan: {len(rows)} to destroy, {_money(data['monthly_cost_removed'])}/month stops being billed (estimate).")
        if any(r["step"] == 0 for r in data["plan"]):
            out.print(f"Step ? ({titles[0]}): listed for you to remove; llmctl has no step that deletes that type.")
    if data["kept"]:
        kept = ", ".join(f"{r['type']} {r['name']}" for r in data["kept"])
        out.print(f"Kept (run `llmctl teardown --all` to remove): {kept}")


def _render_verification(out, verification: dict) -> None:
    if verification["clean"] and not verification["leftovers"]:
        out.print("Verified: nothing billable left.")
    elif verification["clean"]:
        out.print("Verified: nothing billable left (free leftovers below).")
    if verification["leftovers"]:
        rows = [(r["type"], r["name"], "yes" if r["billable"] else "no", r["remove"]) for r in verification["leftovers"]]
        out.table("Still there", ["type", "resource", "billable", "how to remove"], rows)
    if verification["kept"]:
        out.print(f"Kept on purpose: {len(verification['kept'])} build resource(s), about {_money(verification['kept_monthly_cost'])}/month; `llmctl teardown --all` removes them.")
