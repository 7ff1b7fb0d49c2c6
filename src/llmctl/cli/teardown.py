"""`llmctl teardown`: parse, run the teardown action (plan, confirm, delete in order, verify), render.

`run_teardown(app, include_build=False, ...)` is also what `llmctl cluster down` runs (steps 1-4).
"""

from __future__ import annotations

from typing import Annotated

import typer

from llmctl.cli.context import OutputOption, get_app
from llmctl.errors import ConfigError


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


def run_teardown(app, *, include_build: bool, yes: bool, dry_run: bool, model_bucket: str | None = None) -> int:
    """The teardown action, its plan and result rendered; returns the exit code (0, or 1 when leftovers remain)."""
    from llmctl.actions.teardown import TeardownStopped

    out = app.output
    def confirm(report) -> None:
        if yes:
            return
        what = f"{len(report.plan)} resource(s) of deployment {report.deployment!r}"
        out.confirm(f"Delete these {what}?", refusal=f"refusing to delete {what} without confirmation",
                    hint="re-run with --yes to confirm, or --dry-run to only print the plan")

    try:
        report = app.teardown(model_bucket=model_bucket).run(
            include_build=include_build, dry_run=dry_run, show_plan=lambda report: _show_plan(out, report), confirm=confirm)
    except TeardownStopped as stopped:
        out.result(stopped.report.to_dict(), lambda d: None)
        raise
    if dry_run:
        out.result(report.to_dict(), lambda d: None)
        return 0
    out.result(report.to_dict(), lambda d: _render_verification(out, d["verification"]))
    left = report.verification["leftovers"]
    if left:
        out.error(f"verification found {len(left)} leftover(s) of deployment {report.deployment!r}: "
                  + ", ".join(f"{r['type']} {r['name']}" for r in left),
                  "remove each as 'how to remove' says (or fix what blocked it), then re-run the same command")
    return 0 if report.verification["clean"] else 1


def _money(value) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _show_plan(out, report) -> None:
    from llmctl.actions.inventory import UNSTEPPED
    from llmctl.actions.teardown import STEP_TITLES

    for warning in report.warnings:
        out.warn(warning)
    if out.json:
        return
    data = report.to_dict()
    rows = [("-", r["step"] or "?", r["type"], r["name"], _money(r["monthly_cost"]), r["note"]) for r in data["plan"]]
    if not rows:
        out.print(f"Nothing of deployment {data['deployment']!r} found in {data['region']}.")
    else:
        out.table(f"llmctl teardown: deployment {data['deployment']} in {data['region']}", ["", "step", "type", "resource", "monthly", "note"], rows)
        out.print(f"Plan: {len(rows)} to destroy, {_money(data['monthly_cost_removed'])}/month stops being billed (estimate).")
        if any(r["step"] == UNSTEPPED for r in data["plan"]):
            out.print(f"Step ? ({STEP_TITLES[UNSTEPPED]}): listed for you to remove; llmctl has no step that deletes that type.")
    if data["kept"]:
        kept = ", ".join(f"{r['type']} {r['name']}" for r in data["kept"])
        out.print(f"Kept (run `llmctl teardown --all` to remove): {kept}")


def _render_verification(out, verification: dict) -> None:
    if verification["clean"]:
        out.print("Verified: nothing of this deployment left in scope; nothing billable left.")
    else:
        rows = [(r["type"], r["name"], "yes" if r["billable"] else "no", r["remove"]) for r in verification["leftovers"]]
        out.table("Still there", ["type", "resource", "billable", "how to remove"], rows)
    if verification["kept"]:
        out.print(f"Kept on purpose: {len(verification['kept'])} build resource(s), about {_money(verification['kept_monthly_cost'])}/month; `llmctl teardown --all` removes them.")
