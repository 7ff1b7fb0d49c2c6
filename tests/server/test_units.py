"""Pure parts of the server: settings validation, backpressure, the error shape, the one seam."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from server import http_limits, request_checks
from server.admission import Admission
from server.errors import ApiError, error_body, status_label
from server.settings import MAX_BODY_BYTES, SettingsError, load_settings


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


def test_limit_settings_defaults_and_errors(tiny_model_dir):
    s = load_settings({"MODEL_PATH": str(tiny_model_dir)})
    assert (s.max_connections, s.max_header_bytes, s.max_headers, s.header_timeout_s, s.idle_timeout_s) == (
        512, 32768, 100, 10.0, 5)
    assert (s.body_timeout_s, s.max_prompt_chars, s.max_stop_sequences, s.max_stop_chars) == (30.0, None, 4, 256)
    assert request_checks.limits_from(s, 1024).max_prompt_chars == 16 * 1024
    assert request_checks.limits_from(s, 10**6).max_prompt_chars == MAX_BODY_BYTES
    s = load_settings({"MODEL_PATH": str(tiny_model_dir), "MAX_PROMPT_CHARS": "5000", "HEADER_TIMEOUT_S": "2.5"})
    assert request_checks.limits_from(s, 1024).max_prompt_chars == 5000
    assert http_limits.limits_from(s).header_timeout_s == 2.5
    assert (s.max_batch_prompts, s.max_n) == (32, 16)
    batch = request_checks.limits_from(load_settings({"MODEL_PATH": str(tiny_model_dir), "MAX_BATCH_PROMPTS": "8",
                                                      "MAX_N": "2"}), 1024)
    assert (batch.max_batch_prompts, batch.max_n) == (8, 2)
    for env, message in [({"MAX_CONNECTIONS": "100"}, "MAX_CONNECTIONS=100 must be above MAX_CONCURRENT_REQUESTS"),
                         ({"HEADER_TIMEOUT_S": "0"}, "HEADER_TIMEOUT_S=0 must be in"),
                         ({"BODY_TIMEOUT_S": "soon"}, "BODY_TIMEOUT_S='soon' is not a number"),
                         ({"MAX_HEADER_BYTES": "10"}, "MAX_HEADER_BYTES=10 must be between 1024"),
                         ({"MAX_N": "0"}, "MAX_N=0 must be between 1 and 1024"),
                         ({"MAX_BATCH_PROMPTS": "5000"}, "MAX_BATCH_PROMPTS=5000 must be between 1 and 1024")]:
        with pytest.raises(SettingsError, match=message):
            load_settings({"MODEL_PATH": str(tiny_model_dir), **env})


LIMITS = request_checks.BodyLimits(max_prompt_chars=100, max_stop_sequences=4, max_stop_chars=8, max_batch_prompts=4,
                                   max_n=3)


@pytest.mark.parametrize(("body", "param", "words"), [
    ({"prompt": "x", "stop": [f"s{i}" for i in range(5)]}, "stop", "5 entries; at most 4"),
    ({"prompt": "x", "stop": ""}, "stop", "1 to 8 characters"),
    ({"prompt": "x", "stop": ["ok", ""]}, "stop", "1 to 8 characters"),
    ({"prompt": "x", "stop": "a" * 9}, "stop", "got one of 9"),
    ({"model": "m", "stop_sequences": ["a"] * 5, "messages": []}, "stop_sequences", "at most 4"),
    ({"prompt": "x", "seed": 2**64}, "seed", "does not fit in 64 bits"),
    ({"prompt": "x", "top_k": -(2**63) - 1}, "top_k", "does not fit in 64 bits"),
    ({"prompt": [1, 2, 2**70]}, "prompt", "does not fit"),
    ({"prompt": "a" * 101}, "prompt", "101 characters of text; at most 100"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a" * 60}]}] * 2}, "prompt", "at most 100"),
    ({"prompt": "x", "response_format": {"a": [[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]] * 5}}, "body", "nested"),
    ({"prompt": ["x"] * 5}, "prompt", "a batch of 5 prompts; at most 4 are allowed in one request (MAX_BATCH_PROMPTS)"),
    ({"prompt": [[1, 2]] * 5}, "prompt", "a batch of 5 prompts"),
    ({"prompt": "x", "n": 100000}, "n", "n=100000 is above the limit of 3 (MAX_N)"),
    ({"prompt": "x", "n": 2, "best_of": 4}, "best_of", "best_of=4 is above the limit of 3"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 4}, "n", "above the limit of 3"),
])
def test_body_checks_refuse_with_a_400_naming_the_field(body, param, words):
    import json

    if param == "body":
        body = b'{"prompt": "x", "x": ' + b"[" * 200 + b"]" * 200 + b"}"
    else:
        body = json.dumps(body).encode()
    error = request_checks.check_body(body, LIMITS)
    assert error is not None and error.status == 400 and error.param == param and words in error.message, error


def test_body_checks_pass_good_and_non_json_bodies():
    for body in (b"", b"not json", b'{"prompt": "x", "max_tokens": ', b"[1, 2]", b'{"prompt": [1, 2, 3, 4, 5, 6]}',
                 b'{"prompt": ["a", "b", "c", "d"], "n": 3, "best_of": 3}', b'{"prompt": "x", "n": true}',
                 b'{"prompt": "hello", "stop": ["a", "bb"], "seed": 9223372036854775807, "stream": true}'):
        assert request_checks.check_body(body, LIMITS) is None, body
    assert request_checks.check_body(b"[" * 100_000 + b"]" * 100_000, LIMITS).message.startswith("JSON nested")


def test_read_body_replays_and_times_out():
    async def scenario():
        messages = [{"type": "http.request", "body": b"ab", "more_body": True},
                    {"type": "http.request", "body": b"c", "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            await asyncio.sleep(10)

        body, replay = await request_checks.read_body(receive, 1)
        assert body == b"abc" and (await replay())["body"] == b"ab" and (await replay())["body"] == b"c"
        with pytest.raises(ApiError) as slow:
            await request_checks.read_body(receive, 0.05)
        assert slow.value.status == 408 and slow.value.param == "body"

    asyncio.run(scenario())
