"""A simulated camera that shows one still picture: a photo held up to the lens, for liveness tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from drivers.camera import Frame
from drivers.errors import InvalidValueError, SensorError


class StillCamera:
    """Replays one image as `frames` frames at `fps` (timestamps i / fps), then ends like a file."""

    def __init__(self, image: str | Path | np.ndarray, *, frames: int = 30, fps: float = 10.0) -> None:
        if frames < 1 or fps <= 0:
            raise InvalidValueError(f"StillCamera needs frames >= 1 and fps > 0, got {frames}, {fps}")
        if isinstance(image, np.ndarray):
            self.name = "still:array"
            rgb = image
        else:
            self.name = f"still:{image}"
            try:
                with Image.open(image) as im:
                    rgb = np.asarray(im.convert("RGB"))  # RGBA, greyscale, palette → RGB
            except OSError as exc:
                raise SensorError(f"still camera image {image}: {exc}") from exc
        self._rgb = np.ascontiguousarray(rgb)
        self._frames = frames
        self._fps = fps
        self._next = 0

    def read(self) -> Frame | None:
        if self._next >= self._frames:
            return None
        t = self._next / self._fps
        self._next += 1
        return Frame(self._rgb, t)

    def close(self) -> None:
        self._next = self._frames
