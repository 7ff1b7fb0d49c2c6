"""The engine and vLLM's OpenAI app on it: background load, warm-up, state.

The engine configuration is built and validated before the HTTP server starts (a bad value exits
at once); the slow part (processes, weights, KV cache) runs in a thread once the server is up,
so /health answers while /ready says "loading". vLLM's app is built on the loaded engine, its
lifespan entered, one token generated, and only then is the server ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from server import api_adapters, api_generate, metrics, vllm_seam
from server.settings import Settings

log = logging.getLogger("server.engine")


class EngineState:
    """loading -> ready -> draining (or failed); owns the engine and vLLM's app."""

    def __init__(self, settings: Settings, vllm_args, vllm_config):
        self.settings = settings
        self.vllm_args = vllm_args
        self.vllm_config = vllm_config
        self.engine = None
        self.openai_app = None  # vLLM's FastAPI app, once the engine is ready
        self.status = "loading"
        self.error: str | None = None
        self.load_seconds: float | None = None
        self.load_finished = False  # loaded or failed (not: stopped while loading)
        self._lifespans = contextlib.AsyncExitStack()

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def alive(self) -> bool:
        return self.status != "failed" and not (self.engine is not None and self.engine.errored)

    async def load(self) -> None:
        """Start the engine in a thread, build vLLM's app on it, warm up; mark failed on any error."""
        started = time.monotonic()
        try:
            self.engine = await asyncio.to_thread(vllm_seam.start_engine, self.vllm_config, self.vllm_args)
            routers = [api_generate.router, api_adapters.router_for(self.settings)]
            app = await vllm_seam.build_openai_app(self.engine, self.vllm_args, routers)
            await self._lifespans.enter_async_context(vllm_seam.app_lifespan(app))
            await vllm_seam.warm_up(self.engine)
        except Exception as exc:  # noqa: BLE001 - any load failure marks the server failed
            self.status = "failed"
            self.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
            log.error("model load failed", extra={"reason": self.error})
            self.load_finished = True
            return
        self.openai_app = app
        self.load_finished = True
        self.load_seconds = round(time.monotonic() - started, 3)
        if self.status == "loading":
            self.status = "ready"
            metrics.MODEL_LOADED.set(1)
        log.info("model ready", extra={"model": self.settings.served_model_name, "load_seconds": self.load_seconds})

    def start_draining(self) -> None:
        if self.status in ("loading", "ready"):
            self.status = "draining"
        metrics.MODEL_LOADED.set(0)

    async def shutdown(self) -> None:
        metrics.MODEL_LOADED.set(0)
        await self._lifespans.aclose()
        if self.engine is not None:
            vllm_seam.shutdown_engine(self.engine, self.vllm_config)
