"""The real server (vLLM CPU engine, tiny model) over HTTP: contract, OpenAI client, errors,
auth, metrics that match what clients saw, backpressure, disconnects."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest

from tests.fixtures.server import wait_for

pytestmark = pytest.mark.engine


@pytest.fixture
def client(live_server):
    with httpx.Client(base_url=live_server.url, headers=live_server.headers, timeout=60) as c:
        yield c


def sse_events(response: httpx.Response) -> list:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_ready_flips_from_loading_to_ready_while_health_answers(live_server):
    probes = live_server.startup_probes
    loading = [p for p in probes if p[2] == 503]
    assert loading, "never saw /ready 503 while the model loaded"
    assert all(p[1] == 200 and p[3]["status"] == "loading" for p in loading)
    assert probes[-1][2] == 200 and probes[-1][3]["status"] == "ready"
    assert httpx.get(f"{live_server.url}/ready").json()["status"] == "ready"
    assert httpx.get(f"{live_server.url}/health").status_code == 200


def test_generate_reference_contract(client):
    r = client.post("/generate", json={"prompt": "Hello the model", "max_tokens": 12, "ignore_eos": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"generated_text", "tokens_generated", "prompt_tokens", "finish_reason", "latency_s"}
    assert body["tokens_generated"] == 12 and body["finish_reason"] == "length"
    assert body["prompt_tokens"] > 0 and body["latency_s"] > 0 and isinstance(body["generated_text"], str)


def test_generate_is_reproducible_with_a_seed(client):
    req = {"prompt": "Hello", "max_tokens": 8, "seed": 7, "temperature": 1.0}
    assert client.post("/generate", json=req).json()["generated_text"] == client.post("/generate", json=req).json()["generated_text"]


def test_generate_stream_sends_deltas_then_counts(client):
    with client.stream("POST", "/generate", json={"prompt": "Hi", "max_tokens": 6, "stream": True, "ignore_eos": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    deltas, final = events[:-2], events[-2]
    assert sum(e["tokens"] for e in deltas) == final["tokens_generated"] == 6
    assert "".join(e["text"] for e in deltas) == final["generated_text"]
    assert final["finish_reason"] == "length" and final["ttft_s"] <= final["latency_s"]


def test_request_id_is_echoed_and_names_the_engine_request(client):
    r = client.post("/generate", json={"prompt": "Hi", "max_tokens": 1}, headers={"X-Request-ID": "req-123"})
    assert r.headers["x-request-id"] == "req-123"
    assert client.get("/v1/models").headers["x-request-id"]
    # vLLM names its request after X-Request-Id; the server gives it the id it made up too.
    r = client.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 1})
    assert r.json()["id"] == f"cmpl-{r.headers['x-request-id']}"


def test_openai_client_completions_and_chat(live_server):
    import openai

    oa = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=live_server.api_key, max_retries=0)
    models = oa.models.list()
    assert [m.id for m in models.data] == [live_server.model_name]

    c = oa.completions.create(model=live_server.model_name, prompt="Hello", max_tokens=5, extra_body={"ignore_eos": True})
    assert c.usage.completion_tokens == 5 and c.choices[0].finish_reason == "length"

    chunks = list(oa.completions.create(model=live_server.model_name, prompt="Hello", max_tokens=5, stream=True,
                                        stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
    assert chunks[-1].usage.completion_tokens == 5 and chunks[-1].choices == []
    assert [ch.choices[0].finish_reason for ch in chunks[:-1]][-1] == "length"

    chat = oa.chat.completions.create(model=live_server.model_name, messages=[{"role": "user", "content": "hi"}],
                                      max_tokens=4, extra_body={"ignore_eos": True})
    assert chat.choices[0].message.role == "assistant" and chat.usage.completion_tokens == 4
    # The prompt went through the tokenizer's chat template (role markers are extra tokens).
    plain = httpx.post(f"{live_server.url}/generate", headers=live_server.headers, json={"prompt": "hi", "max_tokens": 1})
    assert chat.usage.prompt_tokens > plain.json()["prompt_tokens"]

    stream = oa.chat.completions.create(model=live_server.model_name, messages=[{"role": "user", "content": "hi"}],
                                        max_tokens=4, stream=True, stream_options={"include_usage": True},
                                        extra_body={"ignore_eos": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage.completion_tokens == 4


def test_metrics_count_what_clients_saw_on_every_generation_route(client, live_server):
    before = live_server.metrics()
    seen: dict[str, list[int]] = {}  # endpoint -> [prompt tokens, completion tokens] the clients were told

    def saw(endpoint: str, prompt: int, completion: int) -> None:
        totals = seen.setdefault(endpoint, [0, 0])
        totals[0] += prompt
        totals[1] += completion

    for i in range(3):
        body = client.post("/generate", json={"prompt": f"count {i}", "max_tokens": 5 + i}).json()
        saw("/generate", body["prompt_tokens"], body["tokens_generated"])
    with client.stream("POST", "/v1/completions", json={"prompt": "x", "max_tokens": 7, "stream": True,
                                                         "stream_options": {"include_usage": True}}) as r:
        usage = [e for e in sse_events(r) if isinstance(e, dict) and e.get("usage")][-1]["usage"]
    saw("/v1/completions", usage["prompt_tokens"], usage["completion_tokens"])
    usage = client.post("/v1/completions", json={"prompt": "two", "max_tokens": 3, "n": 2}).json()["usage"]
    saw("/v1/completions", usage["prompt_tokens"], usage["completion_tokens"])
    usage = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "y"}],
                                                       "max_tokens": 3}).json()["usage"]
    saw("/v1/chat/completions", usage["prompt_tokens"], usage["completion_tokens"])
    usage = client.post("/v1/responses", json={"input": "z", "max_output_tokens": 4}).json()["usage"]
    saw("/v1/responses", usage["input_tokens"], usage["output_tokens"])
    usage = client.post("/v1/messages", json={"model": live_server.model_name, "max_tokens": 4,
                                              "messages": [{"role": "user", "content": "w"}]}).json()["usage"]
    saw("/v1/messages", usage["input_tokens"], usage["output_tokens"])
    after = live_server.metrics()

    def delta(name: str, **labels) -> float:
        def total(m):
            return sum(v for (n, items), v in m.items()
                       if n == name and all(dict(items).get(k) == x for k, x in labels.items()))
        return total(after) - total(before)

    requests = {"/generate": 3, "/v1/completions": 2, "/v1/chat/completions": 1, "/v1/responses": 1, "/v1/messages": 1}
    for endpoint, (prompt, completion) in seen.items():
        assert delta("vllm_requests_total", status="success", endpoint=endpoint) == requests[endpoint], endpoint
        assert delta("vllm_prompt_tokens_total", endpoint=endpoint) == prompt, endpoint
        assert delta("vllm_tokens_generated_total", endpoint=endpoint) == completion, endpoint
        assert delta("vllm_request_latency_seconds_count", endpoint=endpoint) == requests[endpoint], endpoint
        assert delta("vllm_time_to_first_token_seconds_count", endpoint=endpoint) == requests[endpoint], endpoint
    assert delta("vllm_requests_total") == sum(requests.values())
    # vLLM's own series live on the same /metrics and agree.
    assert delta("vllm:generation_tokens_total") == sum(c for _, c in seen.values())
    assert after[("vllm_model_loaded", ())] == 1
    assert ("vllm_active_requests", ()) in after
    assert sum(1 for name, _ in after if name.startswith("vllm:")) > 50


BAD_REQUESTS = [
    ("/generate", b'{"prompt": "x", "max_tokens": ', "body"),
    ("/generate", {"prompt": "x", "max_tokens": "5"}, "max_tokens"),
    ("/generate", {"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ("/generate", {"prompt": 5, "max_tokens": 5}, "prompt"),
    ("/generate", {"prompt": "", "max_tokens": 5}, "prompt"),
    ("/generate", {"max_tokens": 5}, "prompt"),
    ("/generate", {"prompt": "x", "temperature": -1}, "temperature"),
    ("/generate", {"prompt": "x", "top_p": 0}, "top_p"),
    ("/generate", {"prompt": "x", "stream": "yes"}, "stream"),
    ("/generate", {"prompt": "x", "stop": 3}, "stop"),
    ("/generate", {"prompt": "x", "max_tokens": 5, "min_tokens": 9}, "min_tokens"),
    ("/generate", [1, 2], "body"),
    ("/v1/completions", {"prompt": [1, 2, 99999], "max_tokens": 2}, "out of vocabulary"),
    ("/v1/completions", {"prompt": "x", "model": "gpt-4"}, "model"),
    ("/v1/completions", {"prompt": "x", "stop": ""}, "stop"),
    ("/v1/completions", {"prompt": "x", "seed": 2**64}, "seed"),
    ("/v1/completions", {"prompt": "x", "logprobs": 9999}, "logprobs"),
    ("/v1/chat/completions", {"messages": []}, "conversation"),
    ("/v1/chat/completions", {"messages": "hi"}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 0}, "n must be at least 1"),
]


@pytest.mark.parametrize(("path", "payload", "what"), BAD_REQUESTS)
def test_bad_input_gets_one_error_shape(client, path, payload, what):
    """vLLM's validation, vLLM's error shape, a 4xx (never a 5xx); `what` is named in param or message."""
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    r = client.post(path, content=content, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"] and error["code"] == r.status_code
    assert what in (error["param"] or "") or what in error["message"], error


def test_context_length_error_gives_token_counts(client, live_server):
    prompt = "the model serves tokens " * 200
    r = client.post("/generate", json={"prompt": prompt, "max_tokens": 1000})
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert f"maximum context length is {live_server.max_model_len} tokens" in message
    assert "max_tokens asks for 1000" in message
    prompt_tokens = int(message.split("the prompt has ")[1].split()[0])
    assert prompt_tokens > 100
    assert client.post("/generate", json={"prompt": "still alive", "max_tokens": 2}).status_code == 200


def test_body_over_one_mib_is_413(client):
    r = client.post("/generate", content=b'{"prompt": "' + b"a" * (1024 * 1024) + b'"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["param"] == "body"

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"prompt": "'
        for _ in range(17):
            yield b"a" * 65536
        yield b'"}'

    r = client.post("/generate", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_auth_on_every_route_but_the_probes(live_server):
    url = live_server.url
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": live_server.api_key}):
        r = httpx.post(f"{url}/generate", json={"prompt": "x", "max_tokens": 1}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    # vLLM's routes, the ones its own --api-key leaves open (/invocations, /tokenize, /docs...) included
    for method, path in [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/responses"),
                         ("POST", "/invocations"), ("POST", "/tokenize"), ("GET", "/version"), ("GET", "/docs"),
                         ("GET", "/openapi.json"), ("POST", "/scale_elastic_ep"), ("GET", "/no/such/route")]:
        r = httpx.request(method, f"{url}{path}", json={})
        assert r.status_code == 401, (path, r.status_code)
    for open_path in ("/health", "/ready"):
        assert httpx.get(f"{url}{open_path}").status_code == 200
    # /metrics is on its own listener (METRICS_PORT, which a NetworkPolicy opens to monitoring only)
    moved = httpx.get(f"{url}/metrics")
    assert moved.status_code == 404 and "metrics port" in moved.json()["error"]["message"]
    scraped = httpx.get(f"{live_server.metrics_url}/metrics")
    assert scraped.status_code == 200 and "vllm:num_requests_running" in scraped.text
    assert httpx.get(f"{live_server.metrics_url}/v1/models", headers=live_server.headers).status_code == 404


async def _flood(live_server, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers, timeout=120,
                                 limits=httpx.Limits(max_connections=n)) as c:
        async def one(i: int):
            return await c.post("/generate", json={"prompt": f"flood {i}", "max_tokens": 200, "ignore_eos": True})
        return await asyncio.gather(*(one(i) for i in range(n)))


def test_flood_gets_429_with_retry_after_and_the_rest_complete(live_server):
    before = live_server.metric("vllm_requests_total", status="rejected")
    n = live_server.max_concurrent + live_server.max_queued + 12
    responses = asyncio.run(_flood(live_server, n))
    codes = [r.status_code for r in responses]
    rejected = [r for r in responses if r.status_code == 429]
    assert rejected and set(codes) == {200, 429}, codes
    assert codes.count(200) >= live_server.max_concurrent + live_server.max_queued
    assert all(r.headers["retry-after"].isdigit() and r.json()["error"]["type"] == "rate_limit_error" for r in rejected)
    assert all(r.json()["tokens_generated"] == 200 for r in responses if r.status_code == 200)
    assert live_server.metric("vllm_requests_total", status="rejected") - before == len(rejected)
    assert live_server.metric("vllm_active_requests") == 0


GENERATION_BODIES = {
    "/generate": {"prompt": "x", "max_tokens": 2},
    "/v1/completions": {"prompt": "x", "max_tokens": 2},
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2},
    "/v1/responses": {"input": "x", "max_output_tokens": 2},
    "/v1/messages": {"model": "tiny-llama", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]},
    "/invocations": {"prompt": "x", "max_tokens": 2},
}


def test_every_generation_route_gets_429_when_slots_and_queue_are_full(live_server):
    """With the engine paused, MAX_CONCURRENT_REQUESTS + MAX_QUEUED_REQUESTS requests fill the
    server; one more on any generation route is a 429 at once, and the others then complete."""
    capacity = live_server.max_concurrent + live_server.max_queued
    rejected = live_server.metric("vllm_requests_total", status="rejected")

    async def scenario():
        async with httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers, timeout=120,
                                     limits=httpx.Limits(max_connections=capacity + 8)) as c:
            with live_server.engine_paused():
                held = [asyncio.ensure_future(c.post("/generate", json={"prompt": f"hold {i}", "max_tokens": 2}))
                        for i in range(capacity)]
                for _ in range(400):
                    if live_server.metric("vllm_queued_requests") == live_server.max_queued:
                        break
                    await asyncio.sleep(0.05)
                extra = {path: await c.post(path, json=body) for path, body in GENERATION_BODIES.items()}
                # routes that do not generate are not queued
                models = await c.get("/v1/models")
            return [await h for h in held], extra, models

    held, extra, models = asyncio.run(scenario())
    for path, r in extra.items():
        assert r.status_code == 429, (path, r.status_code, r.text)
        assert r.headers["retry-after"].isdigit() and r.json()["error"]["type"] == "rate_limit_error"
    assert models.status_code == 200
    assert [r.status_code for r in held] == [200] * capacity
    assert live_server.metric("vllm_requests_total", status="rejected") - rejected == len(GENERATION_BODIES)
    for path in GENERATION_BODIES:
        assert live_server.metric("vllm_requests_total", status="rejected", endpoint=path) >= 1, path


def _raw_post(live_server, path: str, body: dict) -> socket.socket:
    host, port = live_server.url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {live_server.api_key}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


LONG = {"max_tokens": 900, "ignore_eos": True}


@pytest.mark.parametrize(("path", "body"), [
    ("/generate", {"prompt": "long", "stream": True, **LONG}),
    ("/generate", {"prompt": "long", **LONG}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "long"}], "stream": True, **LONG}),
    ("/v1/completions", {"prompt": "long", **LONG}),
], ids=["generate-stream", "generate-plain", "chat-stream", "completions-plain"])
def test_client_disconnect_aborts_the_engine_request(live_server, path, body):
    aborted = live_server.metric("vllm_requests_total", status="aborted", endpoint=path)
    finished = live_server.metric("vllm:request_success_total", finished_reason="length")
    tokens = live_server.metric("vllm:generation_tokens_total")
    with live_server.engine_paused():  # the request cannot finish before the client hangs up
        sock = _raw_post(live_server, path, body)
        wait_for(lambda: live_server.metric("vllm_active_requests") == 1, "the request to be admitted")
        sock.close()
        wait_for(lambda: live_server.metric("vllm_requests_total", status="aborted", endpoint=path) == aborted + 1,
                 "our abort count")
    # The engine now gets the request and its abort. A one-token request queued behind them
    # finishes in one step; had the abort not reached the engine, 900 tokens would still be running.
    follow_up = httpx.post(f"{live_server.url}/generate", headers=live_server.headers, timeout=60,
                           json={"prompt": "after", "max_tokens": 1})
    assert follow_up.status_code == 200
    assert live_server.metric("vllm:num_requests_running") == 0
    assert live_server.metric("vllm:request_success_total", finished_reason="length") == finished + 1
    assert live_server.metric("vllm:generation_tokens_total") - tokens < 900
    wait_for(lambda: live_server.metric("vllm_active_requests") == 0, "the slot to be released")
