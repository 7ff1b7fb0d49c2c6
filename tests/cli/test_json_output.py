"""One `--output json` contract for every command (docs/cli.md): stdout is exactly one JSON
document, the result on success and `{"error", "fix", "exit_code", ...}` on failure.

Every command runs here with `-o json` the way a user runs it: against moto (CodeBuild through
the build simulator), the fake eksctl and the Kubernetes double. `local up` starts the vLLM
engine and is checked in tests/cli/local; `logs --follow` streams JSON Lines, checked below.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading

from typer.main import get_command

from llmctl.cli.main import app
from tests.cli.build.conftest import codebuild_sim  # noqa: F401 - CodeBuild that pushes an image
from tests.cli.deploy.conftest import stub_endpoint  # noqa: F401 - the smoke request's target

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llmctl/demo@sha256:" + "ab" * 32
# Every command the tests below run with -o json; a new command fails `test_the_list_is_every_command`
# until a test here runs it.
CHECKED = {
    "init", "doctor", "cost", "deploy", "status", "endpoint", "logs", "bench", "dashboard", "teardown", "config show",
    "config validate", "config schema", "model upload", "build", "build status", "build logs", "cluster up",
    "cluster status", "cluster render", "cluster down", "monitoring up", "monitoring down", "monitoring render",
    "local status", "local down",
}
# Commands this module does not run, and where their JSON is checked instead.
ELSEWHERE = {"local up": "tests/cli/local/test_local.py (starts the vLLM engine)",
             "history": "tests/cli/deploy/test_revisions.py (after deploys that make revisions)",
             "rollback": "tests/cli/deploy/test_revisions.py (after deploys that make revisions)",
             **dict.fromkeys(("adapter push", "adapter list", "adapter rm"), "tests/cli/adapter/test_push.py")}


def run_json(llmctl, *args: str, code: int | None = 0, error: bool | None = None, timeout: float = 300):
    """Run `llmctl ARGS` (with `-o json` before or after the command); stdout must be one JSON document.

    `code`: the exit status (None: any); `error`: the document is the error object (default: when
    `code` is not 0; a command whose result itself reports the failure exits 1 with its result)."""
    done = llmctl(*args, timeout=timeout)
    assert code is None or done.returncode == code, \
        f"llmctl {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"llmctl {' '.join(args)}: stdout is not one JSON document ({exc}):\n{done.stdout}") from None
    if error if error is not None else bool(code):
        assert {"error", "fix", "exit_code"} <= set(data) and data["exit_code"] == code, data
        assert f"error: {data['error'].split(' (and ')[0]}" in done.stderr or data.get("problems"), done.stderr
    return data


def _all_commands() -> set[str]:
    root = get_command(app)
    names = set()
    for name in root.list_commands(None):
        command = root.get_command(None, name)
        subcommands = getattr(command, "commands", {})
        names |= {f"{name} {sub}" for sub in subcommands} or {name}
        if subcommands and getattr(command, "invoke_without_command", False):
            names.add(name)  # `build` runs on its own too
    return names


def test_commands_without_a_cloud(llmctl, tmp_path):
    assert run_json(llmctl, "-o", "json", "init", "--name", "demo") == {"path": "llmctl.yaml"}
    assert run_json(llmctl, "init", "-o", "json", code=2)["error"] == "llmctl.yaml already exists"
    assert run_json(llmctl, "config", "show", "-o", "json")["project"]["name"] == "demo"
    assert run_json(llmctl, "-o", "json", "config", "validate")["valid"] is True
    assert "properties" in run_json(llmctl, "-o", "json", "config", "schema")
    assert run_json(llmctl, "-o", "json", "cost")["mode"] == "estimate"
    for args in (["-o", "json", "cluster", "render"], ["cluster", "render", "-o", "json"]):
        (cluster,) = run_json(llmctl, *args)["documents"]
        assert cluster["kind"] == "ClusterConfig" and cluster["metadata"]["name"] == "demo"
    (daemonset,) = run_json(llmctl, "cluster", "render", "--device-plugin", "-o", "json")["documents"]
    assert daemonset["kind"] == "DaemonSet"
    kinds = {d["kind"] for d in run_json(llmctl, "-o", "json", "monitoring", "render")["documents"]}
    assert {"Deployment", "ConfigMap", "Service"} <= kinds and "Secret" not in kinds
    files = run_json(llmctl, "monitoring", "render", "--dir", str(tmp_path / "m"), "-o", "json")["files"]
    assert files and all((tmp_path / "m" / f.rsplit("/", 1)[-1]).exists() for f in files)
    assert run_json(llmctl, "-o", "json", "local", "status")["running"] is False
    assert not any(run_json(llmctl, "-o", "json", "local", "down")["stopped"].values())

    # failures: the error object, whoever finds the problem
    llmctl.write_config("deploy:\n  replica: 2\nmodel:\n  max_model_len: lots\n")
    bad = run_json(llmctl, "-o", "json", "config", "validate", code=2)
    assert [(p["source"], p["field"]) for p in bad["problems"]] == [("llmctl.yaml line 2", "deploy.replica"),
                                                                   ("llmctl.yaml line 4", "model.max_model_len")]
    assert all(p["fix"] for p in bad["problems"])
    llmctl.write_config("project:\n  name: demo\n")
    assert "No such command" in run_json(llmctl, "-o", "json", "no-such-command", code=2)["error"]
    assert "No such option" in run_json(llmctl, "cluster", "render", "-o", "json", "--bogus", code=2)["error"]
    assert run_json(llmctl, "-o", "json", "-c", str(tmp_path / "nope.yaml"), "cost", code=2)["error"] == \
        f"-c/--config {tmp_path / 'nope.yaml'}: no such config file"
    assert run_json(llmctl, "deploy", "--dry-run", "--image", "not a valid image", "-o", "json", code=2)[
        "problems"][0]["source"] == "--image"
    assert "Kubernetes credentials" in run_json(llmctl, "-o", "json", "logs", code=1)["error"]


def test_every_command_through_a_lifecycle(llmctl, aws, kube, fake_eksctl, gpu_quota, codebuild_sim, stub_endpoint):  # noqa: F811
    llmctl.write_config(f"project:\n  name: demo\nmodel:\n  bucket: demo-models\n  prefix: tiny\nbuild:\n  context: ctx\n"
                        f"server:\n  port: {stub_endpoint.port}\n")
    ctx = llmctl.cwd / "ctx"
    (ctx / "server").mkdir(parents=True)
    (ctx / "Dockerfile").write_text('FROM python:3.11-slim\nCOPY server/ /app/server/\nCMD ["python", "-m", "server"]\n')
    (ctx / "server" / "__main__.py").write_text("print('serving')\n")
    model = llmctl.cwd / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                                                   "vocab_size": 100, "torch_dtype": "float16"}))
    (model / "model.safetensors").write_bytes(b"\0" * 1024)
    (model / "tokenizer.json").write_text("{}")
    aws.client("s3").create_bucket(Bucket="demo-models")
    kube.on_load_balancer(create=lambda service: {"ip": "127.0.0.1"})
    kube.expose("app.kubernetes.io/name=vllm,app.kubernetes.io/instance=demo", stub_endpoint.port, ("127.0.0.1", stub_endpoint.port))  # the `cluster` exposure
    llmctl.env["KUBECONFIG"] = str(kube.kubeconfig_path)

    doctor = run_json(llmctl, "-o", "json", "doctor", code=None, error=False)  # a failed check: its result, exit 1
    assert doctor["checks"][0] == {"name": "config", "status": "pass", "detail": "deployment 'demo'", "fix": ""}
    uploaded = run_json(llmctl, "model", "upload", str(model), "-o", "json")
    assert uploaded["manifest_uri"] == "s3://demo-models/tiny/llmctl-manifest.json"
    assert run_json(llmctl, "build", "--dry-run", "-o", "json")["status"] == "PLANNED"
    built = run_json(llmctl, "-o", "json", "build", timeout=240)
    assert built["status"] == "SUCCEEDED" and "@sha256:" in built["image"]
    assert run_json(llmctl, "-o", "json", "build", "status")["status"] == "SUCCEEDED"
    assert run_json(llmctl, "-o", "json", "build", "logs")["status"] == "SUCCEEDED"

    gpu_quota["L-DB2E81BA"] = 0.0  # no G-instance quota: pre-flight fails, and says so in the one document
    failed = run_json(llmctl, "-o", "json", "cluster", "up", "--yes", code=1)
    assert any(c["status"] == "fail" for c in failed["result"]["preflight"]["checks"])
    gpu_quota["L-DB2E81BA"] = 64.0
    assert run_json(llmctl, "-o", "json", "cluster", "up", "--dry-run")["dry_run"] is True
    assert run_json(llmctl, "-o", "json", "cluster", "up", "--yes", timeout=240)["cluster"] == "demo"
    assert run_json(llmctl, "cluster", "status", "-o", "json")["exists"] is True

    assert run_json(llmctl, "-o", "json", "deploy", "--dry-run")["dry_run"] is True
    deployed = run_json(llmctl, "-o", "json", "deploy", "--timeout", "60", timeout=240)
    assert deployed["ready_replicas"] == 1
    assert run_json(llmctl, "-o", "json", "status")["deployed"] is True
    forwarded = _forwarding_document(llmctl, "endpoint")
    assert forwarded["url"].startswith("http://127.0.0.1:") and forwarded["pod"]
    assert isinstance(run_json(llmctl, "logs", "-o", "json")["lines"], list)
    assert run_json(llmctl, "-o", "json", "cost", "--running")["mode"] == "running"
    dead = run_json(llmctl, "-o", "json", "bench", "--url", "http://127.0.0.1:9", "-n", "2", "--warmup", "0",
                    code=1, error=True)  # nothing listens: one error before any request
    assert "cannot reach http://127.0.0.1:9" in dead["error"] and dead["fix"]

    assert run_json(llmctl, "-o", "json", "monitoring", "up", "--dry-run")["dry_run"] is True
    assert run_json(llmctl, "-o", "json", "monitoring", "up")["objects"]
    shown = _forwarding_document(llmctl, "dashboard", "--no-browser")
    assert shown["url"].startswith("http://127.0.0.1:") and shown["service"]
    assert run_json(llmctl, "-o", "json", "monitoring", "down")["objects"]

    assert run_json(llmctl, "-o", "json", "cluster", "down", "--dry-run")["plan"]
    plan = run_json(llmctl, "-o", "json", "teardown", "--all", "--dry-run")
    assert plan["plan"]
    done = run_json(llmctl, "-o", "json", "teardown", "--all", "--yes", timeout=300)
    assert done["verification"]["clean"] is True


def test_the_list_is_every_command():
    assert _all_commands() == CHECKED | set(ELSEWHERE)


def _forwarding_document(llmctl, *command: str) -> dict:
    """`llmctl -o json dashboard` or `endpoint`: its one document arrives while it forwards; Ctrl-C ends it."""
    proc = subprocess.Popen([sys.executable, "-m", "llmctl", "-o", "json", *command], cwd=llmctl.cwd,
                            env=llmctl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put("")], daemon=True)
    reader.start()
    forwarding = threading.Event()
    threading.Thread(target=lambda: [forwarding.set() for line in proc.stderr if "Ctrl-C to stop" in line],
                     daemon=True).start()
    text = ""
    try:
        while not text.startswith("{") or not text.endswith("}\n"):
            try:
                line = lines.get(timeout=120)
            except queue.Empty:
                raise AssertionError(f"llmctl {command[0]} printed no document within 120 s") from None
            if not line:
                raise AssertionError(f"llmctl {command[0]} exited {proc.wait(30)} before its document")
            text += line
        return json.loads(text)
    finally:
        forwarding.wait(timeout=60)  # Ctrl-C while forwarding ends the session (exit 0)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        reader.join(timeout=10)
        rest = []
        while not lines.empty():
            rest.append(lines.get())
        assert "".join(rest) == "", "nothing after the one document"
