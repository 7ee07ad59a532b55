"""Serve control requests on a UNIX socket that only the service's own user can open.

One JSON object per line each way: `{"op": "status", "params": {...}}` ->
`{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`. A malformed request is
answered with an error and logged; it never reaches a handler.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from drivers.errors import DcgateError

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any]], Any]
MAX_REQUEST_BYTES = 64 * 1024


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    handlers: dict[str, Handler]


class _Connection(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        if not _peer_allowed(self.request):
            log.warning("control: refused a connection from another user")
            return
        for raw in self.rfile:
            if len(raw) > MAX_REQUEST_BYTES:
                self._reply({"ok": False, "error": "request too large"})
                return
            self._reply(self._answer(raw))

    def _answer(self, raw: bytes) -> dict[str, Any]:
        try:
            request = json.loads(raw)
            op, params = request["op"], request.get("params", {})
            if not isinstance(op, str) or not isinstance(params, dict):
                raise TypeError("op must be a string and params an object")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("control: malformed request rejected (%s)", exc)
            return {"ok": False, "error": f"malformed request: {exc}"}
        handler = self.server.handlers.get(op)
        if handler is None:
            return {"ok": False, "error": f"unknown operation {op!r}; known: {', '.join(sorted(self.server.handlers))}"}
        try:
            return {"ok": True, "result": handler(params)}
        except DcgateError as exc:  # the exit code travels too: a bad NIP is bad usage (2) in both modes
            return {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
        except Exception as exc:
            log.exception("control: operation %s failed", op)
            return {"ok": False, "error": f"internal error in {op}: {exc}"}

    def _reply(self, message: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(message, default=str).encode() + b"\n")
        self.wfile.flush()


def _peer_allowed(sock: socket.socket) -> bool:
    """Only our own user (or root) may control the gateway; the socket mode says so too."""
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except OSError:
        return False
    return uid in (os.getuid(), 0)


class ControlServer:
    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self._handlers = dict(handlers)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # a stale socket from a killed run; safe to remove because we hold the data_dir lock
        self.path.unlink(missing_ok=True)
        old_umask = os.umask(0o177)  # the socket is born owner-only: no window where others can connect
        try:
            self._server = _Server(str(self.path), _Connection)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        self._server.handlers = self._handlers
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.5}, name="control-socket", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.path.unlink(missing_ok=True)
