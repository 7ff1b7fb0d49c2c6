"""`llmctl deploy [--dry-run] [--output-dir DIR] [--image IMAGE] [--timeout S] [--allow-downtime] [--show-api-key]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmctl.cli.context import OutputOption, get_app


def register(app: typer.Typer) -> None:
    app.command("deploy", help="Apply the endpoint to the cluster and follow it to Ready.")(deploy)


def deploy(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Render only: print (or write) the manifests; no cluster is contacted.")] = False,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="With --dry-run: write one YAML file per object here.")
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="Image to run (default: the digest of the last `llmctl build`).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1.0, help="Seconds to wait for Ready (default: deploy.startup_timeout_s).")
    ] = None,
    allow_downtime: Annotated[bool, typer.Option(
        "--allow-downtime", help="Accept a recreate (no GPU for a second pod) without asking.")] = False,
    show_api_key: Annotated[bool, typer.Option("--show-api-key", help="Print the endpoint's API key.")] = False,
    output: OutputOption = None,
) -> None:
    """Plan, render, server-side apply, prune, then show the rollout, the timeline, the endpoint and a test request."""
    from llmctl.actions import deploy as actions
    from llmctl.errors import ConfigError, LlmctlError

    app = get_app(ctx, output)
    if image is not None:
        app.override("deploy.image", image, "--image")  # checked as deploy.image is, and blamed on the flag
    if allow_downtime:
        app.override("deploy.allow_downtime", True, "--allow-downtime")
    cfg, names, out = app.config, app.names, app.output
    if output_dir is not None and not dry_run:
        raise ConfigError("--output-dir works only with --dry-run (a real deploy applies to the cluster)",
                          hint="add --dry-run, or drop --output-dir")
    resolved = actions.resolve_image(image, cfg, app.state.get("image"))
    exposed = actions.exposures.exposure(cfg)
    out.info(f"exposure {exposed.kind}: reachable from {exposed.reachable_from}")

    if dry_run:
        try:
            arn = actions.role_arn(app.aws, names)
        except LlmctlError as exc:
            arn = actions.role_arn(None, names)
            out.warn(f"no AWS account ({exc.message}): the ServiceAccount's role ARN uses the placeholder ACCOUNT_ID")
        # the key lives only in the cluster (generated once, kept): a dry run never invents one
        try:
            digest = model_digest(app, cfg.model.bucket, cfg.model.prefix)
        except LlmctlError as exc:
            digest = None
            out.warn(f"the model manifest cannot be read ({exc.message}): the plan assumes none")
        documents = actions.render(cfg, names, image=resolved, role_arn=arn, api_key=actions.REDACTED_API_KEY,
                                   cold_start_s=app.state.get("cold_start_s"), manifest_digest=digest,
                                   front=dry_run_front(app))
        out.info("the Secret's API key is redacted (a real deploy generates it once and keeps it)")
        plan = dry_run_plan(app, documents, resolved)
        files = actions.write_documents(documents, output_dir) if output_dir else []
        data = {"dry_run": True, "image": resolved, "role_arn": arn, "files": files, "exposure": exposed.to_dict(),
                "plan": plan, "documents": documents}

        def render_dry(data: dict) -> None:
            if files:
                for path in files:
                    out.print(path)
            else:
                from llmctl.render import dump_documents

                out.document(dump_documents(data["documents"]))

        out.result(data, render_dry)
        return

    out.info(f"deploying {resolved} to {names.namespace}/{names.app}")
    follow_rollout(app, resolved, timeout, show_api_key)


def dry_run_front(app):
    """The interceptor proxy Service an NLB that scales to zero copies, read from the cluster; without one (or
    without the add-on) the plan uses the chart's labels for release `http-add-on`, and says so."""
    from llmctl.actions import front
    from llmctl.errors import LlmctlError

    if not front.fronted(app.config):
        return None
    try:
        found = front.read(app.kube(), app.names)
    except LlmctlError as exc:
        found, why = None, f"the cluster cannot be read ({exc.message})"
    else:
        why = "the KEDA HTTP add-on's interceptor proxy Service is not in the cluster"
    if found is None:
        app.output.warn(f"{why}: the NLB's Service in `{front.NAMESPACE}` selects the chart's interceptor pods of a "
                        "release named `http-add-on`; a real deploy copies the installed proxy Service's selector")
    return found


def model_digest(app, bucket: str | None, prefix: str) -> str | None:
    """The digest of the model's manifest in S3 (part of the revision: new weights are a new one); None, with a
    warning, when there is none (the pods' downloader verifies against it)."""
    from llmctl.actions.model import MANIFEST_NAME, manifest_digest

    if not bucket:  # the render names the missing field
        return None
    digest = manifest_digest(app.aws.s3, bucket, prefix)
    if digest is None:
        app.output.warn(f"no model manifest at s3://{bucket}/{prefix.strip('/')}/{MANIFEST_NAME}: the revision "
                        "records no model digest (`llmctl model upload` writes it)")
    return digest


def show_plan(out, update) -> None:
    """The planner's choice and why, before anything is written; a recreate needs a yes (or --allow-downtime)."""
    plan = update.plan
    if plan is None:
        out.info(f"revision {update.record.number} already serves this image, model and engine settings")
        return
    out.info(f"revision {update.record.number}: {plan.strategy}: {plan.reason}")
    if plan.temporary_node:
        node = plan.temporary_node
        out.info(f"temporary node: one {node['instance_type']} at ${node['hourly_usd']:.3f}/h while both "
                 "revisions run")
    if plan.needs_consent:
        out.confirm("Recreate the endpoint (it is down until the new revision is ready)?",
                    refusal="the plan is a recreate: the endpoint is down until the new revision is ready",
                    hint="pass --allow-downtime (or set deploy.allow_downtime: true), or free a GPU for a surge")


def dry_run_plan(app, documents: list[dict], image: str) -> dict | None:
    """The plan a real deploy would follow, from the cluster (reads only); None, with a warning, without one."""
    from llmctl.actions.rollout import capacity
    from llmctl.actions.rollout.planner import SurgeRefused
    from llmctl.actions.rollout.update import prepare
    from llmctl.errors import LlmctlError

    out = app.output
    try:
        update = prepare(app.kube(), app.config, app.names, documents, image,
                         node_group=lambda: capacity.node_group(app.aws, app.config, app.names))
    except SurgeRefused:
        raise
    except LlmctlError as exc:
        out.warn(f"no rollout plan: the cluster cannot be read ({exc.message})")
        return None
    if update.plan is None:
        out.info(f"revision {update.record.number} already serves this image, model and engine settings")
        return None
    out.info(f"plan: revision {update.record.number}: {update.plan.strategy}: {update.plan.reason}")
    return update.plan.to_dict()


def follow_rollout(app, image: str, timeout: float | None, show_api_key: bool = False, skip_gate: bool = False,
                   **extra) -> None:
    """Run the planned rollout with its live display and render the outcome (`deploy` and `rollback`);
    `extra` goes to the action (a recorded revision's `documents`, `rollback_of`). The promotion gate
    (`deploy.gate`) judges the new pod unless `skip_gate`."""
    from llmctl.actions import deploy as actions
    from llmctl.actions.rollout import capacity
    from llmctl.actions.gate import run_gate
    from llmctl.actions.rollout.run import deploy as run_deploy
    from llmctl.ui.gate import gate_progress, render_gate
    from llmctl.ui.rollout import RolloutDisplay, render_timeline

    cfg, names, out = app.config, app.names, app.output

    def gate(url: str, api_key: str, baseline: dict | None):
        out.info(f"promotion gate on the new pod ({url}, a port-forward; no traffic yet):")
        return run_gate(url, api_key=api_key, model=cfg.model.served_name, gate=cfg.deploy.gate, baseline=baseline,
                        on_check=gate_progress(out))
    exposed = actions.exposures.exposure(cfg)
    arn = actions.role_arn(app.aws, names)
    from llmctl.actions.adapter_env import with_discovered

    cfg = with_discovered(cfg, app.aws.s3)  # every adapter pushed beside the model is served
    # a rollback applies its recorded Deployment, annotation and all (`llmctl rollback` checks the weights)
    digest = None if "documents" in extra else model_digest(app, cfg.model.bucket, cfg.model.prefix)
    kube = app.kube()
    display = RolloutDisplay(out)

    def on_applied() -> None:
        if cfg.deploy.replicas:
            out.info("rollout:")
            display.start()

    try:
        outcome = run_deploy(cfg, names, kube, image=image, role_arn=arn,
                             timeout_s=timeout or cfg.deploy.startup_timeout_s,
                             report=out.report, emit=display, on_applied=on_applied,
                             on_plan=lambda update: show_plan(out, update),
                             node_group=lambda: capacity.node_group(app.aws, cfg, names),
                             scale=capacity.scaler(app.aws, names), release=capacity.releaser(app.aws),
                             say=out.info,
                             gate=None if skip_gate else gate,
                             cold_start_s=app.state.get("cold_start_s"), manifest_digest=digest,
                             **extra)
    finally:
        display.stop()
    if outcome.timeline is not None and outcome.timeline.total_s:  # scale to zero's lead and hold times
        app.state.set("cold_start_s", round(outcome.timeline.total_s, 1))
    data = outcome.to_dict(show_api_key=show_api_key)
    data["secret"] = f"{names.namespace}/{names.api_key_secret}"

    def render(data: dict) -> None:
        if data["revision"]:
            rev = data["revision"]
            out.print(f"revision {rev['number']} serves ({rev['strategy']}; image {rev['image']})", markup=False)
        if data["revision"] and data["revision"]["gate"]:
            render_gate(out, data["revision"]["gate"])
        if outcome.timeline is not None:
            render_timeline(out, outcome.timeline)
        elif data["ready_replicas"]:
            out.print(f"{data['ready_replicas']} pod(s) already ready: nothing to roll out")
        if not data["changed"]:
            out.print("no changes: every object is up to date")
        if data["endpoint"] and exposed.load_balancer:
            out.print(f"endpoint: {data['endpoint']}")
        elif data["endpoint"]:
            out.print(f"endpoint: {data['endpoint']} (in the cluster; `llmctl endpoint` forwards it to 127.0.0.1)")
        if data["smoke"]:
            smoke = data["smoke"]
            out.print(f"smoke request: HTTP {smoke['status']} in {smoke['latency_s']:.2f}s: {smoke['text']!r}",
                      markup=False)
        if show_api_key:
            out.print(f"api key: {data['api_key']}", markup=False)
        else:
            out.print(f"api key: in Secret {data['secret']} (`llmctl deploy --show-api-key` prints it)")

    out.result(data, render)
