"""POST /generate, the reference architecture's contract, on vLLM's own completion serving.

The body is checked against the contract (strict types: "5" is not a number), turned into vLLM's
CompletionRequest and served by the same serving object as /v1/completions: same engine, same
validation, same errors and disconnect handling. Ours are the shape of the answer and one rule of
the contract: prompt + max_tokens beyond the context is a 400 with both counts (vLLM's routes
shorten max_tokens to fit instead).
"""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from server import metrics
from server.errors import error_body
from server.vllm_seam import CompletionRequest, ErrorResponse, prompt_token_ids, validate_json_request, with_cancellation

router = APIRouter()
ENDPOINT = "/generate"


class GenerateRequest(BaseModel):
    """The contract's fields (temperature 0.7, top_p 0.9, max_tokens 100 unless given) and the
    sampling extras vLLM takes; unknown fields are ignored, as vLLM's server does."""

    model_config = ConfigDict(strict=True, extra="ignore")

    prompt: str = Field(min_length=1)
    max_tokens: int = 100
    temperature: float = 0.7
    top_p: float = 0.9
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    top_k: int | None = None
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    ignore_eos: bool = False
    min_tokens: int = 0


def _summary(text: str, usage: dict, finish_reason: str | None, started: float) -> dict:
    return {"generated_text": text, "tokens_generated": usage["completion_tokens"],
            "prompt_tokens": usage["prompt_tokens"], "finish_reason": finish_reason,
            "latency_s": round(time.perf_counter() - started, 4)}


def _context_error(prompt_tokens: int, max_tokens: int, limit: int) -> JSONResponse | None:
    if prompt_tokens + max_tokens <= limit:
        return None
    message = (f"this model's maximum context length is {limit} tokens; the prompt has {prompt_tokens} tokens "
               f"and max_tokens asks for {max_tokens} ({prompt_tokens + max_tokens} in total)")
    param = "max_tokens" if prompt_tokens < limit else "prompt"
    return JSONResponse(error_body(message, "BadRequestError", 400, param), status_code=400)


def sse(data: str) -> str:
    return f"data: {data}\n\n"


@router.post(ENDPOINT, dependencies=[Depends(validate_json_request)])
@with_cancellation
async def generate(request: GenerateRequest, raw_request: Request):
    record = metrics.CURRENT.get()
    started = record.arrival if record is not None else time.perf_counter()
    body = request.model_dump(exclude_none=True)
    if request.stream:  # per-chunk usage gives each event's token count
        body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
    completion = CompletionRequest(**body)
    serving = raw_request.app.state.openai_serving_completion
    ids = await prompt_token_ids(serving, completion)
    if isinstance(ids, ErrorResponse):
        return JSONResponse(ids.model_dump(), status_code=ids.error.code)
    if record is not None and record.keep_prompt:
        record.prompt = request.prompt
    if too_long := _context_error(len(ids), request.max_tokens, serving.model_config.max_model_len):
        return too_long
    completion.prompt = ids  # tokenized once
    result = await serving.create_completion(completion, raw_request)
    if isinstance(result, ErrorResponse):
        return JSONResponse(result.model_dump(), status_code=result.error.code)
    if not request.stream:
        choice = result.choices[0]
        return JSONResponse(_summary(choice.text, result.usage.model_dump(), choice.finish_reason, started))

    async def events():
        """vLLM's completion chunks -> `{"text", "tokens"}` per step, then the counts, then [DONE]."""
        parts: list[str] = []
        seen, usage, finish_reason = 0, {"completion_tokens": 0, "prompt_tokens": 0}, None
        async for chunk in result:
            payload = chunk.removeprefix("data: ").rstrip()
            if payload == "[DONE]":
                break
            data = json.loads(payload)
            if "error" in data:
                yield sse(json.dumps({"error": data["error"]}))
                return
            usage = data.get("usage") or usage
            for choice in data["choices"]:
                parts.append(choice["text"])
                finish_reason = choice.get("finish_reason") or finish_reason
                yield sse(json.dumps({"text": choice["text"], "tokens": usage["completion_tokens"] - seen}))
                seen = usage["completion_tokens"]
        final = _summary("".join(parts), usage, finish_reason, started)
        if record is not None and record.ttft is not None:
            final["ttft_s"] = round(record.ttft, 4)
        yield sse(json.dumps(final))
        yield sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream")
