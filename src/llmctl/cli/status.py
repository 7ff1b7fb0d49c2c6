"""`llmctl status [--output json]` and `llmctl logs [--follow] [--container ...] [--previous]`."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from llmctl.cli.context import OutputOption, get_app


class Container(str, Enum):
    model_download = "model-download"
    vllm = "vllm"


def register(app: typer.Typer) -> None:
    app.command("status", help="Show the endpoint: pods and their phase, endpoint, image, model, metrics.")(status)
    app.command("logs", help="Print the endpoint's logs (newest pod).")(logs)


def status(ctx: typer.Context, output: OutputOption = None) -> None:
    from llmctl.actions.status import collect_status

    app = get_app(ctx, output)
    out = app.output
    data = collect_status(app.kube(), app.config, app.names)

    def render(data: dict) -> None:
        if not data["deployed"]:
            out.print(f"{data['deployment']}: not deployed (run `llmctl deploy`)")
            return
        out.print(f"{data['deployment']}: {data['ready_replicas']}/{data['replicas']} ready")
        out.print(f"image:    {data['image']}", markup=False)
        model = data["model"]
        out.print(f"model:    {model['served_name']} from {model['source']} (max_model_len {model['max_model_len']})",
                  markup=False)
        out.print(f"endpoint: {data['endpoint'] or 'no load balancer address yet'}", markup=False)
        out.table("pods", ["pod", "phase", "ready", "restarts", "node"],
                  [(p["name"], p["phase"], "yes" if p["ready"] else "no", p["restarts"], p["node"] or "")
                   for p in data["pods"]])
        if data["events"]:
            out.table("recent warnings", ["object", "reason", "message"],
                      [(e["object"], e["reason"], e["message"]) for e in data["events"]])
        metrics = data["metrics"]
        if metrics and "error" in metrics:
            out.print(f"metrics:  {metrics['error']}", markup=False)
        elif metrics:
            requests = ", ".join(f"{k} {int(v)}" for k, v in sorted(metrics["requests"].items())) or "none"
            rows = [("requests", requests)] + [(k.replace("_", " "), f"{v:g}") for k, v in metrics.items() if k != "requests"]
            out.table("metrics", ["series", "value"], rows)

    out.result(data, render)


def logs(
    ctx: typer.Context,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    container: Annotated[Container, typer.Option("--container", help="Which container.")] = Container.vllm,
    previous: Annotated[bool, typer.Option("--previous", help="The previous (crashed) instance's log.")] = False,
    tail: Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N lines.")] = None,
    output: OutputOption = None,
) -> None:
    """Lines to stdout as they are; with `-o json`, one document `{"container", "lines"}`, or with
    --follow one `{"container", "line"}` object per line (JSON Lines: the stream has no end)."""
    from llmctl.actions.status import logs as read_logs

    app = get_app(ctx, output)
    lines = read_logs(app.kube(), app.names, container=container.value, follow=follow, previous=previous,
                      tail_lines=tail)
    if app.output.json and not follow:
        app.output.result({"container": container.value, "lines": list(lines)})
        return
    for line in lines:
        if app.output.json:
            app.output.json_line({"container": container.value, "line": line})
        else:
            app.output.document(line)
