"""The one place llmctl's server meets vLLM (pinned: vllm 0.32). Nothing else in server/ imports vllm.

What is vLLM's, used as is: the `vllm serve` argument parser (every option reachable and checked
by vLLM), the engine (`AsyncLLM`), and the whole OpenAI-compatible FastAPI app that `vllm serve`
builds (`build_app` + `init_app_state`: its routers, one serving object per API, its exception
handlers and middleware). What llmctl adds around it lives in app.py and middleware.py.

Moving to a new vLLM version means changing this module only: the imports below, ROUTES (the
route table test fails when vLLM adds or drops a route), LAUNCHER_OPTIONS, and the engine seams
at the bottom. docs/server.md lists the tests that prove an upgrade.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager

import torch
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.launchers.api_server.app_state import init_app_state
from vllm.entrypoints.launchers.app import build_app
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.entrypoints.openai.completion.protocol import CompletionRequest
from vllm.entrypoints.serve.engine.protocol import ErrorResponse  # noqa: F401 - for /generate and the error shape
from vllm.entrypoints.serve.lora.protocol import LoadLoRAAdapterRequest, UnloadLoRAAdapterRequest
from vllm.entrypoints.serve.utils.api_utils import (  # noqa: F401 - the last two for /generate
    cli_env_setup,
    validate_json_request,
    with_cancellation,
)
from vllm.inputs.engine import tokens_input
from vllm.platforms import current_platform
from vllm.reasoning import ReasoningParserManager
from vllm.sampling_params import RequestOutputKind, SamplingParams
from vllm.tool_parsers import ToolParserManager
from vllm.usage.usage_lib import UsageContext
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.v1.engine.async_llm import AsyncLLM

from server.metrics import CURRENT
from server.settings import Settings, SettingsError

# Every route vLLM's app registers for a generative model (with its optional routers switched on),
# by what the server does with it. Generation routes go through admission (429) and are counted
# in vllm_requests_total{endpoint}; the rest are served as they are, behind the bearer check.
GENERATION_ROUTES = frozenset({
    "/v1/completions", "/v1/chat/completions", "/v1/chat/completions/batch", "/v1/responses", "/v1/messages",
    "/invocations", "/generative_scoring", "/v1/systemone", "/inference/v1/generate", "/cohere/v2/chat",
})
OTHER_ROUTES = frozenset({
    "/health", "/metrics", "/ping", "/load", "/version", "/kv_event_sources", "/v1/models", "/tokenize",
    "/detokenize", "/tokenizer_info", "/v1/messages/count_tokens", "/v1/responses/{response_id}",
    "/v1/responses/{response_id}/cancel", "/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/adapters",
    "/adapters/{adapter_name}", "/scale_elastic_ep", "/is_scaling_elastic_ep", "/inference/v1/abort_requests",
    "/v1/chat/completions/render", "/v1/completions/render", "/v1/messages/render", "/v1/responses/render",
    "/v1/chat/completions/derender", "/v1/completions/derender",
    "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
})

# `vllm serve` options of vLLM's own HTTP launcher (uvicorn, TLS, sockets, API processes), which
# this server replaces: they would be ignored here, so they are refused.
LAUNCHER_OPTIONS = frozenset({
    "headless", "api_server_count", "grpc", "grpc_port", "uds", "uvicorn_log_level", "disable_uvicorn_access_log",
    "disable_access_log_for_endpoints", "ssl_keyfile", "ssl_certfile", "ssl_ca_certs", "enable_ssl_refresh",
    "ssl_cert_reqs", "ssl_ciphers", "h11_max_incomplete_event_size", "h11_max_header_count",
    "data_parallel_supervisor_port", "dp_supervisor_probe_interval_s", "dp_supervisor_probe_timeout_s",
    "dp_supervisor_probe_failure_threshold",
})
# Options the server sets itself, and why they cannot come from VLLM_EXTRA_ARGS.
OWNED_OPTIONS = {
    "model_tag": "the model is MODEL_PATH",
    "api_key": "llmctl checks API_KEY on every route",
    "enable_request_id_headers": "llmctl always sends X-Request-ID",
    "disable_log_stats": "/metrics serves vLLM's vllm:* series, which need the stats",
}


class _Refused(Exception):
    """Raised by the parser instead of printing usage and exiting."""


def _parser() -> FlexibleArgumentParser:
    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))

    def refuse(message: str = "", *_args) -> None:
        raise _Refused(message or "not a server option")

    parser.error = refuse  # argparse prints usage and exits; the server wants one line
    parser.exit = lambda status=0, message=None: refuse(message)
    return parser


@contextmanager
def _only_given(parser: argparse.ArgumentParser) -> Iterator[None]:
    """While inside, a parse returns only the options on the command line (no defaults)."""
    saved = [(action, action.default) for action in parser._actions]
    for action, _ in saved:
        action.default = argparse.SUPPRESS
    try:
        yield
    finally:
        for action, default in saved:
            action.default = default


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _flag(dest: str) -> str:
    return "the positional model argument" if dest == "model_tag" else f"--{dest.replace('_', '-')}"


def parse_args(settings: Settings) -> argparse.Namespace:
    """Typed settings + VLLM_EXTRA_ARGS -> the `vllm serve` namespace, through vLLM's own parser.

    A bad typed value names its variable; a bad extra option is vLLM's own message; an extra option
    that a typed setting, the server or vLLM's launcher owns is refused naming both.
    """
    parser = _parser()
    typed: dict[str, str] = {}  # dest -> the variable that sets it
    with _only_given(parser):
        for name, flags in settings.vllm_options():
            try:
                typed.update(dict.fromkeys(vars(parser.parse_args(flags)), name))
            except _Refused as exc:
                raise SettingsError(f"{name}: vLLM rejects {' '.join(flags)}: {_line(exc)}") from None
        try:
            extra = vars(parser.parse_args(list(settings.vllm_extra_args)))
        except _Refused as exc:
            raise SettingsError(f"VLLM_EXTRA_ARGS: {_line(exc)}") from None
    for dest in extra:
        if dest in typed:
            raise SettingsError(f"VLLM_EXTRA_ARGS sets {_flag(dest)}, which {typed[dest]} already sets: keep one of them")
        if dest in OWNED_OPTIONS:
            raise SettingsError(f"VLLM_EXTRA_ARGS sets {_flag(dest)}: not allowed, {OWNED_OPTIONS[dest]}")
        if dest in LAUNCHER_OPTIONS:
            raise SettingsError(f"VLLM_EXTRA_ARGS sets {_flag(dest)}, an option of vLLM's own HTTP launcher, "
                                "which llmctl's server replaces: remove it")
    argv = [flag for _, flags in settings.vllm_options() for flag in flags] + list(settings.vllm_extra_args)
    try:
        args = parser.parse_args(argv)
        validate_parsed_serve_args(args)
    except (_Refused, TypeError, ValueError) as exc:
        raise SettingsError(f"vLLM rejects the options: {_line(exc)}") from None
    _check_parsers(args, typed)
    return args


def _check_parsers(args: argparse.Namespace, typed: dict[str, str]) -> None:
    """vLLM looks parser names up only once the engine is loaded; check them now."""
    for dest, registry in (("tool_call_parser", ToolParserManager), ("reasoning_parser", ReasoningParserManager)):
        name = getattr(args, dest, None)
        known = registry.list_registered()
        if name and name not in known:
            source = typed.get(dest, f"VLLM_EXTRA_ARGS {_flag(dest)}")
            raise SettingsError(f"{source}={name!r} is not a parser vLLM knows (one of: {', '.join(sorted(known))})")


def engine_config(args: argparse.Namespace):
    """The namespace -> VllmConfig, as `vllm serve` builds it; a rejected value is one line."""
    cli_env_setup()  # as `vllm serve` does first: engine processes are spawned, not forked
    try:
        config = AsyncEngineArgs.from_cli_args(args).create_engine_config(UsageContext.OPENAI_API_SERVER)
    except Exception as exc:  # noqa: BLE001 - vLLM raises ValueError, pydantic errors, OSError...
        raise SettingsError(f"engine configuration rejected: {_line(exc)[:400]}") from None
    if config.lora_config is not None and current_platform.is_cpu() and config.model_config.dtype != torch.float32:
        raise SettingsError(f"ENABLE_LORA on the CPU engine needs DTYPE=float32 (is {config.model_config.dtype}): "
                            "vLLM's CPU LoRA kernels stop the worker otherwise")
    return config


def max_model_len(config) -> int | None:
    """The context length the engine configuration settled on (None without one)."""
    return None if config is None else config.model_config.max_model_len


def start_engine(config, args: argparse.Namespace) -> AsyncLLM:
    """Processes, weights, KV cache (slow; run in a thread), with the options `vllm serve` passes."""
    return AsyncLLM.from_vllm_config(
        config, usage_context=UsageContext.OPENAI_API_SERVER, enable_log_requests=args.enable_log_requests,
        aggregate_engine_logging=args.aggregate_engine_logging, disable_log_stats=args.disable_log_stats,
    )


async def build_openai_app(engine: AsyncLLM, args: argparse.Namespace, routers: list):
    """vLLM's own OpenAI app on this engine, as `vllm serve` builds it, plus our routers.

    Its serving objects get the MeteredEngine, so every route's tokens land in the request record.
    """
    await engine.reset_mm_cache()  # as vLLM's launcher does after start-up
    tasks = await engine.get_supported_tasks()
    app = build_app(args, tasks, engine.model_config)
    for router in routers:
        app.include_router(router)
    await init_app_state(MeteredEngine(engine), app.state, args, tasks)
    return app


def app_lifespan(app) -> AbstractAsyncContextManager:
    """vLLM's app lifespan (periodic stats log, GC freeze), entered by the server's own lifespan."""
    return app.router.lifespan_context(app)


async def warm_up(engine: AsyncLLM) -> None:
    ids = engine.get_tokenizer().encode("warm up") or [0]
    params = SamplingParams(max_tokens=1, output_kind=RequestOutputKind.FINAL_ONLY)
    async for _ in engine.generate(tokens_input(ids), params, f"warmup-{uuid.uuid4().hex}"):
        pass


async def prompt_token_ids(serving, request: CompletionRequest) -> list[int] | ErrorResponse:
    """A completion request's prompt as the completion serving object tokenizes it (or its error)."""
    rendered = await serving.render_completion_request(request)
    return rendered if isinstance(rendered, ErrorResponse) else rendered[0]["prompt_token_ids"]


async def load_lora(app_state, name: str, path: str) -> ErrorResponse | None:
    """vLLM's runtime LoRA load, as its /v1/load_lora_adapter does it (in place when `name` is loaded:
    a re-pushed adapter replaces the old weights); its error, or None once the engine has it."""
    models = app_state.openai_serving_models
    request = LoadLoRAAdapterRequest(lora_name=name, lora_path=path, load_inplace=name in models.lora_requests)
    result = await models.load_lora_adapter(request)
    return result if isinstance(result, ErrorResponse) else None


async def unload_lora(app_state, name: str) -> ErrorResponse | None:
    """vLLM's runtime LoRA unload, as its /v1/unload_lora_adapter does it; its error, or None once it is gone."""
    result = await app_state.openai_serving_models.unload_lora_adapter(UnloadLoRAAdapterRequest(lora_name=name))
    return result if isinstance(result, ErrorResponse) else None


def shutdown_engine(engine: AsyncLLM, config) -> None:
    engine.shutdown(timeout=config.shutdown_timeout)


class MeteredEngine:
    """The engine client vLLM's serving objects get: everything is the engine's, except that
    `generate` adds prompt tokens, completion tokens, the first-token time and the finish reason to
    the current request's record (metrics.CURRENT), as the client's `usage` counts them."""

    def __init__(self, engine: AsyncLLM):
        self._engine = engine

    def __getattr__(self, name: str):
        return getattr(self._engine, name)

    async def generate(self, prompt, sampling_params, request_id: str, **kwargs):
        stream = self._engine.generate(prompt, sampling_params, request_id, **kwargs)
        record = CURRENT.get()
        if record is None:  # not from a request (none today): nothing to count
            async for out in stream:
                yield out
            return
        lora = kwargs.get("lora_request")  # per-adapter series: the adapter's name, else the base's
        record.model = lora.lora_name if lora is not None else str(self._engine.model_config.served_model_name)
        cumulative = sampling_params.output_kind != RequestOutputKind.DELTA
        tokens: dict[int, int] = {}  # completion index -> tokens so far
        prompt_seen = False
        try:
            async for out in stream:
                if not prompt_seen and out.prompt_token_ids is not None:
                    prompt_seen = True
                    record.prompt_tokens += len(out.prompt_token_ids)
                    if record.keep_prompt and out.prompt is not None:
                        record.prompt = out.prompt
                for piece in out.outputs:
                    n = len(piece.token_ids)
                    tokens[piece.index] = n if cumulative else tokens.get(piece.index, 0) + n
                    if n and record.first_token is None:
                        record.first_token = time.perf_counter()
                    record.finish_reason = piece.finish_reason or record.finish_reason
                yield out
        except Exception:  # not cancellation: the middleware sees a client that went away
            record.failure = "error"
            raise
        finally:
            record.completion_tokens += sum(tokens.values())
            await stream.aclose()
