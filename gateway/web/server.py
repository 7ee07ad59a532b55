"""The console's HTTP server: uvicorn in one thread of the gateway, on a socket bound before start returns.

Binding first means a port already in use stops the gateway's start with a plain message, instead
of a thread that dies later. uvicorn's own loop wakes 10 times a second; on a Pi that idles all day,
this one wakes once a second (to refresh the Date header) or when asked to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from typing import Any

import uvicorn

from gateway.config.web import WebConfig
from gateway.errors import ConfigError

log = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    """uvicorn.Server with a main loop that sleeps until stop() instead of polling every 100 ms."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while not await self.on_tick(0):  # counter 0: refresh the Date header on every tick
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    def wake(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)


class WebServer:
    def __init__(self, app: Any, config: WebConfig) -> None:
        self._config = config
        self._sock = _bind(config)
        self._server = _QuietServer(uvicorn.Config(
            app, lifespan="off", access_log=False, log_level="warning", server_header=False,
            ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
            ssl_keyfile=str(config.tls_key) if config.tls_key else None,
            timeout_keep_alive=5, limit_concurrency=64, h11_max_incomplete_event_size=64 * 1024,
        ))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._config.https else "http"
        host = self._sock.getsockname()[0]
        return f"{scheme}://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="web-console", daemon=True)
        self._thread.start()
        log.info("web console on %s", self.url)

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # SystemExit included: uvicorn exits on fatal errors; the gateway stays up
            log.error("web console stopped: %s", exc)

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        self._server.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self._sock.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def _bind(config: WebConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.listen else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.listen, config.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"web.port {config.port} on {config.listen} cannot be used ({exc.strerror}). Fix: stop what listens "
            f"there (ss -ltnp 'sport = :{config.port}') or set another [web] port"
        ) from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock
