"""The vLLM seam without an engine: options through vLLM's own parser, and the route table.

Imports vLLM (some seconds) but starts no engine. When vLLM moves, these are the first tests to run.
"""

from __future__ import annotations

import pytest

from server.settings import SettingsError, load_settings

vllm_seam = pytest.importorskip("server.vllm_seam")


def settings(model_dir, **env: str):
    return load_settings({"MODEL_PATH": str(model_dir), "SERVED_MODEL_NAME": "tiny-llama", **env})


def test_typed_settings_and_extra_args_become_one_vllm_namespace(tiny_model_dir):
    args = vllm_seam.parse_args(settings(
        tiny_model_dir, MAX_MODEL_LEN="512", DTYPE="float32", ENFORCE_EAGER="false", TOOL_CALL_PARSER="hermes",
        VLLM_EXTRA_ARGS="""--structured-outputs-config '{"backend": "xgrammar"}' --max-logprobs 5 --enable-prefix-caching""",
    ))
    assert (args.model, args.served_model_name, args.max_model_len, args.dtype) == (str(tiny_model_dir), ["tiny-llama"], 512, "float32")
    assert args.enforce_eager is False and args.enable_auto_tool_choice and args.tool_call_parser == "hermes"
    assert args.structured_outputs_config.backend == "xgrammar" and args.max_logprobs == 5 and args.enable_prefix_caching
    assert args.port == 8000 and not args.disable_log_stats  # vLLM's stats feed the vllm:* series


def test_unset_typed_settings_leave_vllm_defaults(tiny_model_dir):
    args = vllm_seam.parse_args(settings(tiny_model_dir))
    default = vllm_seam._parser().parse_args([])
    for dest in ("max_model_len", "dtype", "gpu_memory_utilization", "tensor_parallel_size", "max_num_seqs",
                 "enforce_eager", "load_format", "enable_lora", "tool_call_parser", "reasoning_parser"):
        assert getattr(args, dest) == getattr(default, dest), dest


@pytest.mark.parametrize(("env", "message"), [
    ({"VLLM_EXTRA_ARGS": "--no-such-option=3"}, "VLLM_EXTRA_ARGS: unrecognized arguments: --no-such-option=3"),
    ({"VLLM_EXTRA_ARGS": "--max-num-batched-tokens lots"}, "VLLM_EXTRA_ARGS: argument --max-num-batched-tokens: invalid"),
    ({"DTYPE": "float32", "VLLM_EXTRA_ARGS": "--dtype=half"}, "VLLM_EXTRA_ARGS sets --dtype, which DTYPE already sets"),
    ({"MAX_MODEL_LEN": "512", "VLLM_EXTRA_ARGS": "--max_model_len 256"}, "sets --max-model-len, which MAX_MODEL_LEN"),
    ({"TOOL_CALL_PARSER": "hermes", "VLLM_EXTRA_ARGS": "--tool-call-parser pythonic"},
     "sets --tool-call-parser, which TOOL_CALL_PARSER already sets"),
    ({"VLLM_EXTRA_ARGS": "--port 9000"}, "sets --port, which PORT already sets"),
    ({"VLLM_EXTRA_ARGS": "--served-model-name other"}, "which SERVED_MODEL_NAME already sets"),
    ({"VLLM_EXTRA_ARGS": "/some/other/model"}, "sets the positional model argument: not allowed, the model is MODEL_PATH"),
    ({"VLLM_EXTRA_ARGS": "--api-key secret"}, "sets --api-key: not allowed, llmctl checks API_KEY"),
    ({"VLLM_EXTRA_ARGS": "--disable-log-stats"}, "sets --disable-log-stats: not allowed"),
    ({"VLLM_EXTRA_ARGS": "--ssl-keyfile /k.pem"}, "sets --ssl-keyfile, an option of vLLM's own HTTP launcher"),
    ({"VLLM_EXTRA_ARGS": "--api-server-count 2"}, "sets --api-server-count, an option of vLLM's own HTTP launcher"),
    ({"MAX_LORA_RANK": "7", "ENABLE_LORA": "true"}, "MAX_LORA_RANK: vLLM rejects --max-lora-rank 7: argument --max-lora-rank: invalid choice"),
    ({"TOOL_CALL_PARSER": "nope"}, "TOOL_CALL_PARSER='nope' is not a parser vLLM knows (one of: "),
    ({"REASONING_PARSER": "nope"}, "REASONING_PARSER='nope' is not a parser vLLM knows"),
    ({"VLLM_EXTRA_ARGS": "--tool-call-parser nope"}, "VLLM_EXTRA_ARGS --tool-call-parser='nope' is not a parser"),
    ({"VLLM_EXTRA_ARGS": "--enable-auto-tool-choice"}, "vLLM rejects the options: Error: --enable-auto-tool-choice requires --tool-call-parser"),
])
def test_bad_options_are_one_line_naming_the_setting(tiny_model_dir, env, message):
    with pytest.raises(SettingsError) as caught:
        vllm_seam.parse_args(settings(tiny_model_dir, **env))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_engine_config_checks_lora_dtype_on_cpu(tiny_model_dir):
    lora = {"ENABLE_LORA": "true", "MAX_LORA_RANK": "8", "MAX_MODEL_LEN": "256", "ENFORCE_EAGER": "true"}
    with pytest.raises(SettingsError, match="ENABLE_LORA on the CPU engine needs DTYPE=float32"):
        vllm_seam.engine_config(vllm_seam.parse_args(settings(tiny_model_dir, DTYPE="bfloat16", **lora)))
    config = vllm_seam.engine_config(vllm_seam.parse_args(settings(tiny_model_dir, DTYPE="float32", **lora)))
    assert config.lora_config.max_lora_rank == 8 and config.model_config.max_model_len == 256


def test_every_route_of_vllms_app_is_classified(tiny_model_dir, monkeypatch):
    """The route table in vllm_seam covers exactly what vLLM's app serves (its optional routers on):
    a vLLM upgrade that adds a route fails here until it is classified (generation or not)."""
    monkeypatch.setenv("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "true")
    args = vllm_seam.parse_args(settings(tiny_model_dir, VLLM_EXTRA_ARGS="--enable-tokenizer-info-endpoint"))
    app = vllm_seam.build_app(args, ("generate",), None)
    served = {route.path for route in app.routes if getattr(route, "path", None)}
    known = vllm_seam.GENERATION_ROUTES | vllm_seam.OTHER_ROUTES
    assert served - known == set(), "new vLLM routes: add them to GENERATION_ROUTES or OTHER_ROUTES"
    assert {"/v1/completions", "/v1/chat/completions", "/v1/responses", "/v1/messages", "/tokenize",
            "/v1/load_lora_adapter"} <= served
    assert not vllm_seam.GENERATION_ROUTES & vllm_seam.OTHER_ROUTES


def test_our_errors_have_vllms_error_shape():
    from server.errors import ApiError

    body = ApiError(429, "busy", type="rate_limit_error").body()
    assert vllm_seam.ErrorResponse.model_validate(body).model_dump() == body
