"""`python -m server`: validate settings, start uvicorn on PORT (and /metrics on METRICS_PORT, the
same process and event loop), drain on SIGTERM, exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time

import uvicorn

from server import http_limits, metrics
from server.logs import setup_logging
from server.settings import SettingsError, load_settings

log = logging.getLogger("server")


class DrainingServer(uvicorn.Server):
    """First SIGTERM/SIGINT drains (in-flight requests finish, up to DRAIN_TIMEOUT_S) then exits;
    a second one exits at once."""

    def __init__(self, config: uvicorn.Config, server_app, drain_timeout_s: float,
                 metrics_listener: MetricsServer | None = None):
        super().__init__(config)
        self.server_app = server_app
        self.drain_timeout_s = drain_timeout_s
        self.metrics_listener = metrics_listener
        self.draining = False
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets=None):
        self.loop = asyncio.get_running_loop()
        beside = asyncio.create_task(self.metrics_listener.serve()) if self.metrics_listener else None
        try:
            await super().serve(sockets)
        finally:
            if beside is not None:  # scraped through the drain; stops with the API
                self.metrics_listener.should_exit = True
                await beside
        if not self.server_app.engine.load_finished:  # before asyncio.run joins the loading thread
            abandon_load()

    @contextlib.contextmanager
    def capture_signals(self):
        """The loop's own signal handling (uvloop runs signal.signal handlers late under load)."""
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            self.loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in signals:
                self.loop.remove_signal_handler(sig)

    def handle_exit(self, sig: int, frame) -> None:
        if self.draining or self.loop is None or not self.started:
            self.should_exit = True
            if self.draining:
                self.force_exit = True
            return
        self.draining = True
        self._drain_task = self.loop.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        from server.app import drain

        await drain(self.server_app, self.drain_timeout_s)
        self.should_exit = True


class MetricsServer(uvicorn.Server):
    """The METRICS_PORT listener (server.metrics.app) on the API server's event loop, on a socket
    bound before anything starts; the API server owns the signals and says when it stops."""

    def __init__(self, settings, sock: socket.socket):
        super().__init__(uvicorn.Config(metrics.app, log_config=None, access_log=False, lifespan="off",
                                        http=http_limits.protocol_class(http_limits.limits_from(settings)),
                                        timeout_keep_alive=settings.idle_timeout_s))
        self.sock = sock

    async def serve(self, sockets=None):
        await super().serve([self.sock])

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def bind_metrics(settings) -> socket.socket | None:
    """The metrics listener's socket (None with METRICS_PORT=0); a port already taken is a SettingsError
    now, not an exit of the event loop after the model has started loading."""
    if not settings.metrics_port:
        return None
    try:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        return socket.create_server((settings.host, settings.metrics_port), family=family, backlog=128)
    except OSError as exc:
        raise SettingsError(f"METRICS_PORT={settings.metrics_port} cannot be bound on {settings.host}: "
                            f"{exc.strerror or exc}") from None


def abandon_load() -> None:
    """Stopped while the model was loading: the load runs in a thread that cannot be cancelled and
    that the interpreter would wait for at exit (minutes, past the pod's grace period). Stop the
    engine processes it started (vLLM's engine core handles SIGTERM and stops its workers), then
    exit at once."""
    log.info("stopped during model load")
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    deadline = time.monotonic() + 3
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
    logging.shutdown()
    os._exit(0)


def main() -> int:
    try:
        settings = load_settings()
        setup_logging(settings.log_level)
        from server import vllm_seam

        vllm_args = vllm_seam.parse_args(settings)
        vllm_config = vllm_seam.engine_config(vllm_args)
        metrics_socket = bind_metrics(settings)
    except SettingsError as exc:
        print(f"server: {exc}", file=sys.stderr)
        return 2
    from server.app import create_app

    server: DrainingServer | None = None

    def on_fatal() -> None:
        if server is not None:
            server.should_exit = True

    app, server_app = create_app(settings, vllm_args, vllm_config, on_fatal=on_fatal)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                            loop="uvloop", http=http_limits.protocol_class(http_limits.limits_from(settings)),
                            timeout_keep_alive=settings.idle_timeout_s, timeout_graceful_shutdown=5)
    beside = MetricsServer(settings, metrics_socket) if metrics_socket is not None else None
    server = DrainingServer(config, server_app, settings.drain_timeout_s, beside)
    server.run()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if server_app.engine.status == "failed":
        print(f"server: model load failed: {server_app.engine.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
