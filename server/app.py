"""The ASGI app uvicorn serves: llmctl's contract around vLLM's OpenAI app.

    RequestMiddleware  request id, bearer auth, body limit, record -> series + log line
      ServerApp        /health, /ready here (and /metrics when METRICS_PORT=0; otherwise
                       /metrics is a 404 here: metrics.app serves it on its own listener,
                       which a NetworkPolicy can open to the monitoring namespace alone); 503 while loading (and, for generation,
                       while draining); generation routes take an admission slot (429 beyond
                       it) for as long as their response runs
        vLLM's app     every other route and all generation, as `vllm serve` serves them
                       (plus /generate, api_generate.py, on the same serving objects, and
                       /v1/fetch_lora_adapter, api_adapters.py: S3 -> disk -> vLLM's runtime LoRA load)

Checks on a request's body that vLLM does not make (request_checks.py) run here, on every route
of vLLM's app, before admission and before any tokenizer work, so a request they refuse never
holds a slot or the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.responses import JSONResponse, Response

from server import api_generate, metrics, request_checks, vllm_seam
from server.admission import Admission
from server.engine import EngineState
from server.errors import ApiError
from server.middleware import RequestMiddleware
from server.settings import Settings

log = logging.getLogger("server.app")
GENERATION_ROUTES = vllm_seam.GENERATION_ROUTES | {api_generate.ENDPOINT}
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ServerApp:
    def __init__(self, settings: Settings, vllm_args, vllm_config, on_fatal: Callable[[], None]):
        self.settings = settings
        self.engine = EngineState(settings, vllm_args, vllm_config)
        self.admission = Admission(settings.max_concurrent_requests, settings.max_queued_requests, settings.retry_after_s)
        self.on_fatal = on_fatal
        self.body_limits = request_checks.limits_from(settings, vllm_seam.max_model_len(vllm_config))
        self.probes = {"/health": self.health, "/ready": self.ready,
                       "/metrics": lambda: metrics.on_api_port(settings.metrics_port)}
        metrics.before_scrape(self.refresh_adapter_gauge)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.lifespan(receive, send)
        path = scope["path"]
        if scope["type"] == "http" and path in self.probes:
            return await self.probes[path]()(scope, receive, send)
        app = self.engine.openai_app
        try:
            if app is None or not self.engine.alive:
                raise self._unavailable()
            if scope["type"] == "http" and scope["method"] in BODY_METHODS:
                body, receive = await request_checks.read_body(receive, self.body_limits.body_timeout_s)
                if (refused := request_checks.check_body(body, self.body_limits)) is not None:
                    raise refused
            if path not in GENERATION_ROUTES:
                return await app(scope, receive, send)
            if not self.engine.ready:
                raise self._unavailable()
            async with self.admission.slot():
                await app(scope, receive, send)
        except ApiError as exc:
            if scope["type"] == "http":
                await exc.send(send)
            else:  # a websocket before the model is ready: "try again later"
                await send({"type": "websocket.close", "code": 1013})

    def _unavailable(self) -> ApiError:
        if not self.engine.alive:
            return ApiError(503, "the engine is not running", type="service_unavailable")
        return ApiError(503, f"model is {self.engine.status}; retry later", type="service_unavailable",
                        headers={"Retry-After": str(self.settings.retry_after_s)})

    async def lifespan(self, receive, send) -> None:
        """Start loading the model once listening; on shutdown, vLLM's app and then the engine."""
        loading: asyncio.Task | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                metrics.MODEL_LOADED.set(0)
                loading = asyncio.create_task(self._load())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if loading is not None:
                    loading.cancel()
                try:
                    await self.engine.shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def _load(self) -> None:
        await self.engine.load()
        if self.engine.status == "failed":
            self.on_fatal()

    def health(self) -> Response:
        if not self.engine.alive:
            return JSONResponse({"status": "dead", "reason": self.engine.error or "engine stopped"}, status_code=503)
        return JSONResponse({"status": "ok", "model_status": self.engine.status})

    def ready(self) -> Response:
        body = {"status": self.engine.status, "model": self.settings.served_model_name}
        if self.engine.ready:
            return JSONResponse({**body, "load_seconds": self.engine.load_seconds})
        if self.engine.error:
            body["reason"] = self.engine.error
        return JSONResponse(body, status_code=503)

    def refresh_adapter_gauge(self) -> None:
        """Before each scrape (either listener): which declared adapters the engine has loaded now."""
        models = getattr(getattr(self.engine.openai_app, "state", None), "openai_serving_models", None)
        if models is not None and self.settings.enable_lora:
            metrics.set_adapters([m.partition("=")[0] for m in self.settings.lora_modules], list(models.lora_requests))

def create_app(settings: Settings, vllm_args, vllm_config, on_fatal: Callable[[], None] = lambda: None):
    """(the ASGI app to serve, the ServerApp inside it); `on_fatal` runs when the model fails to load."""
    inner = ServerApp(settings, vllm_args, vllm_config, on_fatal)
    outer = RequestMiddleware(inner, api_key=settings.api_key, counted_paths=GENERATION_ROUTES,
                              log_prompts=settings.log_prompts)
    return outer, inner


async def drain(server: ServerApp, timeout_s: float) -> bool:
    """/ready turns 503 and new generation requests are refused; wait for in-flight ones up to timeout_s."""
    server.engine.start_draining()
    log.info("draining", extra={"in_flight": server.admission.active, "timeout_s": timeout_s})
    done = await server.admission.wait_idle(timeout_s)
    log.info("drained" if done else "drain timed out", extra={"in_flight": server.admission.active})
    return done
