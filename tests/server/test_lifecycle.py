"""Start-up validation: one line on stderr, exit 2, before anything is loaded.

(The SIGTERM drain runs on the second server, in test_second_engine.py; the many ways an option
can be wrong are unit-tested in test_vllm_seam.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fixtures.server import REPO, server_env


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
