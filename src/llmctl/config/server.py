"""`server.*`: the container's serving settings, rendered into the endpoint's ConfigMap and `llmctl local`'s env.

Each field maps to one of server/settings.py's environment variables; the checks here are the ones the
server would refuse at start-up, so a bad value fails at `config validate`, not in a crash-looping pod."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from llmctl.config.problems import Invalid
from llmctl.config.section import Section


class ServerConfig(Section):
    port: int = Field(8000, ge=1, le=65535)
    metrics_port: int = Field(
        9100, ge=1, le=65535,
        description="The server's /metrics listener (a named container port kept off the load balancer; the "
                    "NetworkPolicy opens it to the monitoring namespace only).")
    gpu_memory_utilization: float = Field(0.95, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1, le=8)
    max_num_seqs: int | None = Field(None, ge=1, description="vLLM max concurrent sequences (engine default when unset).")
    enforce_eager: bool = Field(False, description="Disable CUDA graphs (less memory, slower).")
    max_concurrent_requests: int = Field(32, ge=1, description="Requests in flight before queueing.")
    max_queued_requests: int = Field(64, ge=0, description="Requests waiting before 429.")
    max_connections: int = Field(
        512, ge=2, description="Open connections before new ones get a 503; must exceed the two limits above."
    )
    max_batch_prompts: int = Field(
        32, ge=1, le=1024, description="Prompts in one completions request's `prompt` list; more is a 400."
    )
    max_n: int = Field(16, ge=1, le=1024, description="Largest `n` / `best_of` a request may ask for; more is a 400.")
    drain_timeout_s: int = Field(30, ge=0, le=3600, description="SIGTERM drain for in-flight requests.")
    tool_call_parser: str | None = Field(
        None, description="vLLM tool-call parser (hermes, llama3_json, mistral, ...): enables tools with tool_choice auto/required."
    )
    reasoning_parser: str | None = Field(None, description="vLLM reasoning parser (deepseek_r1, qwen3, ...).")
    enable_lora: bool = Field(False, description="Serve LoRA adapters (vLLM --enable-lora).")
    max_loras: int | None = Field(None, ge=1, description="LoRA adapters in one batch (vLLM default when unset).")
    max_lora_rank: Literal[1, 8, 16, 32, 64, 128, 256, 320, 512] | None = Field(
        None, description="Largest LoRA rank served (vLLM default when unset)."
    )
    lora_modules: dict[str, str] = Field(
        default_factory=lambda: {}, description="Adapters served from the start: name -> path in the container."
    )
    vllm_extra_args: list[str] = Field(
        default_factory=lambda: [],
        description="More `vllm serve` options, one word per item (e.g. [--enable-prefix-caching]); checked by vLLM at start-up.",
    )

    @model_validator(mode="after")
    def _connections_hold_the_queue(self) -> "ServerConfig":
        """The server refuses to start otherwise: queued requests would meet a full connection table."""
        admitted = self.max_concurrent_requests + self.max_queued_requests
        if self.max_connections <= admitted:
            raise Invalid(f"server.max_connections {self.max_connections} is not above server.max_concurrent_requests"
                          f" + server.max_queued_requests ({admitted})",
                          fix=f"raise server.max_connections above {admitted}, or lower the other two")
        return self

    @model_validator(mode="after")
    def _metrics_port_is_its_own(self) -> "ServerConfig":
        if self.metrics_port == self.port:
            raise Invalid(f"server.metrics_port {self.metrics_port} is server.port too",
                          fix="give /metrics its own port (the default is 9100)")
        return self

    @model_validator(mode="after")
    def _lora_needs_enable_lora(self) -> "ServerConfig":
        lora_only = [f"server.{name}" for name in ("max_loras", "max_lora_rank") if getattr(self, name) is not None]
        lora_only += ["server.lora_modules"] if self.lora_modules else []
        if lora_only and not self.enable_lora:
            raise Invalid(f"{', '.join(lora_only)} set but server.enable_lora is false",
                          fix="set server.enable_lora: true")
        for name in self.lora_modules:
            if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
                raise Invalid(f"server.lora_modules name {name!r} has other characters than letters, digits, '.', "
                              "'_' and '-'", fix="rename the adapter")
        return self
