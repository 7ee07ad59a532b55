"""A real Network UPS Tools server for tests: `dummy-ups` replaying a `.seq` script, and `upsd`.

Everything lives in a tmp dir: NUT_CONFPATH (ups.conf, upsd.conf, upsd.users), NUT_STATEPATH (the
driver's socket) and NUT_ALTPIDPATH (pid files) all point there, so /etc/nut and /run/nut are never
touched. Started as root, both programs would switch to the `nut` user, which cannot use the tmp
dir: `-u root` keeps them as the user the tests run as.

The script runs in `dummy-once` mode: read once to the end, pausing at each `TIMER n` line (the
device's own pacing), then it stays in its last state instead of looping back to the start.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from drivers.nut.client import NutClient, NutError
from tests.support.ports import free_port, port_open
from tests.support.waiting import wait_until


def _binary(name: str) -> str:
    for candidate in (f"/lib/nut/{name}", f"/usr/lib/nut/{name}", f"/sbin/{name}", f"/usr/sbin/{name}"):
        if Path(candidate).exists():
            return candidate
    found = shutil.which(name)
    if found is None:  # an error, never a skip: the UPS tests must run
        raise RuntimeError(f"NUT's {name} is not installed: apt-get install nut-server")
    return found


class NutServer:
    def __init__(self, workdir: Path, script: str, *, ups_name: str = "testups",
                 users: dict[str, str] | None = None, port: int | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.script = script
        self.ups_name = ups_name
        self.users = users or {}
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.upsd_bin, self.driver_bin = _binary("upsd"), _binary("dummy-ups")
        self.env = {**os.environ, "NUT_CONFPATH": str(workdir), "NUT_STATEPATH": str(workdir),
                    "NUT_ALTPIDPATH": str(workdir)}
        self.as_root = ["-u", "root"] if os.geteuid() == 0 else []
        self.driver: subprocess.Popen[bytes] | None = None
        self.upsd: subprocess.Popen[bytes] | None = None
        self.driver_started_mono: float | None = None
        self._logs: list = []

    def _logfile(self, name: str):  # type: ignore[no-untyped-def]
        handle = (self.workdir / name).open("ab")
        self._logs.append(handle)
        return handle

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    def _write_conf(self) -> None:
        seq = self.workdir / "script.seq"
        seq.write_text(self.script)
        (self.workdir / "ups.conf").write_text(
            f"[{self.ups_name}]\n"
            "  driver = dummy-ups\n"
            f"  port = {seq}\n"
            "  mode = dummy-once\n"   # play the script once; dummy-loop would start it over
            "  pollinterval = 1\n"    # how often the driver looks at its TIMER: bounds the pacing error to 1 s
            '  desc = "dcgate test UPS"\n'
        )
        (self.workdir / "upsd.conf").write_text(f"LISTEN {self.host} {self.port}\nMAXAGE 15\n")
        users = self.workdir / "upsd.users"
        users.write_text("".join(f"[{name}]\n  password = {pw}\n  upsmon secondary\n"
                                 for name, pw in self.users.items()))
        users.chmod(0o600)

    def start(self) -> NutServer:
        self._write_conf()
        self.start_driver()
        self.start_upsd()
        return self

    def start_driver(self) -> None:
        self.driver = subprocess.Popen(
            [self.driver_bin, "-a", self.ups_name, "-F", *self.as_root], env=self.env,
            stdout=self._logfile("driver.log"), stderr=subprocess.STDOUT,
        )
        self.driver_started_mono = time.monotonic()  # the script's clock: TIMERs count from here
        socket_path = self.workdir / f"dummy-ups-{self.ups_name}"
        wait_until(lambda: socket_path.exists() or self.driver.poll() is not None,  # type: ignore[union-attr]
                   10, message="dummy-ups to open its socket")
        if self.driver.poll() is not None:
            raise RuntimeError(f"dummy-ups exited at start:\n{self.log('driver.log')}")

    def start_upsd(self) -> None:
        self.upsd = subprocess.Popen(
            [self.upsd_bin, "-F", *self.as_root], env=self.env,
            stdout=self._logfile("upsd.log"), stderr=subprocess.STDOUT,
        )
        wait_until(lambda: port_open(self.port) or self.upsd.poll() is not None,  # type: ignore[union-attr]
                   10, message=f"upsd to listen on {self.port}")
        if self.upsd.poll() is not None:
            raise RuntimeError(f"upsd exited at start:\n{self.log('upsd.log')}")
        wait_until(self._driver_connected, 15, message=lambda: f"upsd to serve {self.ups_name}:\n"
                   + self.log("upsd.log"))

    def _driver_connected(self) -> bool:
        with NutClient(self.host, self.port, timeout_s=2) as client:
            try:
                return client.list_vars(self.ups_name).get("ups.status", "WAIT") != "WAIT"
            except NutError:
                return False

    def stop_upsd(self) -> None:
        _terminate(self.upsd)
        self.upsd = None

    def stop(self) -> None:
        _terminate(self.upsd)
        _terminate(self.driver)
        self.upsd = self.driver = None
        for handle in self._logs:
            handle.close()
        self._logs.clear()

    def log(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
