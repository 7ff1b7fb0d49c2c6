"""vLLM's OpenAI-compatible API as the official `openai` client uses it, against the real server
(vLLM CPU engine, tiny random-weight model): the features a hand-written subset used to drop.

Random weights never close a free string, so schemas use enums, and `json_object` is steered to
`{}` with a logit bias (the constraint, not the bias, is what makes it valid JSON).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import jsonschema
import pytest

from tests.fixtures.server import REPO

pytestmark = pytest.mark.engine

CHAT = [{"role": "user", "content": "What is the weather?"}]
SCHEMA = {
    "type": "object",
    "properties": {"color": {"type": "string", "enum": ["red", "green", "blue"]},
                   "size": {"type": "integer", "enum": [1, 2, 3]}},
    "required": ["color", "size"],
    "additionalProperties": False,
}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]},
                                                     "unit": {"type": "string", "enum": ["C", "F"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}


@pytest.fixture(scope="module")
def oa(live_server):
    return live_server.openai()


@pytest.fixture
def client(live_server):
    with httpx.Client(base_url=live_server.url, headers=live_server.headers, timeout=120) as c:
        yield c


def test_response_format_json_schema_is_honoured(oa, live_server):
    reply = oa.chat.completions.create(
        model=live_server.model_name, messages=CHAT, max_tokens=60, seed=3,
        response_format={"type": "json_schema", "json_schema": {"name": "thing", "schema": SCHEMA, "strict": True}})
    jsonschema.validate(json.loads(reply.choices[0].message.content), SCHEMA)
    assert reply.choices[0].finish_reason == "stop"


def token_id(client, text: str) -> str:
    tokens = client.post("/tokenize", json={"prompt": text, "add_special_tokens": False}).json()["tokens"]
    assert len(tokens) == 1, tokens
    return str(tokens[0])


def test_response_format_json_object_is_honoured(oa, client, live_server):
    close = token_id(client, "}")
    reply = oa.chat.completions.create(model=live_server.model_name, messages=CHAT, max_tokens=20,
                                       response_format={"type": "json_object"}, logit_bias={close: 100})
    assert json.loads(reply.choices[0].message.content) == {}
    # The same bias without the constraint is not JSON: the constraint did it.
    free = oa.chat.completions.create(model=live_server.model_name, messages=CHAT, max_tokens=5,
                                      logit_bias={close: 100})
    assert free.choices[0].message.content == "}" * 5


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}],
                         ids=["required", "named"])
def test_tools_return_tool_calls_with_arguments_for_the_declared_parameters(oa, client, live_server, tool_choice):
    # "required" is constrained to a JSON array of calls; random weights may go on adding calls, so
    # "]" is favoured where the constraint allows it (the end of the array): one call, then done.
    close = token_id(client, "]")
    reply = oa.chat.completions.create(model=live_server.model_name, messages=CHAT, max_tokens=200, seed=5,
                                       tools=[WEATHER], tool_choice=tool_choice, logit_bias={close: 30})
    calls = reply.choices[0].message.tool_calls
    assert calls, reply
    for call in calls:
        assert call.function.name == "get_weather"
        jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])


def test_logprobs_on_chat_and_completions(oa, live_server):
    chat = oa.chat.completions.create(model=live_server.model_name, messages=CHAT, max_tokens=4, logprobs=True,
                                      top_logprobs=3, extra_body={"ignore_eos": True})
    content = chat.choices[0].logprobs.content
    assert len(content) == 4 and all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content)
    done = oa.completions.create(model=live_server.model_name, prompt="Hello", max_tokens=4, logprobs=2,
                                 extra_body={"ignore_eos": True})
    logprobs = done.choices[0].logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == 4
    assert all(2 <= len(top) <= 3 for top in logprobs.top_logprobs)  # the sampled token may be a third


def test_n_returns_that_many_choices_and_counts_them_all(oa, live_server):
    done = oa.completions.create(model=live_server.model_name, prompt="Hello", max_tokens=3, n=2, seed=1,
                                 extra_body={"ignore_eos": True})
    assert sorted(c.index for c in done.choices) == [0, 1]
    assert done.usage.completion_tokens == 6
    chat = oa.chat.completions.create(model=live_server.model_name, messages=CHAT, max_tokens=3, n=2,
                                      extra_body={"ignore_eos": True})
    assert len(chat.choices) == 2 and chat.usage.completion_tokens == 6


def test_echo_returns_the_prompt_before_the_completion(oa, live_server):
    done = oa.completions.create(model=live_server.model_name, prompt="The model serves", max_tokens=3, echo=True)
    assert done.choices[0].text.startswith("The model serves")


def test_tokenize_and_detokenize_round_trip(client, live_server):
    text = "The model serves tokens, 42 of them!"
    tokens = client.post("/tokenize", json={"model": live_server.model_name, "prompt": text}).json()
    assert tokens["count"] == len(tokens["tokens"]) > 3 and tokens["max_model_len"] == live_server.max_model_len
    back = client.post("/detokenize", json={"model": live_server.model_name, "tokens": tokens["tokens"]}).json()
    assert back["prompt"] == text


def test_responses_api_answers(oa, live_server):
    reply = oa.responses.create(model=live_server.model_name, input="Hello there", max_output_tokens=6)
    assert reply.output and reply.output[0].content[0].type == "output_text"
    assert reply.usage.output_tokens == 6 and reply.usage.input_tokens > 0


def test_anthropic_messages_api_answers(client, live_server):
    r = client.post("/v1/messages", json={"model": live_server.model_name, "max_tokens": 4,
                                          "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "message" and r.json()["usage"]["output_tokens"] == 4


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_streams_end_with_usage_then_done(client, path):
    body = {"max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True}
    body |= {"prompt": "Hi"} if path == "/v1/completions" else {"messages": CHAT}
    with client.stream("POST", path, json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    last = json.loads(data[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 4


def test_vllm_bench_serve_runs_against_it(live_server, tmp_path):
    """vLLM's own benchmark client, completions and chat, in one process (benchmarks/vllm_cli.py)."""
    common = ["--base-url", live_server.url, "--model", live_server.model_name, "--tokenizer", str(live_server.model_dir),
              "--dataset-name", "random", "--random-input-len", "8", "--random-output-len", "4", "--num-prompts", "6",
              "--ignore-eos", "--seed", "0", "--disable-tqdm", "--ready-check-timeout-sec", "0",
              "--save-result", "--result-dir", str(tmp_path)]
    runs = [["--backend", "openai", "--endpoint", "/v1/completions", *common, "--result-filename", "completions.json"],
            ["--backend", "openai-chat", "--endpoint", "/v1/chat/completions", *common, "--result-filename", "chat.json"]]
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    before = {e: live_server.metric("vllm_requests_total", status="success", endpoint=e)
              for e in ("/v1/completions", "/v1/chat/completions")}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "vllm_cli.py"), "--many", str(tmp_path / "runs.json")],
                          env={**os.environ, "OPENAI_API_KEY": live_server.api_key}, capture_output=True, text=True,
                          timeout=400, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name, endpoint in (("completions", "/v1/completions"), ("chat", "/v1/chat/completions")):
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert result["completed"] == 6 and result["total_output_tokens"] == 24, result
        assert live_server.metric("vllm_requests_total", status="success", endpoint=endpoint) - before[endpoint] == 6
