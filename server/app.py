"""The FastAPI application: lifespan owns the engine; routes delegate to the serving objects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from server import api_generate, api_openai, metrics
from server.admission import Admission
from server.engine import EngineState
from server.errors import ApiError, error_body
from server.middleware import RequestMiddleware
from server.serving import Serving
from server.settings import Settings

log = logging.getLogger("server.app")


def create_app(settings: Settings, vllm_config, on_fatal: Callable[[], None] = lambda: None) -> FastAPI:
    """`on_fatal` is called when the model fails to load, so the process can exit non-zero."""
    state = EngineState(settings, vllm_config)
    admission = Admission(settings.max_concurrent_requests, settings.max_queued_requests, settings.retry_after_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        metrics.MODEL_LOADED.set(0)

        async def load() -> None:
            await state.load()
            if state.status == "failed":
                on_fatal()

        loading = asyncio.create_task(load())
        try:
            yield
        finally:
            loading.cancel()
            state.shutdown()

    app = FastAPI(title="llmctl inference server", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine = state
    app.state.admission = admission
    app.state.serving = Serving(state, admission, log_prompts=settings.log_prompts)
    app.include_router(api_generate.router)
    app.include_router(api_openai.router)
    app.add_middleware(RequestMiddleware, api_key=settings.api_key)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException):
        return JSONResponse(error_body(str(exc.detail), "not_found" if exc.status_code == 404 else "invalid_request_error"),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception):
        log.exception("unhandled error")
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}", "server_error"), status_code=500)

    @app.get("/health")
    async def health():
        if not state.alive:
            return JSONResponse({"status": "dead", "reason": state.error or "engine stopped"}, status_code=503)
        return {"status": "ok", "model_status": state.status}

    @app.get("/ready")
    async def ready():
        body = {"status": state.status, "model": settings.served_model_name}
        if state.ready:
            return {**body, "load_seconds": state.load_seconds}
        if state.error:
            body["reason"] = state.error
        return JSONResponse(body, status_code=503)

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    return app


async def drain(app: FastAPI, timeout_s: float) -> bool:
    """/ready turns 503 and new requests are refused; wait for in-flight ones up to timeout_s."""
    app.state.engine.start_draining()
    log.info("draining", extra={"in_flight": app.state.admission.active, "timeout_s": timeout_s})
    done = await app.state.admission.wait_idle(timeout_s)
    log.info("drained" if done else "drain timed out", extra={"in_flight": app.state.admission.active})
    return done
