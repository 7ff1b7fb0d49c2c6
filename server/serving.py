"""The generation core shared by /generate and the OpenAI routes.

Order per request: ready? -> tokenize and check the context length (400) -> admission slot
(429 or queue) -> engine. Token, TTFT and latency metrics are recorded here, once per job;
the request counter is the middleware's (it sees every outcome, 401 and 413 included).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.responses import StreamingResponse

from server import metrics
from server.admission import Admission
from server.engine import EngineState
from server.errors import ApiError
from server.protocol import Sampling


@dataclass
class Job:
    """One engine request and what the client has been sent of it."""

    endpoint: str
    prompt_ids: list[int]
    params: object  # vllm SamplingParams
    state: dict  # the ASGI scope's per-request state: outcome and counts for the log line
    arrival: float = field(default_factory=time.perf_counter)
    engine_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    completion_tokens: int = 0
    finish_reason: str | None = None
    ttft: float | None = None

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    def latency(self) -> float:
        return time.perf_counter() - self.arrival


class GuardedStream(StreamingResponse):
    """A StreamingResponse that runs `on_close` however it ends, even if never iterated."""

    def __init__(self, content, on_close, **kwargs):
        super().__init__(content, media_type="text/event-stream", **kwargs)
        self.on_close = on_close

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def sse(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


class Serving:
    def __init__(self, state: EngineState, admission: Admission, *, log_prompts: bool = False):
        self.state = state
        self.admission = admission
        self.log_prompts = log_prompts

    @property
    def model_name(self) -> str:
        return self.state.settings.served_model_name

    def check_ready(self) -> None:
        if not self.state.alive:
            raise ApiError(503, "the engine is not running", type="service_unavailable")
        if not self.state.ready:
            raise ApiError(503, f"model is {self.state.status}; retry later", type="service_unavailable",
                           headers={"Retry-After": str(self.admission.retry_after_s)})

    def encode(self, text: str) -> list[int]:
        return self.state.tokenizer.encode(text)

    def prompt_ids(self, prompt, param: str = "prompt") -> list[int]:
        """A text prompt or token ids (single prompt only) -> validated token ids."""
        if isinstance(prompt, list) and len(prompt) == 1 and not isinstance(prompt[0], int):
            prompt = prompt[0]
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], list | str):
            raise ApiError(400, "batched prompts are not supported: send one prompt per request", param=param)
        ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise ApiError(400, "the prompt is empty", param=param)
        vocab = len(self.state.tokenizer)
        if any(not 0 <= i < vocab for i in ids):
            raise ApiError(400, f"prompt token ids must be in [0, {vocab})", param=param)
        return ids

    def sampling_params(self, req: Sampling, prompt_len: int, max_tokens: int | None, *, defaults: dict):
        """Check prompt + max_tokens against the context length, then build SamplingParams."""
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        limit = self.state.max_model_len
        room = limit - prompt_len
        if room < 1 or (max_tokens is not None and max_tokens > room):
            asked = max_tokens if max_tokens is not None else 1
            raise ApiError(
                400,
                f"this model's maximum context length is {limit} tokens; the prompt has {prompt_len} tokens "
                f"and max_tokens asks for {asked} ({prompt_len + asked} in total)",
                param="max_tokens" if room >= 1 else "prompt",
            )
        max_tokens = max_tokens if max_tokens is not None else room
        if req.min_tokens > max_tokens:
            raise ApiError(400, f"min_tokens ({req.min_tokens}) is more than max_tokens ({max_tokens})", param="min_tokens")
        values = {k: v for k, v in defaults.items()}
        for name in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty"):
            if getattr(req, name) is not None:
                values[name] = getattr(req, name)
        try:
            return SamplingParams(
                max_tokens=max_tokens,
                stop=req.stop,
                seed=req.seed,
                presence_penalty=req.presence_penalty,
                frequency_penalty=req.frequency_penalty,
                ignore_eos=req.ignore_eos,
                min_tokens=req.min_tokens,
                output_kind=RequestOutputKind.DELTA,
                **values,
            )
        except ValueError as exc:
            raise ApiError(400, " ".join(str(exc).split())) from None

    def new_job(self, endpoint: str, prompt_ids: list[int], params, state: dict, prompt_text: str | None) -> Job:
        job = Job(endpoint, prompt_ids, params, state)
        state["prompt_tokens"] = job.prompt_tokens
        if self.log_prompts and prompt_text is not None:
            state["prompt"] = prompt_text
        return job

    async def run(self, job: Job) -> AsyncIterator[tuple[str, int]]:
        """Yield (text delta, new token count) from the engine; record metrics however it ends.

        Cancellation (client gone) propagates into vLLM's generate(), which aborts the request.
        """
        from vllm.inputs.engine import tokens_input

        outcome = "error"
        try:
            stream = self.state.engine.generate(tokens_input(job.prompt_ids), job.params, job.engine_id)
            async for out in stream:
                piece = out.outputs[0]
                if job.ttft is None and piece.token_ids:
                    job.ttft = job.latency()
                job.completion_tokens += len(piece.token_ids)
                if piece.finish_reason is not None:
                    job.finish_reason = piece.finish_reason
                yield piece.text, len(piece.token_ids)
            outcome = "success"
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "aborted"
            raise
        except ValueError as exc:  # vLLM's request validation (VLLMValidationError is one)
            outcome = "invalid"
            raise ApiError(400, " ".join(str(exc).split())) from None
        except Exception as exc:  # noqa: BLE001 - an engine failure is a 500 for this request only
            raise ApiError(500, f"generation failed: {type(exc).__name__}", type="server_error") from None
        finally:
            self._record(job, outcome)

    async def collect(self, job: Job, receive) -> str:
        """Run a non-streaming job to the end, aborting it if the client disconnects meanwhile."""

        async def generate() -> str:
            return "".join([text async for text, _ in self.run(job)])

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        work = asyncio.ensure_future(generate())
        watch = asyncio.ensure_future(disconnected())
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not work.done():
                work.cancel()  # vLLM's generate() aborts the engine request on cancellation
                await asyncio.wait({work})
        if work.cancelled():
            job.state["outcome"] = "aborted"
            raise ApiError(499, "client disconnected", type="client_closed")
        return work.result()

    def _record(self, job: Job, outcome: str) -> None:
        metrics.PROMPT_TOKENS.labels(job.endpoint).inc(job.prompt_tokens)
        metrics.TOKENS_GENERATED.labels(job.endpoint).inc(job.completion_tokens)
        if job.ttft is not None:
            metrics.TTFT.labels(job.endpoint).observe(job.ttft)
        if outcome == "success":
            metrics.LATENCY.labels(job.endpoint).observe(job.latency())
        else:
            job.state["outcome"] = outcome
        job.state.update(completion_tokens=job.completion_tokens, finish_reason=job.finish_reason)

    async def streamed(self, job: Job, events: AsyncIterator[bytes]) -> GuardedStream:
        """Take an admission slot now (429 before any byte is sent) and hold it for the stream."""
        release = await self.admission.acquire()
        return GuardedStream(events, on_close=release)
