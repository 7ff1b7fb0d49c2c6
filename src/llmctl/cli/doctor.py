"""`llmctl doctor`: a pass/warn/fail table of everything a cloud run needs."""

from __future__ import annotations

import typer

from llmctl.cli.context import OutputOption, get_app


def register(app: typer.Typer) -> None:
    app.command("doctor", help="Check config, AWS identity, eksctl, kubectl and kubeconfig.")(doctor)


def doctor(ctx: typer.Context, output: OutputOption = None) -> None:
    from llmctl.actions.doctor import run_checks

    app = get_app(ctx, output)
    with app.output.status("checking..."):
        checks = run_checks(lambda: app.config, lambda cfg: app.aws)
    data = {"ok": all(c.status != "fail" for c in checks), "checks": [c.to_dict() for c in checks]}

    def render(data: dict) -> None:
        rows = [(c["name"], c["status"], c["detail"], c["fix"]) for c in data["checks"]]
        app.output.table("llmctl doctor", ["check", "status", "detail", "fix"], rows, status_column="status")

    app.output.result(data, render)
    if not data["ok"]:
        raise typer.Exit(1)
