"""The METRICS_PORT listener without an engine: its own uvicorn server on the event loop, serving GET
/metrics and nothing else; the API port's /metrics answer when it is on; the settings that place it."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from server.__main__ import MetricsServer, bind_metrics
from server.settings import SettingsError, load_settings

from llmctl.procs import free_port


def settings(tiny_model_dir, **env):
    return load_settings({"MODEL_PATH": str(tiny_model_dir), "HOST": "127.0.0.1", **env})


def test_metrics_port_settings(tiny_model_dir):
    assert settings(tiny_model_dir).metrics_port == 9100
    assert settings(tiny_model_dir, METRICS_PORT="0").metrics_port == 0
    assert bind_metrics(settings(tiny_model_dir, METRICS_PORT="0")) is None
    with pytest.raises(SettingsError, match="METRICS_PORT=8000 is PORT too"):
        settings(tiny_model_dir, METRICS_PORT="8000")
    with pytest.raises(SettingsError, match="METRICS_PORT=70000 must be between 0 and 65535"):
        settings(tiny_model_dir, METRICS_PORT="70000")


def test_a_taken_metrics_port_is_a_settings_error_before_anything_starts(tiny_model_dir):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(SettingsError, match=f"METRICS_PORT={port} cannot be bound on 127.0.0.1"):
            bind_metrics(settings(tiny_model_dir, METRICS_PORT=str(port)))


def test_the_listener_serves_metrics_only_and_stops_when_told(tiny_model_dir):
    port = free_port()
    server = MetricsServer(settings(tiny_model_dir, METRICS_PORT=str(port)),
                           bind_metrics(settings(tiny_model_dir, METRICS_PORT=str(port))))

    async def scenario():
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            scraped = await client.get("/metrics")
            assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
            assert "vllm_requests_total" in scraped.text and "vllm_model_loaded" in scraped.text
            for method, path in (("GET", "/v1/models"), ("POST", "/v1/completions"), ("POST", "/metrics")):
                other = await client.request(method, path, json={})
                assert other.status_code == 404 and other.json()["error"]["code"] == 404, (method, path)
        server.should_exit = True
        await asyncio.wait_for(serving, 10)

    asyncio.run(scenario())
    with socket.create_server(("127.0.0.1", port)):  # the socket was closed with the server
        pass


def test_the_api_port_points_at_the_metrics_port_or_serves_it_when_zero():
    from server import metrics

    async def get_metrics(metrics_port: int):
        transport = httpx.ASGITransport(app=metrics.on_api_port(metrics_port))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get("/metrics")

    moved = asyncio.run(get_metrics(9100))
    assert moved.status_code == 404 and "metrics port (9100)" in moved.json()["error"]["message"]
    here = asyncio.run(get_metrics(0))
    assert here.status_code == 200 and "vllm_requests_total" in here.text
