"""`llmctl status [--output json]`, `llmctl logs [--follow] [--container ...] [--previous]` and
`llmctl endpoint [--port N]`."""

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
    app.command("endpoint", help="Port-forward the endpoint to 127.0.0.1 (how exposure `cluster` is used).")(endpoint)


def endpoint(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Local port (0: any free one).")] = 0,
    output: OutputOption = None,
) -> None:
    """Forward 127.0.0.1:PORT to a ready pod of the endpoint until Ctrl-C; the API key is still required."""
    from llmctl.actions.status import forward_endpoint

    app = get_app(ctx, output)

    def warn(err) -> None:  # one connection failed; the forward goes on
        app.output.warn(err.message + (f"; fix: {err.hint}" if err.hint else ""))

    with forward_endpoint(app.kube(), app.names, port, on_error=warn) as forward:
        app.output.result({"url": forward.url, "pod": forward.pod}, lambda d: app.output.print(d["url"]),
                          stream=True)  # now: the command goes on forwarding
        try:  # the line inside: a Ctrl-C right after it still ends the session cleanly
            app.output.info(f"forwarding to {app.names.namespace}/{forward.pod}; the key: "
                            "`llmctl deploy --show-api-key`; Ctrl-C to stop")
            forward.wait()  # raises when the pod goes away
        except KeyboardInterrupt:  # Ctrl-C is how the session ends
            app.output.info("stopped")


def status(ctx: typer.Context, output: OutputOption = None) -> None:
    from llmctl.actions.status import collect_status

    app = get_app(ctx, output)
    out = app.output
    data = collect_status(app.kube(), app.config, app.names, cold_start_s=app.state.get("cold_start_s"))

    def render(data: dict) -> None:
        if not data["deployed"]:
            out.print(f"{data['deployment']}: not deployed (run `llmctl deploy`)")
            return
        zero = data.get("scaled_to_zero")
        if zero:
            wake = (f"wakes on request (about {zero['wake_s']} s{'' if zero['wake_measured'] else ', not measured yet'})"
                    if zero["wakes_on_request"] else "wakes on its schedule")
            out.print(f"{data['deployment']}: scaled to zero, idle since {zero['idle_since'] or 'unknown'}, {wake}")
            if zero.get("wake_url"):
                out.print(f"wake:     pods in the cluster call {zero['wake_url']} (the interceptor holds it while a "
                          "replica starts)", markup=False)
        else:
            out.print(f"{data['deployment']}: {data['ready_replicas']}/{data['replicas']} ready")
        out.print(f"image:    {data['image']}", markup=False)
        if data["revision"]:
            rev = data["revision"]
            out.print(f"revision: {rev['number']} serves ({rev['outcome']}; `llmctl history` lists them all)")
            if rev.get("grown"):
                out.print(f"surge:    a temporary node of node group {rev['grown']['name']} is still out (a deploy "
                          f"stopped before giving it back): `llmctl deploy` takes the group back to "
                          f"{rev['grown']['size']}", markup=False)
        for kept in data.get("kept_revisions") or []:
            out.print(f"kept:     revision {kept['number']} ({kept['deployment']}) stays up until {kept['until']} "
                      f"for an instant `llmctl rollback`: {kept['pods']} pod(s), {kept['gpus']} GPU(s), "
                      f"about ${kept['hourly_usd']:.2f}/h", markup=False)
        model = data["model"]
        out.print(f"model:    {model['served_name']} from {model['source']} (max_model_len {model['max_model_len']})",
                  markup=False)
        exposure = data.get("exposure") or {}
        if exposure.get("exposure") == "cluster":
            out.print("endpoint: ClusterIP only (`llmctl endpoint` forwards it to 127.0.0.1)", markup=False)
        else:
            out.print(f"endpoint: {data['endpoint'] or 'no load balancer address yet'}", markup=False)
        if exposure:
            out.print(f"exposed:  {exposure['exposure']}: {exposure['reachable_from']} "
                      f"({exposure['scheme'].upper()}, port {exposure['port']})", markup=False)
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
