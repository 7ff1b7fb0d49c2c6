"""Start-up validation (one line, non-zero exit) and the SIGTERM drain on a second, short-lived server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import httpx
import pytest

from tests.fixtures.server import REPO, running_server, server_env, wait_for


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
def test_engine_rejects_a_max_model_len_beyond_the_model(tiny_model_dir):
    result = run_server_expecting_failure(server_env(tiny_model_dir, 1, "k", MAX_MODEL_LEN="99999"))
    assert result.returncode == 2
    assert "server: engine configuration rejected" in result.stderr and "max_model_len" in result.stderr


@pytest.mark.engine
def test_sigterm_drains_in_flight_requests_then_exits_0(tiny_model_dir, tmp_path):
    max_tokens = 500
    with running_server(tiny_model_dir, tmp_path / "drain.log", DRAIN_TIMEOUT_S="120") as server:
        result: dict = {}

        def long_stream():
            with httpx.stream("POST", f"{server.url}/generate", headers=server.headers, timeout=300,
                              json={"prompt": "drain", "max_tokens": max_tokens, "ignore_eos": True, "stream": True}) as r:
                lines = [line for line in r.iter_lines() if line.startswith("data: ")]
            result["final"] = json.loads(lines[-2][len("data: "):])

        worker = threading.Thread(target=long_stream)
        with server.engine_paused():
            worker.start()
            wait_for(lambda: server.metric("vllm_active_requests") >= 1, "the request to be admitted", 60)

            server.process.terminate()  # SIGTERM to the server process only, as the kubelet does

            def ready_status():
                response = httpx.get(f"{server.url}/ready", timeout=10)
                return response if response.status_code == 503 else None

            ready = wait_for(ready_status, "/ready to turn 503 after SIGTERM", 30)
            assert ready.json()["status"] == "draining"
            refused = httpx.post(f"{server.url}/generate", headers=server.headers,
                                 json={"prompt": "x", "max_tokens": 1})
            assert refused.status_code == 503 and refused.json()["error"]["type"] == "service_unavailable"
            assert server.metric("vllm_active_requests") == 1

        worker.join(240)
        assert result["final"]["tokens_generated"] == max_tokens and result["final"]["finish_reason"] == "length"
        assert server.process.wait(60) == 0
        log = server.log_tail(200000)
        assert '"in_flight": 1' in log.split('"msg": "draining"')[1][:200]
        assert '"msg": "drained"' in log
