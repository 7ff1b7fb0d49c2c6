"""Wake-on-request measured for real: the KEDA HTTP add-on's interceptor (tests/doubles/interceptor.py) in front
of the real server while it starts from nothing (its own engine start: the cold start of a scaled-to-zero
endpoint, less the node launch and the image pull).

The first request finds no ready endpoint: the interceptor holds it and KEDA wakes the workload (the server
is spawned then). Requests that come during the start are held too; once /ready answers 200 every held
request is forwarded and answered, none lost. Behind an interceptor whose conditionWait is shorter than the
start, a request gets the interceptor's own answer, 502 `error on backend (...)`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time

import httpx
import pytest

from llmctl.procs import free_port
from tests.doubles.interceptor import InterceptorDouble
from tests.fixtures.server import START_TIMEOUT_S, start_server, stop_server, wait_for

pytestmark = pytest.mark.engine
SHORT_HOLD_S = 2.0
DURING_WAKE = 4  # requests sent while the server starts, one a second


def test_the_first_request_after_zero_wakes_the_server_and_no_held_request_is_lost(tiny_model_dir, tmp_path,
                                                                                  record_property):
    port, key = free_port(), secrets.token_hex(16)
    woke: dict = {}

    def wake() -> None:  # KEDA's external-push trigger activates the ScaledObject: the pod starts
        woke["spawned"] = time.monotonic()
        woke["server"] = start_server(tiny_model_dir, tmp_path / "server.log", PORT=str(port), API_KEY=key)

    results: dict[str, tuple[int, str, float, float]] = {}

    def send(name: str, base: str, stream: bool = False) -> None:
        sent = time.monotonic()
        body = {"model": "tiny-llama", "prompt": "The endpoint wakes", "max_tokens": 8, "temperature": 0,
                "ignore_eos": True, "stream": stream}
        r = httpx.post(f"{base}/v1/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                       timeout=START_TIMEOUT_S + 60)
        results[name] = (r.status_code, r.text, sent, time.monotonic())

    holding = InterceptorDouble(("127.0.0.1", port), condition_wait_s=START_TIMEOUT_S, on_first_hold=wake).start()
    short = InterceptorDouble(("127.0.0.1", port), condition_wait_s=SHORT_HOLD_S).start()
    threads = []
    try:
        threads.append(threading.Thread(target=send, args=("first", holding.url)))
        threads[0].start()
        wait_for(lambda: woke.get("spawned"), "the held request to wake the server", 10)
        threads.append(threading.Thread(target=send, args=("short hold", short.url)))
        threads[-1].start()
        for i in range(DURING_WAKE):
            time.sleep(1)
            threads.append(threading.Thread(target=send, args=(f"during {i}", holding.url, i == 0)))
            threads[-1].start()
        for thread in threads:
            thread.join(START_TIMEOUT_S + 90)
        server = wait_for(lambda: woke.get("server"), "start_server to see /ready too", 10)
        assert holding.ready_since is not None

        status, text, sent, answered = results["first"]
        assert status == 200 and json.loads(text)["usage"]["completion_tokens"] == 8, text
        assert answered >= holding.ready_since  # answered after the wake, not before
        for name in [n for n in results if n.startswith("during")]:
            status, text, _, _ = results[name]
            assert status == 200, (name, text)
        assert "data: [DONE]" in results["during 0"][1]  # a stream is forwarded as it streams
        assert all(r.forwarded and r.held_s > 0.5 for r in holding.requests), holding.requests
        # none lost: the server counted every request the interceptor held
        assert server.metric("vllm_requests_total", status="success", endpoint="/v1/completions") == 1 + DURING_WAKE

        status, text, sent, answered = results["short hold"]
        assert status == 502 and text.startswith("error on backend (") and SHORT_HOLD_S <= answered - sent < 10, text
        assert not short.requests[0].forwarded

        spawned = woke["spawned"]
        wake_s, start_s = results["first"][3] - results["first"][2], holding.ready_since - spawned
        timeline = {"wake_s": round(wake_s, 2), "held_to_spawn_s": round(spawned - results["first"][2], 3),
                    "engine_start_s": round(start_s, 2),
                    "ready_to_first_answer_s": round(results["first"][3] - holding.ready_since, 3)}
        for k, v in timeline.items():
            record_property(k, v)
        print("wake-on-request timeline:", json.dumps(timeline))
        assert wake_s >= start_s
    finally:
        holding.stop()
        short.stop()
        if "spawned" in woke:  # a failed test must not leave the server starting behind it
            wait_for(lambda: "server" in woke or not any(t.name == "wake" for t in threading.enumerate()),
                     "the server's start to end", START_TIMEOUT_S)
        if "server" in woke:
            stop_server(woke["server"].process)
