"""A real serial line for tests: two linked pseudo-terminals made by `socat`, like a null-modem cable."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

from tests.support.waiting import wait_until


class PtyPair:
    """`a` and `b` are symlinks to the two ptys; bytes written to one come out of the other."""

    def __init__(self, a: Path, b: Path) -> None:
        binary = shutil.which("socat") or "/usr/bin/socat"
        if not Path(binary).exists():
            raise RuntimeError("socat is not installed: run `bash tests/run.sh`, which installs it")
        self.binary = binary
        self.a, self.b = a, b
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PtyPair:
        self.process = subprocess.Popen(
            [self.binary, "-d", "-d", f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        wait_until(lambda: (self.a.exists() and self.b.exists()) or self.process.poll() is not None,  # type: ignore[union-attr]
                   10, message=f"socat to create {self.a} and {self.b}")
        if self.process.poll() is not None:
            error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
            raise RuntimeError(f"socat exited at start: {error}")
        return self

    def stop(self) -> None:
        """SIGTERM: socat removes its links; both ptys go away, as when a USB adapter is unplugged."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None
        wait_until(lambda: not self.a.exists() and not self.b.exists(), 10, message="socat's links to go away")

    def __enter__(self) -> PtyPair:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
