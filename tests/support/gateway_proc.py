"""The gateway as a real process (`python -m gateway run`), started, killed and queried like in production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.config.loader import load_config
from gateway.control.client import call
from gateway.errors import ServiceNotRunningError
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """`dcgate ARGS` in a subprocess, as a user would type it."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=timeout,
        cwd=REPO, env={**os.environ, **(env or {})}, input=input_text,
    )


class GatewayProcess:
    def __init__(self, config_path: Path, *, env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.config = load_config(config_path)
        self.log_path = config_path.with_suffix(".log")
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    def start(self, wait: bool = True) -> GatewayProcess:
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process' lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(self.config_path)],
            stdout=self._log_file, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **self.env},
        )
        if wait:
            wait_until(self._ready_or_dead, 30, message=lambda: f"gateway to start\n{self.log_tail()}")
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited with {self.process.returncode}:\n{self.log_tail()}")
        return self

    def _ready_or_dead(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            return True
        try:
            self.status()
            return True
        except ServiceNotRunningError:
            return False

    def status(self) -> dict[str, Any]:
        return call(self.config.control_socket_path, "status")

    def control(self, op: str, params: dict[str, Any] | None = None) -> Any:
        return call(self.config.control_socket_path, op, params)

    def kill(self) -> None:
        """SIGKILL: no chance to flush or say goodbye, like a crash or a power cut of the process."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self._close_log()

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._close_log()
        return code

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
