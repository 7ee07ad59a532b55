"""A real mosquitto broker on a free loopback port, with persistence so it can be stopped and restarted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.support.ports import free_port, port_open
from tests.support.waiting import wait_until


class Mosquitto:
    def __init__(self, workdir: Path, *, port: int | None = None, extra_conf: str = "",
                 allow_anonymous: bool = True) -> None:
        binary = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if Path(p).exists()), None
        )
        if binary is None:
            raise RuntimeError("mosquitto is not installed: run `bash tests/run.sh`, which installs it")
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self.extra_conf = extra_conf
        self.allow_anonymous = allow_anonymous
        self.process: subprocess.Popen[bytes] | None = None

    def _write_conf(self) -> None:
        self.conf_path.write_text(
            # Started as root, mosquitto would switch to the `mosquitto` user, which cannot write its
            # persistence file or log in the test's directory: persistent sessions would then be lost
            # silently across a restart. Stay the user the tests run as.
            ("user root\n" if os.geteuid() == 0 else "")
            + f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            # a large limit for offline persistent subscribers; not 0 ("no limit"): with 0, mosquitto
            # 2.0.11 drops a client's connection after it refuses one of its QoS 1 publishes (ACL)
            "max_queued_messages 10000000\n"
            "max_inflight_messages 100\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            + self.extra_conf
        )

    def start(self) -> Mosquitto:
        self._write_conf()
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.conf_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_until(
            lambda: port_open(self.port) or self.process.poll() is not None,  # type: ignore[union-attr]
            10, message=f"mosquitto to listen on {self.port}",
        )
        if self.process.poll() is not None:
            error = self.process.stderr.read().decode() if self.process.stderr else ""
            raise RuntimeError(f"mosquitto exited at start: {error}\n{self.log_tail()}")
        return self

    def stop(self) -> None:
        """Graceful stop (SIGTERM): mosquitto saves its persistent sessions."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
