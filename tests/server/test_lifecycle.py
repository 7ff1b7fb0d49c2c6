"""Start-up validation: one line on stderr, exit 2, before anything is loaded; SIGTERM while the
model loads exits at once.

(The SIGTERM drain runs on the second server, in test_second_engine.py; the many ways an option
can be wrong are unit-tested in test_vllm_seam.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from llmctl.procs import free_port
from tests.fixtures.server import REPO, server_env, stop_server, wait_for


def run_server_expecting_failure(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"MODEL_PATH": "/nonexistent/model"}, "MODEL_PATH=/nonexistent/model has no config.json"),
        ({"MAX_MODEL_LEN": "lots"}, "MAX_MODEL_LEN='lots' is not an integer"),
        ({"GPU_MEMORY_UTILIZATION": "1.5"}, "GPU_MEMORY_UTILIZATION=1.5 must be in (0.0, 1.0]"),
        ({"DTYPE": "float8"}, "DTYPE='float8' must be one of"),
        ({"ENFORCE_EAGER": "maybe"}, "ENFORCE_EAGER='maybe' must be true or false"),
        ({"MODEL_PATH": "s3://bucket/model"}, "set LOAD_FORMAT=runai_streamer"),
    ],
)
def test_invalid_settings_exit_2_with_one_line(tiny_model_dir, overrides, reason):
    result = run_server_expecting_failure(server_env(tiny_model_dir, 1, "k", **overrides))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert reason in result.stderr


def test_a_partial_download_is_never_served(tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for f in tiny_model_dir.iterdir():
        (model / f.name).write_bytes(f.read_bytes())
    (model / "llmctl-manifest.json").write_text(json.dumps({"version": 1, "files": []}))
    result = run_server_expecting_failure(server_env(model, 1, "k"))
    assert result.returncode == 2 and "partial download" in result.stderr


@pytest.mark.engine
@pytest.mark.parametrize(("overrides", "reason"), [
    ({"MAX_MODEL_LEN": "99999"}, "server: engine configuration rejected: "),
    ({"VLLM_EXTRA_ARGS": "--max-num-seqs 4 --no-such-option"}, "server: VLLM_EXTRA_ARGS: unrecognized arguments: --no-such-option"),
], ids=["engine-config", "extra-args"])
def test_vllm_rejects_at_start_up_in_one_line(tiny_model_dir, overrides, reason):
    result = run_server_expecting_failure(server_env(tiny_model_dir, 1, "k", **overrides))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert reason in result.stderr


@pytest.mark.engine
def test_sigterm_during_model_load_exits_within_seconds(tiny_model_dir, tmp_path):
    """The load runs in a thread that cannot be interrupted; SIGTERM must not wait for it (the
    pod's grace period would run out): the engine processes are stopped and the server exits 0."""
    import psutil

    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "server"], cwd=REPO, env=server_env(tiny_model_dir, port, "k"),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def loading_with_an_engine_process():
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).json().get("status")
            except httpx.HTTPError:
                return False
            return status == "loading" and psutil.Process(proc.pid).children()

        engines = wait_for(loading_with_an_engine_process, "the engine process to start loading", 180)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        took = time.monotonic() - sent
        assert code == 0 and took < 10, (code, took)
        assert '"msg": "stopped during model load"' in log.read_text()
        gone, alive = psutil.wait_procs(engines, timeout=5)
        assert not alive, alive
    finally:
        stop_server(proc)
