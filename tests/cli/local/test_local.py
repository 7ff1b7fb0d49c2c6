"""`llmctl local up | status | down` with the real embedded S3 and the real vLLM CPU engine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

CONFIG = """\
project:
  name: localdemo
model:
  served_name: tiny-llama
  max_model_len: 512
server:
  max_concurrent_requests: 8
  max_queued_requests: 8
  drain_timeout_s: 20
"""


def _marked_processes(state_root: Path) -> list[int]:
    """Live processes started by llmctl for this state folder (found by their env marker)."""
    marker = f"LLMCTL_PROCESS={state_root.resolve()}/".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if marker in environ and state != "Z":
            pids.append(int(entry))
    return pids


def _complete(url: str, key: str, prompt: str = "the model serves") -> dict:
    body = json.dumps({"model": "tiny-llama", "prompt": prompt, "max_tokens": 8}).encode()
    request = urllib.request.Request(
        f"{url}/v1/completions", data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.mark.engine
def test_local_lifecycle_up_request_bench_down(llmctl):
    llmctl.write_config(CONFIG)
    state_root = llmctl.cwd / ".llmctl" / "local"
    subprocess.run(["git", "init", "-q", str(llmctl.cwd)], check=True)
    try:
        up = llmctl("local", "up", "-o", "json", timeout=600)
        assert up.returncode == 0, up.stderr
        endpoint = json.loads(up.stdout)
        assert endpoint["url"].startswith("http://127.0.0.1:")
        phases = [p["phase"] for p in endpoint["timeline"]["phases"]]
        assert phases == ["Downloading model", "Loading engine"]
        assert "Ready" in up.stderr and "Downloading model" in up.stderr

        reply = _complete(endpoint["url"], endpoint["api_key"])
        assert reply["choices"][0]["text"] is not None and reply["usage"]["completion_tokens"] >= 1
        # /metrics is on the server's own metrics listener, as in a pod
        assert endpoint["metrics_url"].startswith("http://127.0.0.1:") and endpoint["metrics_url"] != endpoint["url"]
        with urllib.request.urlopen(f"{endpoint['metrics_url']}/metrics", timeout=10) as response:
            assert b'vllm_requests_total{' in response.read()  # the listener serves the series

        again = json.loads(llmctl("local", "up", "-o", "json", check=True).stdout)
        assert again["already_running"] is True and again["url"] == endpoint["url"]
        assert len(_marked_processes(state_root)) >= 2

        status = json.loads(llmctl("local", "status", "-o", "json", check=True).stdout)
        assert status["running"] and status["ready"] and status["url"] == endpoint["url"]
        assert status["api_key"] == "(hidden: --show-api-key)"
        shown = json.loads(llmctl("local", "status", "--show-api-key", "-o", "json", check=True).stdout)
        assert shown["api_key"] == endpoint["api_key"]
        # The key lives in .llmctl/: private, and never in `git add .`
        assert (llmctl.cwd / ".llmctl" / "localdemo.json").stat().st_mode & 0o777 == 0o600
        untracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=llmctl.cwd,
                                   capture_output=True, text=True, check=True).stdout
        assert untracked.split() == ["??", "llmctl.yaml"]

        bench = llmctl("bench", "--num-prompts", "6", "--concurrency", "2", "--input-len", "16", "--output-len", "8",
                       "--output-json", str(llmctl.cwd / "bench.json"), timeout=300)
        assert bench.returncode == 0, bench.stderr
        result = json.loads((llmctl.cwd / "bench.json").read_text())
        assert result["completed"] == 6 and result["output_throughput"] > 0
        assert result["llmctl"]["crosscheck"]["status"] == "ok"  # it read the metrics listener
        # a tiny CPU model is not graded against the seed's 7B-on-T4 targets
        assert "Reference targets (Llama-2-7B on a T4) not shown: this endpoint serves tiny-llama" in " ".join(bench.stdout.split())
        assert result["llmctl"]["reference_checks"] == [] and 0 <= result["tpot_requests"] <= 6
        assert f"{result['tpot_requests']} of 6 requests" in bench.stdout
    finally:
        down = llmctl("local", "down", "-o", "json", timeout=120)
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["stopped"] == {"server": True, "s3": True}
    assert _marked_processes(state_root) == []
    status = json.loads(llmctl("local", "status", "-o", "json", check=True).stdout)
    assert status["running"] is False
    assert "nothing was running" in llmctl("local", "down", check=True).stdout


def test_busy_port_is_refused_before_anything_starts(llmctl):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        done = llmctl("local", "up", "--port", str(busy))
    assert done.returncode == 2
    assert f"--port {busy}: already in use" in done.stderr and "Traceback" not in done.stderr
    assert _marked_processes(llmctl.cwd / ".llmctl" / "local") == []
