"""POST /generate: the reference architecture's contract, plain or as server-sent events."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.errors import ApiError
from server.protocol import GenerateRequest, parse_body
from server.serving import Job, Serving, sse

router = APIRouter()
ENDPOINT = "/generate"


def _summary(job: Job, text: str | None = None) -> dict:
    body = {} if text is None else {"generated_text": text}
    body.update(
        tokens_generated=job.completion_tokens,
        prompt_tokens=job.prompt_tokens,
        finish_reason=job.finish_reason,
        latency_s=round(job.latency(), 4),
    )
    return body


@router.post(ENDPOINT)
async def generate(request: Request):
    serving: Serving = request.app.state.serving
    serving.check_ready()
    req = parse_body(GenerateRequest, await request.body())
    ids = serving.prompt_ids(req.prompt)
    params = serving.sampling_params(req, len(ids), req.max_tokens, defaults={})
    job = serving.new_job(ENDPOINT, ids, params, request.scope["state"], req.prompt)
    if not req.stream:
        async with serving.admission.slot():
            text = await serving.collect(job, request.receive)
        return JSONResponse(_summary(job, text))

    async def events():
        parts: list[str] = []
        try:
            async for text, tokens in serving.run(job):
                parts.append(text)
                yield sse(json.dumps({"text": text, "tokens": tokens}))
        except ApiError as exc:
            yield sse(json.dumps(exc.body()))
            return
        final = _summary(job, "".join(parts))
        if job.ttft is not None:
            final["ttft_s"] = round(job.ttft, 4)
        yield sse(json.dumps(final))
        yield sse("[DONE]")

    return await serving.streamed(job, events())
