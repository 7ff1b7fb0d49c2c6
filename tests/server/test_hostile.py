"""Hostile clients against the real server (the session's vLLM CPU engine), loopback only, bounded
in count and time: the connection is cut off before it costs memory, the body is refused before
any tokenizer work, client mistakes are 4xx that do not count as errors, /health stays fast."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time

import httpx
import psutil
import pytest

pytestmark = pytest.mark.engine
HEADER_TIMEOUT_S, IDLE_TIMEOUT_S = 10, 5  # the server's defaults
HUGE_PROMPT = "a " * 500_000  # 1 MB of text, just under the body limit: ~2.5 s of tokenizing


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _closed_by_server(sock: socket.socket) -> tuple[bool, bytes]:
    sock.setblocking(False)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
        return True, data
    except BlockingIOError:
        return False, data
    except OSError:
        return True, data
    finally:
        sock.setblocking(True)


def _post_raw(url: str, path: str, body: bytes, api_key: str) -> tuple[int, dict]:
    """A POST of ready-made bytes on a raw socket: (status, JSON answer). The client does next to no
    Python work (sendall of one buffer), so /health timings measure the server, not the client."""
    with _connect(url) as sock:
        sock.settimeout(60)
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api_key}\r\nConnection: close\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def _header_flood(url: str, mib: int = 16) -> int:
    """A never-finished 16 MiB header; returns the bytes the server took before cutting it off."""
    sock = _connect(url)
    sent = 0
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(mib * 16):
            sock.sendall(b"a" * 65536)
            sent += 65536
    except OSError:
        pass
    finally:
        sock.close()
    return sent


def test_health_answers_within_a_second_while_hostile_clients_run(live_server):
    """Eight 16 MiB header floods (then a 100k-entry stop list and eight 1 MB prompts), slow headers
    and an idle connection throughout: /health never takes 1 s, the floods are cut off and leave
    the server's memory as it was, every hostile request is refused by the server's own limits,
    and the slow connections are closed on time."""
    url = live_server.url
    proc = psutil.Process(live_server.process.pid)
    rss_before = proc.memory_info().rss
    slow, idle = _connect(url), _connect(url)
    slow.sendall(b"GET /health HTTP/1.1\r\n")
    started = time.monotonic()

    stop_list = json.dumps({"prompt": "x", "max_tokens": 2, "stop": [f"s{i}" for i in range(100_000)]}).encode()
    huge_prompt = json.dumps({"prompt": HUGE_PROMPT, "max_tokens": 2}).encode()

    def post(body: bytes) -> tuple[int, dict]:
        return _post_raw(url, "/generate", body, live_server.api_key)

    worst, rss_floods, slow_answer, idle_closed_at = 0.0, None, b"", None
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        floods = [pool.submit(_header_flood, url) for _ in range(8)]
        bodies = []  # sent once the floods are over, so the RSS measured is theirs
        while time.monotonic() - started < HEADER_TIMEOUT_S + 3:
            t = time.perf_counter()
            assert httpx.get(f"{url}/health", timeout=10).status_code == 200
            worst = max(worst, time.perf_counter() - t)
            if rss_floods is None and all(f.done() for f in floods):
                rss_floods = proc.memory_info().rss
                bodies.append(pool.submit(post, stop_list))
                bodies += [pool.submit(post, huge_prompt) for _ in range(8)]
            try:
                slow.sendall(b"X-A: b\r\n")
            except OSError:
                pass
            closed, data = _closed_by_server(slow)
            slow_answer += data
            if idle_closed_at is None and _closed_by_server(idle)[0]:
                idle_closed_at = time.monotonic() - started
            if closed and idle_closed_at is not None and bodies and all(f.done() for f in bodies):
                break
            time.sleep(0.05)
        slow_closed_at = time.monotonic() - started
        flood_bytes = [f.result() for f in floods]
        stop_reply, *prompt_replies = [f.result() for f in bodies]
    slow.close()
    idle.close()

    assert worst < 1.0, f"/health took {worst:.2f} s"
    assert max(flood_bytes) < 8 * 2**20, flood_bytes  # cut off after the 32 KiB header limit (+ socket buffers)
    assert rss_floods - rss_before < 16 * 2**20, f"8 header floods grew RSS by {(rss_floods - rss_before) / 2**20:.0f} MiB"
    assert stop_reply[0] == 400 and stop_reply[1]["error"]["param"] == "stop", stop_reply
    for status, reply in prompt_replies:
        assert status == 400 and "MAX_PROMPT_CHARS" in reply["error"]["message"], reply
    assert slow_answer.startswith(b"HTTP/1.1 408 ") and HEADER_TIMEOUT_S - 1 < slow_closed_at < HEADER_TIMEOUT_S + 3
    assert idle_closed_at is not None and idle_closed_at < IDLE_TIMEOUT_S + 2


@pytest.mark.parametrize(("path", "body"), [
    ("/generate", {"prompt": HUGE_PROMPT}),
    ("/v1/completions", {"prompt": HUGE_PROMPT}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": HUGE_PROMPT}]}),
    ("/tokenize", {"prompt": HUGE_PROMPT}),
], ids=["generate", "completions", "chat", "tokenize"])
def test_a_huge_prompt_is_refused_before_tokenization(live_server, path, body):
    """Tokenizing 1 MB takes seconds; the refusal takes milliseconds, and no prompt token is counted."""
    prompt_tokens = live_server.metric("vllm:prompt_tokens_total")
    started = time.perf_counter()
    r = httpx.post(f"{live_server.url}{path}", headers=live_server.headers, json=body, timeout=60)
    took = time.perf_counter() - started
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt", r.text
    assert f"at most {16 * live_server.max_model_len} are allowed" in r.json()["error"]["message"]
    assert took < 0.5 and live_server.metric("vllm:prompt_tokens_total") == prompt_tokens


CLIENT_MISTAKES = [
    ("/generate", {"prompt": "x", "top_k": 2**64}, "top_k"),
    ("/v1/completions", {"prompt": "x", "top_k": 2**64}, "top_k"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_k": 2**64}, "top_k"),
    ("/v1/completions", {"prompt": "x", "seed": 2**64}, "seed"),
    ("/generate", {"prompt": "x", "stop": ""}, "stop"),
    ("/v1/completions", {"prompt": ["x"] * 100_000}, "prompt"),
    ("/v1/completions", {"prompt": "x", "n": 10**6}, "n"),
    ("/v1/completions", {"prompt": "x", "best_of": 10**6}, "best_of"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 10**6}, "n"),
    ("/v1/completions", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ("/v1/messages", {"model": "tiny-llama", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}],
                      "stop_sequences": ["s"] * 5}, "stop_sequences"),
]


def test_client_mistakes_are_400s_that_do_not_count_as_errors(live_server):
    errors = live_server.metric("vllm_requests_total", status="error")
    invalid = live_server.metric("vllm_requests_total", status="invalid")
    for path, body, param in CLIENT_MISTAKES:
        r = httpx.post(f"{live_server.url}{path}", headers=live_server.headers, json={"max_tokens": 2, **body}, timeout=60)
        assert r.status_code == 400, (path, param, r.text)
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["param"] == param and error["code"] == 400
    assert live_server.metric("vllm_requests_total", status="error") == errors
    assert live_server.metric("vllm_requests_total", status="invalid") - invalid == len(CLIENT_MISTAKES)
    assert httpx.get(f"{live_server.url}/health").json()["status"] == "ok"


def test_a_large_top_k_within_64_bits_still_works(live_server):
    """The 64-bit rule refuses only what cannot be a number vLLM stores; vLLM takes the rest."""
    r = httpx.post(f"{live_server.url}/v1/completions", headers=live_server.headers, timeout=60,
                   json={"prompt": "x", "max_tokens": 2, "top_k": 2**40})
    assert r.status_code in (200, 400), r.text
    assert httpx.get(f"{live_server.url}/health").json()["status"] == "ok"
    body = json.dumps({"prompt": "x", "max_tokens": 2, "stop": ["a", "bb"]})
    r = httpx.post(f"{live_server.url}/v1/completions", headers={**live_server.headers, "content-type": "application/json"},
                   content=body, timeout=60)
    assert r.status_code == 200, r.text
