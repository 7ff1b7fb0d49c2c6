"""`deploy.gate.*`: the promotion gate a new revision passes before it gets traffic.

The golden prompts live in a JSON-lines file (`prompts`, relative to the config file's folder),
read and checked when the config is validated, so a bad regex or a schema that is not a JSON
schema fails at `llmctl config validate` with one line per problem, not in the middle of a rollout.
Each line: `prompt`, exactly one expectation (`expect`: a substring of the answer, `regex`: searched
in the answer, `json_schema`: the answer is JSON valid against it, produced with the server's
structured output) and an optional `max_tokens`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, model_validator
from pydantic_core import InitErrorDetails

from llmctl.config.problems import Invalid
from llmctl.config.section import Section

EXPECTATIONS = ("expect", "regex", "json_schema")
_KEYS = ("prompt", *EXPECTATIONS, "max_tokens")
DEFAULT_MAX_TOKENS = 64
_PROMPTS_FIX = "each line: {\"prompt\": ..., and one of \"expect\", \"regex\", \"json_schema\"; optional \"max_tokens\"}"


@dataclass(frozen=True)
class Golden:
    """One golden prompt: what to ask, and what the answer must be."""

    line: int  # in the prompts file (1-based)
    prompt: str
    kind: str  # expect | regex | json_schema
    expected: Any  # the substring, the pattern, or the schema
    max_tokens: int = DEFAULT_MAX_TOKENS

    @property
    def name(self) -> str:
        return f"golden line {self.line}"


class GateSlo(Section):
    """Thresholds on the gate's short bench; each unset one is not checked."""

    p95_ttft_s: float | None = Field(None, gt=0, description="Fail the gate when p95 time to first token exceeds this.")
    p95_tpot_s: float | None = Field(None, gt=0, description="Fail the gate when p95 time per output token exceeds this.")
    max_error_rate: float | None = Field(None, ge=0, le=1, description="Fail the gate when more of the bench's "
                                         "requests than this fraction fail.")
    min_throughput_ratio: float | None = Field(
        None, gt=0, description="Fail the gate when output tokens/s fall below this fraction of the serving "
        "revision's last gate bench (skipped when it has none).")

    def configured(self) -> bool:
        return any(getattr(self, name) is not None for name in type(self).model_fields)


class GateConfig(Section):
    enabled: bool = Field(True, description="Judge a new revision (readiness, smoke request, golden prompts, "
                          "bench SLOs) before it gets traffic.")
    prompts: str | None = Field(None, description="JSON-lines file of golden prompts (relative to the config "
                                "file's folder): `prompt` plus one of `expect`, `regex`, `json_schema`; optional "
                                "`max_tokens`.")
    ready_timeout_s: float = Field(120, gt=0, le=3600, description="How long the gate waits for /ready to answer 200.")
    request_timeout_s: float = Field(120, gt=0, le=3600, description="Timeout of each smoke and golden request.")
    bench_requests: int = Field(0, ge=0, le=100_000, description="Requests of the gate's short bench (0: no bench).")
    bench_seconds: float | None = Field(None, gt=0, le=3600, description="Run the gate's bench this long instead "
                                        "(its bench_requests prompts in turn), as `llmctl bench --duration`.")
    bench_concurrency: int = Field(4, ge=1, le=1024, description="Requests in flight during the gate's bench.")
    bench_input_len: int = Field(128, ge=1, description="Prompt tokens of each bench request.")
    bench_output_len: int = Field(64, ge=1, description="Output tokens of each bench request.")
    slo: GateSlo = Field(default_factory=lambda: GateSlo())

    _goldens: tuple[Golden, ...] = PrivateAttr(default=())
    _prompts_file: Path | None = PrivateAttr(default=None)

    @property
    def goldens(self) -> tuple[Golden, ...]:
        """The golden prompts read (and checked) from `prompts` when the config was validated."""
        return self._goldens

    @property
    def prompts_file(self) -> Path | None:
        return self._prompts_file

    @model_validator(mode="after")
    def _checked(self, info: ValidationInfo) -> "GateConfig":
        """Read the prompts file; report each of its problems and a SLO without a bench, all at once."""
        problems: list[tuple[str, Invalid]] = []
        if self.slo.configured() and self.bench_requests == 0:
            problems.append(("bench_requests", Invalid(
                "deploy.gate.slo is set but deploy.gate.bench_requests is 0 (no bench to measure it on)",
                fields=("deploy.gate.bench_requests", "deploy.gate.slo"),
                fix="set deploy.gate.bench_requests (e.g. 20), or remove deploy.gate.slo")))
        goldens, path = [], None
        if self.prompts is not None:
            path = (Path((info.context or {}).get("config_dir") or ".") / self.prompts).resolve()
            goldens, bad = read_goldens(path)
            problems += [("prompts", problem) for problem in bad]
        if problems:
            raise ValidationError.from_exception_data("GateConfig", [
                InitErrorDetails(type="value_error", loc=(field,), input=getattr(self, field), ctx={"error": problem})
                for field, problem in problems])
        self._goldens, self._prompts_file = tuple(goldens), path
        return self


def read_goldens(path: Path) -> tuple[list[Golden], list[Invalid]]:
    """The golden prompts of a JSON-lines file, and one problem per bad line (or for the file)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return [], [Invalid(f"{path}: no such file", fix="write the golden prompts file there, or correct "
                            "deploy.gate.prompts (it is relative to the config file's folder)")]
    except OSError as exc:
        return [], [Invalid(f"{path}: cannot read ({exc.strerror})", fix="check the path and its permissions")]
    goldens, problems = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            goldens.append(_golden(number, line))
        except Invalid as problem:
            problems.append(Invalid(f"line {number}: {problem}", fix=problem.fix))
    if not goldens and not problems:
        problems.append(Invalid(f"{path} has no golden prompts", fix=_PROMPTS_FIX))
    return goldens, problems


def _golden(number: int, line: str) -> Golden:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise Invalid(f"not JSON ({exc.msg} at column {exc.colno})", fix=_PROMPTS_FIX) from None
    if not isinstance(item, dict):
        raise Invalid(f"not a JSON object (a {type(item).__name__})", fix=_PROMPTS_FIX)
    unknown = [key for key in item if key not in _KEYS]
    if unknown:
        raise Invalid(f"unknown key(s) {', '.join(map(repr, unknown))}", fix=f"use only {', '.join(_KEYS)}")
    prompt = item.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Invalid("needs a non-empty string \"prompt\"", fix=_PROMPTS_FIX)
    given = [key for key in EXPECTATIONS if key in item]
    if len(given) != 1:
        said = f"has {' and '.join(given)}" if given else "has no expectation"
        raise Invalid(f"{said}: give exactly one of expect, regex, json_schema",
                      fix="split it into one line per expectation" if given else _PROMPTS_FIX)
    kind = given[0]
    expected = _checked_expectation(kind, item[kind])
    max_tokens = item.get("max_tokens", DEFAULT_MAX_TOKENS)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 65536:
        raise Invalid(f"max_tokens {max_tokens!r} is not a whole number from 1 to 65536", fix="use e.g. 64")
    return Golden(number, prompt, kind, expected, max_tokens)


def _checked_expectation(kind: str, value: Any) -> Any:
    if kind == "json_schema":
        import jsonschema

        if not isinstance(value, dict):
            raise Invalid(f"json_schema is a {type(value).__name__}, not a JSON schema object",
                          fix="give a schema object such as {\"type\": \"object\", \"properties\": {...}}")
        try:
            jsonschema.validators.validator_for(value).check_schema(value)
        except jsonschema.SchemaError as exc:
            where = "/".join(str(part) for part in exc.absolute_path) or "(top)"
            raise Invalid(f"json_schema is not a valid JSON schema at {where}: {exc.message}",
                          fix="correct the schema (https://json-schema.org/understanding-json-schema)") from None
        return value
    if not isinstance(value, str) or not value:
        raise Invalid(f"{kind} must be a non-empty string", fix=_PROMPTS_FIX)
    if kind == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            raise Invalid(f"regex {value!r} does not compile ({exc})",
                          fix="correct the pattern (Python `re` syntax; escape literal characters with \\)") from None
    return value
