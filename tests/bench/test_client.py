"""The request functions parse each endpoint's stream and turn every failure into a counted result."""

from __future__ import annotations

import asyncio
import socket

import pytest

from llmctl.actions.bench import BenchOptions, run_bench
from llmctl.actions.bench_target import ResolvedTarget
from llmctl.bench.client import RequestInput, SSEParser, Target, make_session, send_request
from llmctl.errors import LlmctlError
from tests.bench.fakeserver import FakeServer, Script


def _send(target: Target, req: RequestInput = RequestInput("hello", 1, 6)):
    async def main():
        session = make_session(None)
        try:
            return await send_request(session, target, req)
        finally:
            await session.close()

    return asyncio.run(main())


def test_sse_parser_handles_split_events_comments_and_crlf():
    p = SSEParser()
    assert p.feed(b'data: {"a"') == []
    assert p.feed(b': 1}\r\n\r\n: ping\n\ndata: [DO') == ['{"a": 1}']
    assert p.feed(b"NE]\n\n") == ["[DONE]"]
    assert p.feed("data: caf\u00e9".encode()[:-1]) == []  # split inside a UTF-8 character
    assert p.feed("data: caf\u00e9".encode()[-1:]) == []
    assert p.close() == ["caf\u00e9"]


@pytest.mark.parametrize("endpoint", ["/generate", "/v1/completions", "/v1/chat/completions"])
def test_each_endpoint_streams_with_multi_token_chunks(endpoint):
    with FakeServer(Script(tokens=6, tokens_per_chunk=2, ttft_s=0.02, itl_s=0.01)) as srv:
        r = _send(Target(srv.url, endpoint, api_key="k", model="m"))
    assert r.success, r.detail
    assert r.output_tokens == 6 and r.prompt_len == 3  # from the server's usage report
    assert len(r.itl) == 2  # three chunks of two tokens: two gaps
    assert 0.015 < r.ttft < r.latency
    assert r.latency == pytest.approx(r.ttft + sum(r.itl))
    assert r.generated_text == "tok " * 6


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_is_a_result():
    r = _send(Target(f"http://127.0.0.1:{_refused_port()}"))
    assert not r.success and r.error == "connection refused"


@pytest.mark.parametrize("status", [429, 500])
def test_http_errors_are_results_with_the_server_message(status):
    with FakeServer(Script(status=status)) as srv:
        r = _send(Target(srv.url))
    assert (r.success, r.error, r.detail) == (False, f"HTTP {status}", f"scripted {status}")


def test_timeout_is_a_result():
    with FakeServer(Script(hang=True)) as srv:
        r = _send(Target(srv.url, timeout_s=0.3))
    assert not r.success and r.error == "timeout"


def test_failures_are_counted_not_fatal():
    """A run where every third request gets a 500 completes and reports the breakdown."""
    with FakeServer(Script(fail_every=3, tokens=4)) as srv:
        doc = run_bench(
            BenchOptions(num_prompts=12, concurrency=2, output_len=4, warmup=0, crosscheck=True), ResolvedTarget(srv.url, None, "flag")
        )
    assert doc["completed"] == 8 and doc["failed"] == 4
    assert doc["llmctl"]["errors_by_type"] == {"HTTP 500": 4}
    assert doc["llmctl"]["error_samples"]["HTTP 500"] == "scripted 500"
    assert doc["llmctl"]["crosscheck"]["status"] == "ok"
    assert doc["llmctl"]["crosscheck"]["server_requests"] == {"success": 8.0, "error": 4.0}
    assert doc["llmctl"]["crosscheck"]["disagreements"] == []


def test_unreachable_endpoint_fails_before_any_request():
    url = f"http://127.0.0.1:{_refused_port()}"
    with pytest.raises(LlmctlError, match="connection refused") as err:
        run_bench(BenchOptions(num_prompts=5, warmup=1), ResolvedTarget(url, None, "local"))
    assert err.value.message == f"cannot reach {url} (local): connection refused"
    assert "llmctl local up" in err.value.hint
