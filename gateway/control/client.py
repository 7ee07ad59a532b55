"""The CLI's side of the control socket."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.errors import ControlError, ServiceNotRunningError


def call(path: Path, op: str, params: Mapping[str, Any] | None = None, timeout: float = 10.0) -> Any:
    """Send one request to the running gateway and return its result, or raise with its error."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise ServiceNotRunningError(
            f"the gateway is not running (no control socket at {path}). Fix: start it with `dcgate run`"
        ) from None
    except PermissionError:
        sock.close()
        raise ServiceNotRunningError(
            f"not allowed to open {path}: run this command as the gateway's user (or root)"
        ) from None
    try:
        with sock, sock.makefile("rwb") as stream:
            stream.write(json.dumps({"op": op, "params": dict(params or {})}).encode() + b"\n")
            stream.flush()
            line = stream.readline()
    except OSError as exc:
        raise ServiceNotRunningError(f"lost the connection to the gateway at {path}: {exc}") from None
    if not line:
        raise ServiceNotRunningError(f"the gateway closed the control connection at {path} without answering")
    reply = json.loads(line)
    if not reply.get("ok"):
        error = ControlError(reply.get("error", "request refused"))
        code = reply.get("exit_code")
        if isinstance(code, int) and code in (1, 2):
            error.exit_code = code
        raise error
    return reply.get("result")
