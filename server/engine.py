"""The vLLM engine in-process: arguments from settings, background load, warm-up, state.

The engine config is built (and validated) synchronously at start-up so a bad value exits
at once; the slow part (processes, weights, KV cache) runs in a thread after the HTTP
server is up, so /health answers while /ready says "loading".
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from server import metrics
from server.settings import Settings, SettingsError

log = logging.getLogger("server.engine")


def build_engine_config(settings: Settings):
    """AsyncEngineArgs -> VllmConfig; any rejected value becomes a one-line SettingsError."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
    from vllm.usage.usage_lib import UsageContext

    if settings.quantization and settings.quantization not in QUANTIZATION_METHODS:
        raise SettingsError(f"QUANTIZATION={settings.quantization!r} is not a method vLLM knows")
    args = AsyncEngineArgs(
        model=settings.model_path,
        served_model_name=[settings.served_model_name],
        max_model_len=settings.max_model_len,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        tensor_parallel_size=settings.tensor_parallel_size,
        dtype=settings.dtype,
        max_num_seqs=settings.max_num_seqs,
        quantization=settings.quantization,
        enforce_eager=settings.enforce_eager,
        load_format=settings.load_format,
        disable_log_stats=False,  # keeps vLLM's Prometheus stat logger (vllm:* series) on
    )
    try:
        return args.create_engine_config(UsageContext.OPENAI_API_SERVER)
    except Exception as exc:  # noqa: BLE001 - vLLM raises ValueError, pydantic errors, OSError...
        reason = " ".join(str(exc).split())[:400]
        raise SettingsError(f"engine configuration rejected: {reason}") from None


class EngineState:
    """Owns the AsyncLLM; tracks loading -> ready -> draining (or failed)."""

    def __init__(self, settings: Settings, vllm_config):
        self.settings = settings
        self.vllm_config = vllm_config
        self.engine = None
        self.tokenizer = None
        self.status = "loading"
        self.error: str | None = None
        self.load_seconds: float | None = None
        self.created = time.time()
        self.max_model_len: int = vllm_config.model_config.max_model_len

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def alive(self) -> bool:
        return self.status != "failed" and not (self.engine is not None and self.engine.errored)

    async def load(self) -> None:
        """Start the engine in a thread, then a one-token warm-up; mark failed on any error."""
        from vllm.v1.engine.async_llm import AsyncLLM

        started = time.monotonic()
        try:
            self.engine = await asyncio.to_thread(AsyncLLM.from_vllm_config, self.vllm_config)
            self.tokenizer = self.engine.get_tokenizer()
            await self._warm_up()
        except Exception as exc:  # noqa: BLE001 - any load failure marks the server failed
            self.status = "failed"
            self.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
            log.error("model load failed", extra={"reason": self.error})
            return
        self.load_seconds = round(time.monotonic() - started, 3)
        if self.status == "loading":
            self.status = "ready"
            metrics.MODEL_LOADED.set(1)
        log.info("model ready", extra={"model": self.settings.served_model_name, "load_seconds": self.load_seconds})

    async def _warm_up(self) -> None:
        from vllm.inputs.engine import tokens_input
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        ids = self.tokenizer.encode("warm up") or [0]
        params = SamplingParams(max_tokens=1, output_kind=RequestOutputKind.FINAL_ONLY)
        async for _ in self.engine.generate(tokens_input(ids), params, f"warmup-{uuid.uuid4().hex}"):
            pass

    def start_draining(self) -> None:
        if self.status in ("loading", "ready"):
            self.status = "draining"
        metrics.MODEL_LOADED.set(0)

    def shutdown(self) -> None:
        metrics.MODEL_LOADED.set(0)
        if self.engine is not None:
            self.engine.shutdown()
