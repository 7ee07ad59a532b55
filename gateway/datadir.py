"""The data directory: created owner-only, and locked so exactly one gateway writes to it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from gateway.errors import AlreadyRunningError, ConfigError


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / "dcgate.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.data_dir.stat().st_uid == os.getuid():
                os.chmod(self.data_dir, 0o700)  # biometric data will live here: owner only
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"data_dir {str(self.data_dir)!r}: cannot use it ({exc.strerror}). "
                "Fix: create it for the service user, or point data_dir elsewhere"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunningError(
                f"another dcgate (pid {owner}) is already running on data_dir {self.data_dir}; "
                "only one gateway may write to it. Fix: stop it first (systemctl stop dcgate)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the kernel does the same after a crash
            self._fd = None
