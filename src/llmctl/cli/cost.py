"""`llmctl cost`: the estimate for the config, or (`--running`) the rate of what exists now."""

from __future__ import annotations

from typing import Annotated

import typer

from llmctl.cli.context import OutputOption, get_app


def register(app: typer.Typer) -> None:
    app.command("cost", help="Hourly and monthly cost estimate for the config, or --running for what exists now.")(cost)


def cost(
    ctx: typer.Context,
    running: Annotated[bool, typer.Option("--running", help="Price what this deployment actually has in AWS now.")] = False,
    live: Annotated[bool, typer.Option("--live", help="Ask the AWS Pricing API for the node price (falls back to the table).")] = False,
    image_gb: Annotated[float | None, typer.Option("--image-gb", min=0, help="ECR image size to price (GB).")] = None,
    model_gb: Annotated[float | None, typer.Option("--model-gb", min=0, help="Model size in S3 to price (GB).")] = None,
    active_hours: Annotated[float | None, typer.Option("--active-hours-per-week", min=0, max=168, help="Hours a week with traffic outside the schedule (scale to zero; default 40 without a schedule, 0 with one).")] = None,
    output: OutputOption = None,
) -> None:
    from llmctl.actions import cost as actions

    app = get_app(ctx, output)
    if running:
        # Kubernetes objects cost nothing themselves; their AWS side is found by tags.
        with app.output.status(f"discovering what deployment {app.names.deployment!r} has running..."):
            estimate = actions.running_now(app.inventory(kubernetes=False))
        title = f"Running now: deployment {app.names.deployment} in {app.names.region}"
    else:
        client = app.pricing_client() if live else None
        estimate = actions.estimate_config(app.config, image_gb=image_gb, model_gb=model_gb, live_client=client)
        title = f"Estimate: deployment {app.names.deployment} in {app.names.region}"
    data = {"mode": "running" if running else "estimate", **estimate.to_dict()}
    if not running:
        data.update(actions.expected_cost(app.config, estimate, cold_start_s=app.state.get("cold_start_s"),
                                          active_hours_per_week=active_hours))

    def render(d: dict) -> None:
        rows = [(line["item"], f"${line['hourly']:.4f}", f"${line['monthly']:,.2f}", line["note"]) for line in d["lines"]]
        rows.append(("total", f"${d['hourly_total']:.4f}", f"${d['monthly_total']:,.2f}", ""))
        app.output.table(title, ["item", "hourly", "monthly", "note"], rows)
        app.output.print(f"Source: {d['source']}. An estimate: the AWS bill is the truth.")
        for note in d["notes"]:
            app.output.print(f"note: {note}")
        if "monthly_expected" in d:
            app.output.print(f"always on: ${d['monthly_always_on']:,.2f}/month; expected with the schedule, idle "
                             f"policy and capacity mix: ${d['monthly_expected']:,.2f}/month "
                             f"({d['expected']['gpu_node_hours_per_month']:,.0f} GPU node-hours)")
            for assumption in d["expected"]["assumptions"]:
                app.output.print(f"assumed: {assumption}")
        if d["mode"] == "running" and not d["lines"]:
            app.output.print("Nothing billable of this deployment is running.")

    app.output.result(data, render)
