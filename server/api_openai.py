"""OpenAI-compatible routes: /v1/completions, /v1/chat/completions, /v1/models."""

from __future__ import annotations

import json
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.errors import ApiError
from server.protocol import ChatRequest, CompletionRequest, parse_body
from server.serving import Job, Serving, sse

router = APIRouter()
OPENAI_DEFAULTS = {"temperature": 1.0, "top_p": 1.0}


def _usage(job: Job) -> dict:
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.completion_tokens,
        "total_tokens": job.prompt_tokens + job.completion_tokens,
    }


def _check_model(serving: Serving, name: str | None) -> None:
    if name is not None and name != serving.model_name:
        raise ApiError(404, f"the model `{name}` does not exist; this server serves `{serving.model_name}`",
                       type="NotFoundError", param="model")


def _chat_prompt(serving: Serving, req: ChatRequest) -> str:
    tokenizer = serving.state.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise ApiError(400, "this model's tokenizer has no chat template; use /v1/completions", param="messages")
    messages = [{"role": m.role, "content": m.text()} for m in req.messages]
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # noqa: BLE001 - jinja2 errors raised by the template itself (e.g. role order)
        raise ApiError(400, f"chat template failed: {' '.join(str(exc).split())}", param="messages") from None


async def _serve(request: Request, serving: Serving, req, job: Job, *, chat: bool):
    """Shared by completions and chat: one JSON body, or SSE chunks ending with data: [DONE]."""
    rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    created = int(time.time())
    head = {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion", "created": created,
            "model": serving.model_name}
    if not req.stream:
        async with serving.admission.slot():
            text = await serving.collect(job, request.receive)
        choice = {"index": 0, "finish_reason": job.finish_reason, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        head["object"] = "chat.completion" if chat else "text_completion"
        return JSONResponse({**head, "choices": [choice], "usage": _usage(job)})

    options = req.stream_options
    include_usage = bool(options and options.include_usage)
    continuous = bool(options and options.continuous_usage_stats and include_usage)

    def chunk(choice: dict) -> bytes:
        body = {**head, "choices": [choice]}
        if include_usage:
            body["usage"] = _usage(job) if continuous else None
        return sse(json.dumps(body))

    async def events():
        if chat:
            yield chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                         "finish_reason": None})
        try:
            async for text, _ in serving.run(job):
                choice = {"index": 0, "logprobs": None, "finish_reason": job.finish_reason}
                if chat:
                    choice["delta"] = {"content": text}
                else:
                    choice["text"] = text
                yield chunk(choice)
        except ApiError as exc:
            yield sse(json.dumps(exc.body()))
            return
        if include_usage:
            yield sse(json.dumps({**head, "choices": [], "usage": _usage(job)}))
        yield sse("[DONE]")

    return await serving.streamed(job, events())


@router.post("/v1/completions")
async def completions(request: Request):
    serving: Serving = request.app.state.serving
    serving.check_ready()
    req = parse_body(CompletionRequest, await request.body())
    _check_model(serving, req.model)
    ids = serving.prompt_ids(req.prompt)
    params = serving.sampling_params(req, len(ids), req.max_tokens, defaults=OPENAI_DEFAULTS)
    prompt_text = req.prompt if isinstance(req.prompt, str) else None
    job = serving.new_job("/v1/completions", ids, params, request.scope["state"], prompt_text)
    return await _serve(request, serving, req, job, chat=False)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request):
    serving: Serving = request.app.state.serving
    serving.check_ready()
    req = parse_body(ChatRequest, await request.body())
    _check_model(serving, req.model)
    if req.logprobs:
        raise ApiError(400, "logprobs are not supported by this server", param="logprobs")
    text = _chat_prompt(serving, req)
    ids = serving.prompt_ids(serving.state.tokenizer.encode(text, add_special_tokens=False), param="messages")
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    params = serving.sampling_params(req, len(ids), max_tokens, defaults=OPENAI_DEFAULTS)
    job = serving.new_job("/v1/chat/completions", ids, params, request.scope["state"], text)
    return await _serve(request, serving, req, job, chat=True)


@router.get("/v1/models")
async def models(request: Request):
    serving: Serving = request.app.state.serving
    card = {"id": serving.model_name, "object": "model", "created": int(serving.state.created), "owned_by": "llmctl",
            "root": serving.state.settings.model_path, "max_model_len": serving.state.max_model_len}
    return JSONResponse({"object": "list", "data": [card]})
