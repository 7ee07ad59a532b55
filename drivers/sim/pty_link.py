"""An in-process serial link: a pseudo-terminal whose slave the real driver opens and whose master a
device emulator serves, so the running gateway can host a simulated fingerprint sensor without socat.

    sensor, link = start_sim_sensor(library={0: finger_template(7)})
    reader = FingerprintReader(link.port)      # the real driver, through pyserial, on /dev/pts/N
    ...
    reader.close(); sensor.stop(); link.close()

The link keeps its own descriptor of the slave open for its whole life. Without it, the master would
read EIO (readable at once, forever) whenever the driver closes its port to reconnect, and the emulator
thread would spin; with it, the master just sees silence, as a sensor whose host is unplugged does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import time
import tty
from typing import Any

from drivers.sim.fingerprint_device import FingerprintEmulator

#: how long `write` waits for room in the pty's buffer before dropping the rest, as a UART does
#: when nobody listens (a blocked write would hang the emulator thread and its `stop()`)
WRITE_TIMEOUT_S = 1.0


class PtyDevice:
    """A serial-like object on the pty master: what `FingerprintEmulator.start(device=...)` serves on."""

    def __init__(self, master_fd: int, timeout: float | None = 1.0) -> None:
        self.timeout = timeout
        self._fd = master_fd
        # self-pipe: `cancel_read` writes a byte so a `select` in `read` returns at once
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._fd, self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self._closed = False

    @property
    def is_open(self) -> bool:
        return not self._closed

    def read(self, size: int = 1) -> bytes:
        """Up to `size` bytes; fewer when `timeout` passes or `cancel_read` is called (pyserial's semantics)."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        out = bytearray()
        while len(out) < size and not self._closed:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._fd, self._wake_r], [], [], remaining)
            if self._wake_r in ready:
                self._drain_wake()
                break
            if not ready:
                break  # timeout
            try:
                chunk = os.read(self._fd, size - len(out))
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # no slave open (cannot happen while the link holds one): silence
                    break
                raise
            out += chunk
        return bytes(out)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write `data`; bytes that find no room within WRITE_TIMEOUT_S are dropped (returns the count written)."""
        view = memoryview(bytes(data))
        written = 0
        deadline = time.monotonic() + WRITE_TIMEOUT_S
        while written < len(view) and not self._closed:
            try:
                written += os.write(self._fd, view[written:])
                continue
            except BlockingIOError:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break  # nobody drains the slave: the rest is lost, as on an unplugged line
            select.select([], [self._fd], [], remaining)
        return written

    def flush(self) -> None:
        """Nothing to do: `write` hands the bytes to the kernel before it returns."""

    def reset_input_buffer(self) -> None:
        """Discard bytes the driver sent that nobody has read yet (as a sensor that is powered up afresh)."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 4096):
                pass

    def cancel_read(self) -> None:
        """Wake a blocked `read` at once; if none is blocked, the next `read` returns at once instead."""
        if not self._closed:
            with contextlib.suppress(BlockingIOError):  # the pipe is full: a wake-up is pending anyway
                os.write(self._wake_w, b"\0")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in (self._fd, self._wake_r, self._wake_w):
            os.close(fd)

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 64):
                pass


class PtyLink:
    """One pseudo-terminal pair. `port`: the slave's path, for the driver; `device`: the master, for the emulator."""

    def __init__(self, master_fd: int, slave_fd: int, *, timeout: float | None = 1.0) -> None:
        self._slave_fd = slave_fd  # held open for the link's life (see the module docstring)
        self.port: str = os.ttyname(slave_fd)
        self.device = PtyDevice(master_fd, timeout)

    def close(self) -> None:
        """Close both ends; a driver still on `port` then reads EIO, as when a USB adapter is pulled."""
        self.device.close()
        if self._slave_fd >= 0:
            os.close(self._slave_fd)
            self._slave_fd = -1

    def __enter__(self) -> PtyLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_pty_link(*, timeout: float | None = 1.0) -> PtyLink:
    """A new pty pair in raw mode (no echo, no line editing, no CR/LF translation: binary packets pass intact).

    On Linux the line discipline belongs to the slave and settings made through the master apply to it,
    so the pair is raw before the driver opens it (pyserial sets raw mode again when it does).
    """
    master_fd, slave_fd = os.openpty()
    try:
        tty.setraw(master_fd)
        return PtyLink(master_fd, slave_fd, timeout=timeout)
    except BaseException:
        os.close(master_fd)
        os.close(slave_fd)
        raise


def start_sim_sensor(**emulator_kwargs: Any) -> tuple[FingerprintEmulator, PtyLink]:
    """A `FingerprintEmulator` (with `emulator_kwargs`) serving on a new `PtyLink`; open a reader on `link.port`.

    The caller stops the emulator, then closes the link (the emulator does not close a device it was given).
    """
    link = open_pty_link()
    try:
        emulator = FingerprintEmulator(link.port, **emulator_kwargs).start(device=link.device)
    except BaseException:
        link.close()
        raise
    return emulator, link
