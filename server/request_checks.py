"""Checks on a request's JSON body that vLLM's serving layer does not make, run once per request
before admission and before any tokenizer work (so a refused request never holds a slot or the
event loop):

- the body arrives within BODY_TIMEOUT_S (408), and is at most the 1 MiB the middleware allows;
- the text in it (every string: prompt, messages, tools, input...) is at most MAX_PROMPT_CHARS
  characters, so tokenizing it is bounded;
- `stop` (and the Messages API's `stop_sequences`): at most MAX_STOP_SEQUENCES entries (OpenAI's
  limit is 4), each 1..MAX_STOP_CHARS characters (vLLM checks a stop string against the text at
  every engine step; an empty one is a client mistake vLLM would let through as a 500 on /generate);
- a completions `prompt` list has at most MAX_BATCH_PROMPTS entries, and `n` and `best_of` are at
  most MAX_N (each prompt and each of its `n`/`best_of` choices is a sequence for the engine: a
  10,000-entry batch or `n: 100000` would be tokenized and scheduled before any other check);
- every integer fits in 64 bits (a larger `seed` or `top_k` reached vLLM's sampling code as a 500);
- nesting is at most MAX_JSON_DEPTH deep (deeper JSON is a RecursionError in a JSON parser).

A body that is not JSON is left to vLLM's own validation, which answers it with its 400.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from server.errors import ApiError
from server.settings import MAX_BODY_BYTES

INT64 = 2**63
MAX_JSON_DEPTH = 100
STOP_FIELDS = ("stop", "stop_sequences")
PROMPT_CHARS_PER_TOKEN = 16  # the default MAX_PROMPT_CHARS per token of context: no useful prompt is longer


@dataclass(frozen=True)
class BodyLimits:
    max_prompt_chars: int = 65536
    max_stop_sequences: int = 4
    max_stop_chars: int = 256
    body_timeout_s: float = 30.0
    max_batch_prompts: int = 32
    max_n: int = 16


def limits_from(settings, max_model_len: int | None) -> BodyLimits:
    """The limits the server's Settings ask for; MAX_PROMPT_CHARS unset is PROMPT_CHARS_PER_TOKEN
    characters per token of the context length (the body limit caps it)."""
    chars = settings.max_prompt_chars or min(MAX_BODY_BYTES, PROMPT_CHARS_PER_TOKEN * (max_model_len or 4096))
    return BodyLimits(max_prompt_chars=chars, max_stop_sequences=settings.max_stop_sequences,
                      max_stop_chars=settings.max_stop_chars, body_timeout_s=settings.body_timeout_s,
                      max_batch_prompts=settings.max_batch_prompts, max_n=settings.max_n)


async def read_body(receive, timeout_s: float):
    """All of a request's body (already bounded by the middleware) -> (body, a receive that
    replays it); an ApiError 408 when it does not arrive within timeout_s."""
    messages, chunks = [], []
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
    except TimeoutError:
        raise ApiError(408, f"request body not received within {timeout_s:g} s", param="body") from None

    async def replay():
        return messages.pop(0) if messages else await receive()

    return b"".join(chunks), replay


def check_body(body: bytes, limits: BodyLimits) -> ApiError | None:
    """The first limit the JSON body breaks, as a 400 naming the field; None when it keeps them all."""
    if not body:
        return None
    try:
        data = json.loads(body)
    except RecursionError:
        return ApiError(400, f"JSON nested more than {MAX_JSON_DEPTH} levels deep", param="body")
    except ValueError:
        return None  # not JSON: vLLM's validation answers it
    if isinstance(data, dict):
        for field in STOP_FIELDS:
            if (error := _check_stop(field, data.get(field), limits)) is not None:
                return error
        if (error := _check_batch(data, limits)) is not None:
            return error
    return _walk(data, limits)


def _check_stop(field: str, stop, limits: BodyLimits) -> ApiError | None:
    entries = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    if len(entries) > limits.max_stop_sequences:
        return ApiError(400, f"{field} has {len(entries)} entries; at most {limits.max_stop_sequences} are allowed",
                        param=field)
    for entry in entries:
        if isinstance(entry, str) and not 1 <= len(entry) <= limits.max_stop_chars:
            return ApiError(400, f"each {field} entry must be 1 to {limits.max_stop_chars} characters "
                                 f"(got one of {len(entry)})", param=field)
    return None


def _check_batch(data: dict, limits: BodyLimits) -> ApiError | None:
    """How many sequences the request asks for: the entries of a `prompt` list (strings or token-id
    lists; a flat list of token ids is one prompt) and `n` / `best_of`."""
    prompt = data.get("prompt")
    if isinstance(prompt, list) and prompt and not all(isinstance(t, int) for t in prompt):
        if len(prompt) > limits.max_batch_prompts:
            return ApiError(400, f"prompt is a batch of {len(prompt)} prompts; at most {limits.max_batch_prompts} "
                                 "are allowed in one request (MAX_BATCH_PROMPTS)", param="prompt")
    for field in ("n", "best_of"):
        value = data.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > limits.max_n:
            return ApiError(400, f"{field}={value} is above the limit of {limits.max_n} (MAX_N)", param=field)
    return None


def _walk(data, limits: BodyLimits) -> ApiError | None:
    """One pass over the whole body: the text it holds, its integers, its depth."""
    chars = 0
    stack = [(data, "body", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return ApiError(400, f"JSON nested more than {MAX_JSON_DEPTH} levels deep", param="body")
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not -INT64 <= value < INT64:
                return ApiError(400, f"{where}={value} does not fit in 64 bits (at most {INT64 - 1})", param=where)
        elif isinstance(value, dict):
            stack.extend((v, k if depth == 0 else where, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, where, depth + 1) for v in value)
    if chars > limits.max_prompt_chars:
        return ApiError(400, f"the request holds {chars} characters of text; at most {limits.max_prompt_chars} "
                             "are allowed (MAX_PROMPT_CHARS)", param="prompt")
    return None
