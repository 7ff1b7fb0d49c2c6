"""`llmctl adapter push | list | rm`: LoRA adapters beside the model in S3, and on the running replicas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmctl.cli.context import OutputOption, get_app

adapter_app = typer.Typer(help="Manage LoRA adapters served on the base model.", no_args_is_help=True)
LiveOption = Annotated[bool, typer.Option("--live", help="Also load/unload it on every running replica now (no restart).")]


def register(app: typer.Typer) -> None:
    app.add_typer(adapter_app, name="adapter")


def _store(app):
    """(config, S3 client) adapters live in: model.bucket's, else a running `local up`'s embedded S3."""
    from llmctl.actions.local_adapters import store

    return store(app.config, app.state.get("local")) or (app.config, app.aws.s3)


def _replicas(app, notes: list[str]):
    from llmctl.actions.adapter_replicas import replicas
    from llmctl.eksctl import kubeconfig_context

    names = app.names

    def kube_factory():
        return app.kube(context=kubeconfig_context(names.cluster, names.region))

    return replicas(app.state.get("local"), kube_factory, names, notes)


def _live(app, action, notes: list[str]) -> list[dict]:
    """`action(replica)` on every running replica; one that fails is reported failed and the others still done."""
    from llmctl.errors import LlmctlError

    done = []
    with _replicas(app, notes) as found:
        for replica in found:
            try:
                done.append({"replica": replica.name, "result": action(replica)})
            except LlmctlError as exc:
                done.append({"replica": replica.name, "result": "failed", "error": exc.message})
    return done


def _render_live(app, rows: list[dict]) -> None:
    for row in rows:
        app.output.print(f"  {row['replica']}: {row['result']}" + (f": {row['error']}" if "error" in row else ""))


def _require_every_replica(rows: list[dict], what: str, rerun: str, after: str = "") -> None:
    """Exit non-zero naming the replicas where it took and those where it did not."""
    from llmctl.errors import LlmctlError

    failed = [r["replica"] for r in rows if r["result"] == "failed"]
    if failed:
        took = [r["replica"] for r in rows if r["result"] != "failed"]
        raise LlmctlError(f"{what} on {', '.join(took) or 'no replica'}; failed on {', '.join(failed)}{after}",
                          hint=f"fix what each failed replica says above, then re-run `{rerun}`")


@adapter_app.command("push", help="Check a PEFT LoRA adapter fits the base model, then upload it beside the model.")
def push(
    ctx: typer.Context,
    adapter_dir: Annotated[Path, typer.Argument(metavar="DIR", help="Folder with adapter_config.json and safetensors weights.")],
    name: Annotated[str, typer.Option("--name", help="The adapter's name: requests send it as their `model`.")],
    live: LiveOption = False,
    output: OutputOption = None,
) -> None:
    from llmctl.actions import adapter, adapter_replicas

    app = get_app(ctx, output)
    with app.output.progress(f"uploading adapter {name}", total=None) as advance:
        sent = [0]

        def on_bytes(done: int, total: int) -> None:
            advance(done - sent[0])
            sent[0] = done

        cfg, s3 = _store(app)
        data = adapter.push(cfg, app.names, s3, adapter_dir, name, on_bytes)
    notes: list[str] = []
    if live:
        path, prefix = str(adapter_dir.resolve()), adapter.adapter_prefix(cfg, name)
        data["live"] = _live(app, lambda r: adapter_replicas.load(r, name, path, prefix) or "loaded", notes)
    data["notes"] = notes

    def render(d: dict) -> None:
        app.output.print(f"adapter {d['name']} (r={d['rank']}): {len(d['uploaded'])} uploaded, {len(d['skipped'])} "
                         f"unchanged ({d['bytes_uploaded'] / 1e6:.2f} MB sent) -> {d['uri']}")
        _render_live(app, d.get("live", []))
        for note in d["notes"]:
            app.output.print(f"  note: {note}")

    app.output.result(data, render)
    _require_every_replica(data.get("live", []), f"adapter {name} is in S3 and loaded",
                           f"llmctl adapter push {adapter_dir} --name {name} --live")


@adapter_app.command("list", help="Adapters in S3 (size, rank, pushed when) and which each running replica serves.")
def list_(ctx: typer.Context, output: OutputOption = None) -> None:
    from llmctl.actions import adapter, adapter_replicas
    from llmctl.errors import LlmctlError

    app = get_app(ctx, output)
    notes: list[str] = []
    data = {"adapters": adapter.stored(*_store(app)), "replicas": [], "notes": notes}
    with _replicas(app, notes) as found:
        for replica in found:
            try:
                data["replicas"].append({"replica": replica.name, "adapters": adapter_replicas.loaded_adapters(replica)})
            except LlmctlError as exc:  # the others are still listed
                data["replicas"].append({"replica": replica.name, "adapters": None, "error": exc.message})

    def render(d: dict) -> None:
        app.output.table("Adapters in S3", ["name", "size", "rank", "pushed", "declared"],
                         [(a["name"], f"{a['size'] / 1e6:.2f} MB", a["rank"] or "-",
                           a["pushed_at"] or "incomplete (no manifest)", "yes" if a["declared"] else "no")
                          for a in d["adapters"]])
        app.output.table("Replicas", ["replica", "loaded adapters"],
                         [(r["replica"], f"unknown: {r['error']}" if r["adapters"] is None else ", ".join(r["adapters"]) or "-")
                          for r in d["replicas"]])
        for note in d["notes"]:
            app.output.print(f"note: {note}")

    app.output.result(data, render)


@adapter_app.command("rm", help="Delete an adapter from S3 (after a plan and a confirmation); --live unloads it first.")
def rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The adapter's name.")],
    live: LiveOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    output: OutputOption = None,
) -> None:
    from llmctl.actions import adapter, adapter_replicas

    app = get_app(ctx, output)
    cfg, s3 = _store(app)
    plan = adapter.removal_plan(cfg, s3, name)
    app.output.print(f"delete adapter {name}: {len(plan['keys'])} objects, {plan['size'] / 1e6:.2f} MB at {plan['uri']}"
                     + (" (and unload it from every running replica)" if live else ""))
    notes: list[str] = []
    if plan["declared"]:
        notes.append(f"model.adapters still declares {name}: remove it before the next `llmctl deploy`")
    result = {"name": name, "uri": plan["uri"], "objects": len(plan["keys"]), "dry_run": dry_run, "notes": notes}
    if not dry_run:
        if not yes:
            app.output.confirm(f"Delete adapter {name}?", refusal=f"refusing to delete adapter {name} without confirmation",
                               hint="re-run with --yes to confirm, or --dry-run to only print the plan")
        if live:
            result["live"] = _live(app, lambda r: "unloaded" if adapter_replicas.unload(r, name) else "not loaded", notes)
        result["deleted"] = not any(r["result"] == "failed" for r in result.get("live", []))
        if result["deleted"]:  # a replica that still serves it keeps it in S3: the re-run finds it
            adapter.remove(s3, plan)

    def render(d: dict) -> None:
        app.output.print("dry run: nothing deleted" if d["dry_run"] else f"deleted {d['objects']} objects at {d['uri']}"
                         if d["deleted"] else "nothing deleted from S3")
        _render_live(app, d.get("live", []))
        for note in d["notes"]:
            app.output.print(f"note: {note}")

    app.output.result(result, render)
    _require_every_replica(result.get("live", []), f"adapter {name} is unloaded", f"llmctl adapter rm {name} --live",
                           " (nothing deleted from S3)")
