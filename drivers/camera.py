"""Cameras as sources of RGB frames: a USB device, an RTSP stream or a video file, through OpenCV.

Knows nothing about faces or doors; `access.face_match.FaceRecognizer` consumes the frames.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from drivers.errors import InvalidValueError, SensorError, SensorReadError


@dataclass(frozen=True, slots=True)
class Frame:
    """One picture: RGB uint8 (H, W, 3), and when it was taken, in seconds on the source's own clock."""

    rgb: np.ndarray
    t: float


class FrameSource(Protocol):
    """What the face recogniser reads from. `read()` returns None only when a finite source (a file) ends."""

    name: str

    def read(self) -> Frame | None:
        """The next frame. Raises `SensorError` when a live camera stops delivering."""
        ...

    def close(self) -> None:
        """Release the device or stream."""
        ...


def iter_frames(source: FrameSource) -> Iterator[Frame]:
    """Every frame until a finite source ends (a live camera never ends; it raises instead)."""
    while (frame := source.read()) is not None:
        yield frame


class OpenCvCamera:
    """`cv2.VideoCapture` on a device index (0 = /dev/video0), an RTSP/HTTP URL or a video file.

    `step` keeps every step-th frame; the others are grabbed but not decoded into RGB, which is how a
    Pi keeps up with a 30 fps camera while recognition runs at a few frames per second.
    Timestamps are the media time for files (so a file replays on its own clock, however fast it is
    read) and `time.monotonic()` for live sources.
    """

    def __init__(self, source: int | str | Path, *, step: int = 1) -> None:
        if step < 1:
            raise InvalidValueError(f"camera step must be >= 1, got {step}")
        self.name = str(source)
        self._step = step
        self._started = False
        self._is_file = isinstance(source, Path) or (isinstance(source, str) and Path(source).is_file())
        if isinstance(source, Path) and not source.is_file():
            raise SensorError(f"camera source {source}: no such video file; give a device index, URL or existing file")
        target: int | str = source if isinstance(source, int) else str(source)
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self._cap.release()
            raise SensorError(
                f"camera source {self.name!r} could not be opened; check the device index (ls /dev/video*), "
                "the RTSP URL and credentials, or the file path"
            )

    def read(self) -> Frame | None:
        # frames 0, step, 2*step...: skip before every read but the first
        for _ in range(self._step - 1 if self._started else 0):
            if not self._cap.grab():
                return self._ended()
        self._started = True
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return self._ended()
        t = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if self._is_file else time.monotonic()
        # OpenCV decodes to BGR; dlib and face_recognition expect RGB
        return Frame(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), t)

    def _ended(self) -> None:
        if self._is_file:
            return None
        raise SensorReadError(f"camera {self.name!r} delivered no frame (unplugged, stream dropped or device busy)")

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> OpenCvCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
