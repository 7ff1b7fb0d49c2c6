"""Pure parts of the server: settings validation, backpressure, the error shape, the one seam."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from server.admission import Admission
from server.errors import ApiError, error_body, status_label
from server.settings import SettingsError, load_settings


def test_settings_defaults_and_names(tiny_model_dir):
    s = load_settings({"MODEL_PATH": str(tiny_model_dir)})
    assert s.port == 8000 and s.served_model_name == "tiny-llama" and s.api_key is None
    assert s.max_model_len is None and s.dtype is None and s.load_format is None  # unset: vLLM's defaults
    s = load_settings({"MODEL_PATH": "s3://b/p", "LOAD_FORMAT": "runai_streamer", "ENFORCE_EAGER": "yes",
                       "MAX_MODEL_LEN": "512", "SERVED_MODEL_NAME": "m"})
    assert (s.model_path, s.enforce_eager, s.max_model_len, s.served_model_name) == ("s3://b/p", True, 512, "m")


def test_typed_settings_become_vllm_serve_options(tiny_model_dir, tmp_path):
    adapter = tmp_path / "sql"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    s = load_settings({"MODEL_PATH": str(tiny_model_dir), "HOST": "127.0.0.1", "DTYPE": "float32", "ENFORCE_EAGER": "no",
                       "TOOL_CALL_PARSER": "hermes", "REASONING_PARSER": "deepseek_r1", "ENABLE_LORA": "true",
                       "MAX_LORAS": "2", "MAX_LORA_RANK": "16", "LORA_MODULES": f"sql={adapter} remote=s3://b/a",
                       "VLLM_EXTRA_ARGS": """--max-logprobs 5 --structured-outputs-config '{"backend": "xgrammar"}'"""})
    assert dict(s.vllm_options()) == {
        "MODEL_PATH": ["--model", str(tiny_model_dir)], "SERVED_MODEL_NAME": ["--served-model-name", "tiny-llama"],
        "HOST": ["--host", "127.0.0.1"], "PORT": ["--port", "8000"], "DTYPE": ["--dtype", "float32"],
        "REASONING_PARSER": ["--reasoning-parser", "deepseek_r1"], "MAX_LORAS": ["--max-loras", "2"],
        "MAX_LORA_RANK": ["--max-lora-rank", "16"], "ENFORCE_EAGER": ["--no-enforce-eager"],
        "ENABLE_LORA": ["--enable-lora"],
        "TOOL_CALL_PARSER": ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"],
        "LORA_MODULES": ["--lora-modules", f"sql={adapter}", "remote=s3://b/a"],
    }
    assert s.vllm_extra_args == ("--max-logprobs", "5", "--structured-outputs-config", '{"backend": "xgrammar"}')


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "MODEL_PATH is not set"),
        ({"TENSOR_PARALLEL_SIZE": "0"}, "TENSOR_PARALLEL_SIZE=0 must be between 1 and 64"),
        ({"MAX_QUEUED_REQUESTS": "-1"}, "MAX_QUEUED_REQUESTS=-1 must be >= 0"),
        ({"PORT": "70000"}, "PORT=70000 must be between 1 and 65535"),
        ({"LOAD_FORMAT": "magic"}, "LOAD_FORMAT='magic' must be one of"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='LOUD' must be one of"),
        ({"VLLM_EXTRA_ARGS": "--chat-template '{{ x }}"}, "VLLM_EXTRA_ARGS=\"--chat-template '{{ x }}\" cannot be split"),
        ({"ENABLE_LORA": "sure"}, "ENABLE_LORA='sure' must be true or false"),
        ({"MAX_LORAS": "2"}, "MAX_LORAS set but ENABLE_LORA is not true"),
        ({"ENABLE_LORA": "true", "LORA_MODULES": "sql"}, "LORA_MODULES entry 'sql' must be name=path"),
        ({"ENABLE_LORA": "true", "LORA_MODULES": "sql=/nowhere"}, "LORA_MODULES entry 'sql=/nowhere': /nowhere has no adapter_config.json"),
        ({"LORA_MODULES": "sql=s3://b/a"}, "LORA_MODULES set but ENABLE_LORA is not true"),
    ],
)
def test_settings_errors_name_the_variable(tiny_model_dir, env, message):
    env = {"MODEL_PATH": str(tiny_model_dir), **env} if env else env
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)


def test_admission_queues_then_rejects_with_retry_after():
    async def scenario():
        admission = Admission(max_concurrent=1, max_queued=1, retry_after_s=3)
        release = await admission.acquire()
        queued = asyncio.ensure_future(admission.acquire())
        await asyncio.sleep(0)
        assert (admission.active, admission.waiting) == (1, 1)
        with pytest.raises(ApiError) as rejected:
            await admission.acquire()
        assert rejected.value.status == 429 and rejected.value.headers == {"Retry-After": "3"}
        release()
        release()  # idempotent
        second = await queued
        assert (admission.active, admission.waiting) == (1, 0)
        second()
        assert await admission.wait_idle(0.1)

    asyncio.run(scenario())


def test_error_shape_and_outcome_labels():
    assert error_body("m", "t", 429) == {"error": {"message": "m", "type": "t", "param": None, "code": 429}}
    assert [status_label(s) for s in (200, 400, 401, 404, 413, 429, 500, 503)] == [
        "success", "invalid", "unauthorized", "invalid", "invalid", "rejected", "error", "unavailable"]


def test_only_the_seam_imports_vllm():
    """Moving to a new vLLM version touches server/vllm_seam.py only."""
    importers = set()
    for path in (Path(__file__).resolve().parents[2] / "server").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(name.split(".")[0] in ("vllm", "torch") for name in names):
                importers.add(path.name)
    assert importers == {"vllm_seam.py"}
