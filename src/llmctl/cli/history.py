"""`llmctl history [--output json]`: the endpoint's revisions, as recorded in the cluster."""

from __future__ import annotations

import typer

from llmctl.cli.context import OutputOption, get_app


def register(app: typer.Typer) -> None:
    app.command("history", help="List the endpoint's revisions (image, model, strategy, gate, outcome).")(history)


def history(ctx: typer.Context, output: OutputOption = None) -> None:
    """Every revision, oldest first; the serving one is marked."""
    from llmctl.actions import revisions
    from llmctl.actions.rollout.traffic import routed_record

    app = get_app(ctx, output)
    kube = app.kube()
    records = revisions.history(kube, app.names)
    serving, routed = revisions.serving(records), routed_record(kube, app.names, records)
    # `serving`: what the records say; `routed`: whose pods the Service selects (they differ after a killed deploy)
    data = {"deployment": f"{app.names.namespace}/{app.names.app}", "serving": serving.number if serving else None,
            "routed": routed.number if routed else None, "revisions": [r.to_dict() for r in records]}

    def render(data: dict) -> None:
        out = app.output
        if not data["revisions"]:
            out.print(f"no revisions recorded for {data['deployment']}: run `llmctl deploy`")
            return
        rows = []
        for r in data["revisions"]:
            gate = r["gate"]
            serves = data["routed"] or data["serving"]
            rows.append((("* " if r["number"] == serves else "  ") + str(r["number"]), r["created"],
                         (r["image_digest"] or r["image"])[:19], r["model"], (r["manifest_digest"] or "-").removeprefix("sha256:")[:12],
                         r["config_hash"], r["strategy"],
                         "-" if gate is None else ("passed" if gate.get("passed") else "failed"),
                         r["outcome"] + (" (kept)" if r["kept_until"] else "")))
        out.table(f"revisions of {data['deployment']} (* serves)",
                  ["revision", "created", "image", "model", "weights", "config", "strategy", "gate",
                   "outcome"], rows)
        if data["routed"] and data["routed"] != data["serving"]:
            out.print(f"the Service selects revision {data['routed']}'s pods, while the records say "
                      f"{data['serving'] or 'none'} serves: a deploy was interrupted after moving traffic; "
                      "`llmctl deploy` again records it", markup=False)
        for r in data["revisions"]:
            if r["kept_until"]:
                out.print(f"revision {r['number']} is kept up until {r['kept_until']} for an instant rollback "
                          f"(`llmctl rollback --to {r['number']}`); its GPUs cost meanwhile", markup=False)
            if r["diagnosis"]:
                out.print(f"revision {r['number']}: {r['diagnosis']}", markup=False)

    app.output.result(data, render)
