"""Request bodies: the reference /generate contract and the OpenAI completions/chat subset we serve.

Strict types (a string is not a number); unknown fields are ignored like vLLM's server does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.errors import ApiError


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class Sampling(_Body):
    """Sampling fields shared by every endpoint (vLLM's extras included: bench tools send them)."""

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=-1)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    repetition_penalty: float | None = Field(None, gt=0.0, le=2.0)
    ignore_eos: bool = False
    min_tokens: int = Field(0, ge=0)
    stream: bool = False


class GenerateRequest(Sampling):
    """The reference contract: temperature 0.7 and top_p 0.9 unless given."""

    prompt: str = Field(min_length=1)
    max_tokens: int = Field(100, ge=1)
    temperature: float | None = Field(0.7, ge=0.0, le=2.0)
    top_p: float | None = Field(0.9, gt=0.0, le=1.0)


class StreamOptions(_Body):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class _OpenAI(Sampling):
    model: str | None = None
    n: int = Field(1, ge=1, le=1)
    stream_options: StreamOptions | None = None
    logprobs: None = None
    user: str | None = None


class CompletionRequest(_OpenAI):
    prompt: str | list[int] | list[str] | list[list[int]]
    max_tokens: int | None = Field(16, ge=1)
    echo: Literal[False] = False


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatRequest(_OpenAI):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: None = None


def parse_body(model: type[_Body], raw: bytes) -> _Body:
    """Validate a JSON body; every failure becomes a 400 naming the field."""
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise ApiError(400, f"request body is not valid JSON: {first['msg']}") from None
        param = ".".join(str(p) for p in first["loc"]) or None
        raise ApiError(400, f"{param or 'body'}: {first['msg']}", param=param) from None
