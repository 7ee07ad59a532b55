"""Face enrolment: each sample checked (one face, size, sharpness, brightness), then one template per person.

Refusals carry a reason code so the console can tell the officer what to fix. Sample images are used
in memory only; only the 128-number template is kept (UU PDP: biometric data is specific personal data,
so photos are not stored by this module).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import face_recognition
import numpy as np
from PIL import Image

from access.face_match import FaceMatcher
from drivers.camera import FrameSource, iter_frames
from drivers.errors import DcgateError, InvalidValueError

Reason = Literal[
    "no_face", "several_faces", "too_small", "blurry", "too_dark", "too_bright", "already_enrolled", "too_few_samples"
]

SHARPNESS_SIDE = 128  # the face crop is resized to this before the Laplacian, so sharpness is scale-free


class FaceSampleRefused(DcgateError, ValueError):
    """A sample (or the whole enrolment) is refused; `.reason` is a stable code, the message says what to do."""

    exit_code = 2

    def __init__(self, reason: Reason, message: str, *, sample: int | None = None) -> None:
        super().__init__(message if sample is None else f"sample {sample}: {message}")
        self.reason = reason
        self.sample = sample


@dataclass(frozen=True, slots=True)
class QualitySettings:
    min_face_px: int = 80  # enrolment photos are taken close up; small faces give poor templates
    min_sharpness: float = 40.0  # variance of the Laplacian of the face at 128x128; sharp photos give 60-800
    min_brightness: float = 50.0  # mean luminance (0-255) of the face box
    max_brightness: float = 210.0
    upsample: int = 1


@dataclass(frozen=True, slots=True)
class AcceptedSample:
    encoding: np.ndarray
    box: tuple[int, int, int, int]  # top, right, bottom, left
    face_px: int
    sharpness: float
    brightness: float


@dataclass(frozen=True, slots=True)
class Enrolment:
    template: np.ndarray  # the only thing to store
    accepted: int
    refused: list[FaceSampleRefused] = field(default_factory=list)


def to_rgb(image: str | Path | np.ndarray) -> np.ndarray:
    """A file or an array as contiguous RGB uint8: RGBA loses its alpha, greyscale is repeated three times."""
    if isinstance(image, str | Path):
        try:
            with Image.open(image) as im:
                return np.ascontiguousarray(np.asarray(im.convert("RGB")))
        except OSError as exc:
            raise InvalidValueError(f"cannot read face image {image}: {exc}") from exc
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise InvalidValueError(f"face image must be 8-bit (uint8), got {arr.dtype}; convert it first")
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidValueError(f"face image must be greyscale, RGB or RGBA, got shape {arr.shape}")
    return np.ascontiguousarray(arr)  # dlib refuses non-contiguous views


def check_sample(image: str | Path | np.ndarray, settings: QualitySettings | None = None) -> AcceptedSample:
    """Check one sample and encode it, or raise `FaceSampleRefused` with the first failed check."""
    s = settings or QualitySettings()
    rgb = to_rgb(image)
    boxes = face_recognition.face_locations(rgb, s.upsample, "hog")
    if not boxes:
        raise FaceSampleRefused("no_face", "no face found; face the camera, fully in frame, in even light")
    if len(boxes) > 1:
        raise FaceSampleRefused("several_faces", f"{len(boxes)} faces found; only the person enrolling may be in frame")
    top, right, bottom, left = boxes[0]
    face_px = min(bottom - top, right - left)
    if face_px < s.min_face_px:
        raise FaceSampleRefused("too_small", f"face is {face_px} px, needs at least {s.min_face_px} px; come closer")
    grey = cv2.cvtColor(rgb[top:bottom, left:right], cv2.COLOR_RGB2GRAY)
    brightness = float(grey.mean())
    if brightness < s.min_brightness:
        raise FaceSampleRefused("too_dark", f"face brightness {brightness:.0f} < {s.min_brightness:.0f}; add light")
    if brightness > s.max_brightness:
        raise FaceSampleRefused(
            "too_bright", f"face brightness {brightness:.0f} > {s.max_brightness:.0f}; avoid direct light or flash"
        )
    crop = cv2.resize(grey, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    sharpness = float(cv2.Laplacian(crop, cv2.CV_64F).var())
    if sharpness < s.min_sharpness:
        raise FaceSampleRefused(
            "blurry", f"face sharpness {sharpness:.0f} < {s.min_sharpness:.0f}; hold still and clean the lens"
        )
    encoding = face_recognition.face_encodings(rgb, [boxes[0]])[0]
    return AcceptedSample(encoding.astype(np.float32), boxes[0], face_px, sharpness, brightness)


def make_template(encodings: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the sample encodings, rescaled to their mean length.

    dlib's encodings are not unit vectors (length ~1.4-1.5) and the 0.6 threshold is calibrated on
    them; averaging shortens the vector, so it is rescaled to the samples' length rather than to 1.
    """
    block = np.asarray(encodings, dtype=np.float32).reshape(len(encodings), -1)
    mean = block.mean(axis=0)
    return (mean * (np.linalg.norm(block, axis=1).mean() / np.linalg.norm(mean))).astype(np.float32)


def check_not_enrolled(template: np.ndarray, matcher: FaceMatcher, person_id: str | None) -> None:
    """Refuse a face that already matches someone else: one person, one identity at the door."""
    nearest = matcher.nearest(template)
    if nearest is not None and nearest[1] <= matcher.threshold and nearest[0] != person_id:
        raise FaceSampleRefused(
            "already_enrolled",
            f"this face is already enrolled as {nearest[0]!r} (distance {nearest[1]:.2f}); "
            "revoke that enrolment first if it is the same person",
        )


def enroll_samples(
    images: Iterable[str | Path | np.ndarray],
    *,
    person_id: str | None = None,
    matcher: FaceMatcher | None = None,
    min_samples: int = 1,
    settings: QualitySettings | None = None,
) -> Enrolment:
    """Check every sample; refused ones are reported, the rest averaged into one template.

    Raises `too_few_samples` when fewer than `min_samples` pass, and `already_enrolled` when the template
    is within the matcher's threshold of another person. Does not add to the matcher (the caller does,
    after storing the template).
    """
    accepted: list[np.ndarray] = []
    refused: list[FaceSampleRefused] = []
    for i, image in enumerate(images):
        try:
            accepted.append(check_sample(image, settings).encoding)
        except FaceSampleRefused as exc:
            refused.append(FaceSampleRefused(exc.reason, str(exc), sample=i))
    if len(accepted) < max(1, min_samples):
        reasons = ", ".join(f"{r.sample}: {r.reason}" for r in refused) or "none given"
        raise FaceSampleRefused(
            "too_few_samples", f"{len(accepted)} of {len(accepted) + len(refused)} samples accepted, "
            f"{max(1, min_samples)} needed (refused {reasons})"
        )
    template = make_template(accepted)
    if matcher is not None:
        check_not_enrolled(template, matcher, person_id)
    return Enrolment(template, len(accepted), refused)


def enroll_from_camera(
    source: FrameSource,
    *,
    samples: int = 5,
    max_frames: int = 300,
    person_id: str | None = None,
    matcher: FaceMatcher | None = None,
    settings: QualitySettings | None = None,
) -> Enrolment:
    """Take `samples` accepted frames from a door camera (refused frames are skipped, up to `max_frames`)."""
    accepted: list[np.ndarray] = []
    refused: list[FaceSampleRefused] = []
    for n, frame in enumerate(iter_frames(source)):
        if n >= max_frames or len(accepted) >= samples:
            break
        try:
            accepted.append(check_sample(frame.rgb, settings).encoding)
        except FaceSampleRefused as exc:
            refused.append(FaceSampleRefused(exc.reason, str(exc), sample=n))
    if len(accepted) < samples:
        counts: dict[str, int] = {}
        for r in refused:
            counts[r.reason] = counts.get(r.reason, 0) + 1
        raise FaceSampleRefused(
            "too_few_samples", f"only {len(accepted)} of {samples} frames passed the checks (refusals: {counts})"
        )
    template = make_template(accepted)
    if matcher is not None:
        check_not_enrolled(template, matcher, person_id)
    return Enrolment(template, len(accepted), refused)
