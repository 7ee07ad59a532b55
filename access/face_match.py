"""Face matching at the door: 1:N against every enrolled template, K agreeing frames, optional blink liveness.

What this can and cannot do, honestly:

* Detection is dlib's HOG detector (face_recognition's "hog" model). It finds roughly frontal faces
  down to about 40 px in the frame it is given (80 px windows, one upsampling); it misses faces turned
  more than ~30° away, strongly backlit faces and very small ones. That is acceptable at a door, where the
  person stands close and looks at the camera; it is not a surveillance detector.
* The 128-d encodings are dlib's ResNet face descriptor. At distance 0.6 its authors report ~99.4 %
  on LFW pairs; it is weaker on children, on some ethnic groups under-represented in its training data,
  and on look-alikes and relatives. A face decision should be one factor, not the only one, for a
  government server room (the SOPs ask for face *and/or* fingerprint).
* Liveness is the eye aspect ratio (EAR, Soukupová & Čech 2016) from the 68-point landmarks: a blink
  is the EAR dipping well below the face's own open-eye level and recovering. It refuses a still photo
  held to the camera. It does NOT stop a video replayed on a phone or tablet, a mask with eye holes, or
  a printed photo with the eyes cut out and a real person's eyes behind it. Blinks are short
  (100-400 ms), so frames must be sampled at >= ~10 fps for liveness to be reliable; at lower rates
  real people are refused (it fails closed). In the shared Hamilton clip no blink is detected at all.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import face_recognition
import numpy as np

from drivers.camera import Frame, FrameSource, iter_frames
from drivers.errors import InvalidValueError

ENCODING_DIM = 128
DEFAULT_THRESHOLD = 0.6  # face_recognition's tolerance; lower is stricter


class FaceMatcher:
    """Every enrolled face template in one (N, 128) float32 matrix, matched 1:N in one vectorised step.

    One template per person (enrolment averages the samples). Writers swap in a new matrix under a lock,
    so a match running in the door thread always sees a consistent (ids, matrix) pair without locking.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0.0 < threshold < 2.0:
            raise InvalidValueError(f"face match threshold must be in (0, 2), got {threshold}; the usual is 0.6")
        self.threshold = threshold
        self._lock = threading.Lock()
        self._state: tuple[tuple[str, ...], np.ndarray] = ((), np.empty((0, ENCODING_DIM), np.float32))

    def __len__(self) -> int:
        return len(self._state[0])

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._state[0]

    @property
    def person_ids(self) -> tuple[str, ...]:
        return self._state[0]

    def add(self, person_id: str, template: np.ndarray) -> None:
        """Enrol (or replace) one person's template."""
        row = _as_encoding(template)
        with self._lock:
            ids, matrix = self._state
            if person_id in ids:
                matrix = matrix.copy()
                matrix[ids.index(person_id)] = row
            else:
                ids, matrix = (*ids, person_id), np.vstack([matrix, row[None, :]])
            self._state = (ids, matrix)

    def add_many(self, person_ids: Sequence[str], templates: np.ndarray) -> None:
        """Load many templates at once (start-up from the store); ids must be new and unique."""
        block = np.asarray(templates, dtype=np.float32).reshape(-1, ENCODING_DIM)
        if len(person_ids) != len(block) or len(set(person_ids)) != len(person_ids):
            raise InvalidValueError("add_many needs one unique person id per template row")
        with self._lock:
            ids, matrix = self._state
            if set(ids) & set(person_ids):
                raise InvalidValueError("add_many: some person ids are already enrolled; use add() to replace")
            self._state = ((*ids, *person_ids), np.vstack([matrix, block]))

    def remove(self, person_id: str) -> bool:
        """Revoke: the row is dropped from the matrix, not flagged, so the face can never match again."""
        with self._lock:
            ids, matrix = self._state
            if person_id not in ids:
                return False
            i = ids.index(person_id)
            self._state = (ids[:i] + ids[i + 1 :], np.delete(matrix, i, axis=0))
            return True

    def nearest(self, encoding: np.ndarray) -> tuple[str, float] | None:
        """The closest enrolled person and the distance, whatever the threshold; None when nobody is enrolled."""
        ids, matrix = self._state  # one read: consistent even while another thread adds or removes
        if not ids:
            return None
        distances = np.linalg.norm(matrix - _as_encoding(encoding), axis=1)
        i = int(np.argmin(distances))
        return ids[i], float(distances[i])

    def match(self, encoding: np.ndarray) -> tuple[str, float] | None:
        """(person_id, distance) of the closest template within the threshold, else None."""
        best = self.nearest(encoding)
        return best if best is not None and best[1] <= self.threshold else None


def _as_encoding(encoding: np.ndarray) -> np.ndarray:
    row = np.asarray(encoding, dtype=np.float32).reshape(-1)
    if row.shape != (ENCODING_DIM,) or not np.all(np.isfinite(row)):
        raise InvalidValueError(f"a face encoding is {ENCODING_DIM} finite numbers, got shape {np.shape(encoding)}")
    return row


def eye_aspect_ratio(eye: Sequence[tuple[int, int]]) -> float:
    """EAR of the six landmarks of one eye: about 0.3 open, below 0.2 closed (varies with pose and person)."""
    p = np.asarray(eye, dtype=np.float64)
    width = np.linalg.norm(p[0] - p[3])
    if width == 0:
        return 0.0
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2.0 * width))


class BlinkDetector:
    """A blink is the EAR falling below `closed_ratio` × this face's open-eye baseline, then rising above
    `open_ratio` × baseline (hysteresis, so landmark jitter is not a blink).

    The baseline is the median of the recent EARs, not a fixed number: open eyes measure ~0.21 for
    obama.jpg and ~0.40 for Lin-Manuel Miranda in the test clip, so the textbook fixed 0.2 threshold
    would never see some people's eyes open. A head turning or tilting also changes the EAR; that is
    the main source of false blinks, which is why the dip must recover.
    """

    def __init__(self, closed_ratio: float = 0.7, open_ratio: float = 0.85, history: int = 15) -> None:
        if not 0 < closed_ratio < open_ratio <= 1 or history < 3:
            raise InvalidValueError(
                f"blink detector needs 0 < closed_ratio < open_ratio <= 1 and history >= 3, "
                f"got {closed_ratio}, {open_ratio}, {history}"
            )
        self.closed_ratio, self.open_ratio, self.history = closed_ratio, open_ratio, history
        self.reset()

    def reset(self) -> None:
        self._recent: list[float] = []
        self._shut = False
        self.blinks = 0

    def feed(self, ear: float) -> bool:
        """Feed one frame's EAR; True when this frame completes a blink."""
        if len(self._recent) < 3:  # no baseline yet: the first frames only teach what open looks like
            self._recent.append(ear)
            return False
        baseline = float(np.median(self._recent))
        self._recent = [*self._recent, ear][-self.history :]
        if ear < self.closed_ratio * baseline:
            self._shut = True
            return False
        if self._shut and ear >= self.open_ratio * baseline:
            self._shut = False
            self.blinks += 1
            return True
        return False


Outcome = Literal["granted", "unknown_face", "liveness_failed"]


@dataclass(frozen=True, slots=True)
class FaceDecision:
    outcome: Outcome
    person_id: str | None  # the matched person (also on liveness_failed, for the logbook)
    distance: float  # best distance in the deciding frames (mean over the K agreeing frames)
    frames: int  # frames with a face that went into this decision
    blinked: bool

    @property
    def granted(self) -> bool:
        return self.outcome == "granted"


@dataclass(frozen=True, slots=True)
class RecognizerSettings:
    downscale: float = 0.5  # detect on a frame this much smaller: HOG cost grows with pixel count
    min_detect_width: int = 320  # ...but never reduce below this width, or small faces vanish
    upsample: int = 1  # dlib upsampling on the reduced frame; 1 finds faces down to ~40 px there
    min_face_px: int = 48  # encode only faces at least this tall (full frame); smaller ones encode badly
    agree_frames: int = 3  # K consecutive face frames that agree before any decision
    liveness: bool = False
    blink_window_s: float = 5.0  # from the first face frame; no blink by then → liveness_failed
    ear_closed_ratio: float = 0.7  # of the face's own open-eye EAR
    ear_open_ratio: float = 0.85

    def __post_init__(self) -> None:
        if not 0 < self.downscale <= 1 or self.agree_frames < 1 or self.min_face_px < 1 or self.blink_window_s <= 0:
            raise InvalidValueError(f"invalid face recogniser settings: {self}")


@dataclass(frozen=True, slots=True)
class FaceObservation:
    """What one frame showed: the largest face's box (full-frame css), the match, and the eye aspect ratio."""

    box: tuple[int, int, int, int]
    match: tuple[str, float] | None
    nearest_distance: float | None
    ear: float | None


class FaceRecognizer:
    """Consumes frames and decides: granted after K agreeing frames (and a blink, with liveness on), else
    unknown_face after K frames of a face nobody enrolled, else liveness_failed when the window passes.

    Frames without a usable face neither count nor reset the streak (a head turning for one frame should
    not restart the wait). With several faces, only the largest (nearest the door) is judged; tailgating
    is for the door contact and the logbook, not for this class.
    """

    def __init__(self, matcher: FaceMatcher, settings: RecognizerSettings | None = None) -> None:
        self.matcher = matcher
        self.settings = settings or RecognizerSettings()
        self._blinks = BlinkDetector(self.settings.ear_closed_ratio, self.settings.ear_open_ratio)
        self.reset()

    def reset(self) -> None:
        self._streak_key: str | None = None  # person id, or "" for an unknown face
        self._streak: list[float] = []
        self._face_frames = 0
        self._first_face_t: float | None = None
        self._blinks.reset()

    def observe(self, rgb: np.ndarray) -> FaceObservation | None:
        """Detect on a reduced frame, encode the largest face at full resolution if big enough, match it."""
        s = self.settings
        height, width = rgb.shape[:2]
        scale = max(s.downscale, min(1.0, s.min_detect_width / width))
        small = rgb if scale == 1.0 else cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        boxes = face_recognition.face_locations(small, s.upsample, "hog")
        if not boxes:
            return None
        # back to full-frame coordinates, so the encoder sees every pixel the camera gave
        def up(v: int) -> int:
            return round(v / scale)

        full = [(max(0, up(t)), min(width, up(r)), min(height, up(b)), max(0, up(x))) for t, r, b, x in boxes]
        box = max(full, key=lambda c: (c[2] - c[0]) * (c[1] - c[3]))
        if box[2] - box[0] < s.min_face_px:
            return None  # too small to encode reliably; waits for the person to step closer
        encoding = face_recognition.face_encodings(rgb, [box])[0]
        nearest = self.matcher.nearest(encoding)
        match = nearest if nearest is not None and nearest[1] <= self.matcher.threshold else None
        ear = None
        if s.liveness:
            marks = face_recognition.face_landmarks(rgb, [box])[0]
            ear = (eye_aspect_ratio(marks["left_eye"]) + eye_aspect_ratio(marks["right_eye"])) / 2.0
        return FaceObservation(box, match, None if nearest is None else nearest[1], ear)

    def process(self, frame: Frame) -> FaceDecision | None:
        """Feed one frame; a decision when one is reached (the recogniser then starts afresh)."""
        obs = self.observe(frame.rgb)
        if obs is None:
            return None
        s = self.settings
        self._face_frames += 1
        if self._first_face_t is None:
            self._first_face_t = frame.t
        if obs.ear is not None:
            self._blinks.feed(obs.ear)
        key = obs.match[0] if obs.match else ""
        distance = obs.match[1] if obs.match else (obs.nearest_distance if obs.nearest_distance is not None else 2.0)
        if key != self._streak_key:
            self._streak_key, self._streak = key, []
        self._streak.append(distance)
        if len(self._streak) < s.agree_frames:
            return None
        mean_distance = float(np.mean(self._streak[-s.agree_frames :]))
        blinked = self._blinks.blinks > 0
        if key == "":
            return self._decide("unknown_face", None, mean_distance, blinked)
        if not s.liveness or blinked:
            return self._decide("granted", key, mean_distance, blinked)
        if frame.t - self._first_face_t >= s.blink_window_s:
            return self._decide("liveness_failed", key, mean_distance, blinked)
        return None  # a known face, still waiting for a blink

    def _decide(self, outcome: Outcome, person: str | None, distance: float, blinked: bool) -> FaceDecision:
        decision = FaceDecision(outcome, person, distance, self._face_frames, blinked)
        self.reset()
        return decision

    def run(self, source: FrameSource, max_frames: int | None = None) -> FaceDecision | None:
        """Read frames until a decision; None if a finite source ends (or max_frames pass) first."""
        for n, frame in enumerate(iter_frames(source), start=1):
            decision = self.process(frame)
            if decision is not None:
                return decision
            if max_frames is not None and n >= max_frames:
                break
        return None
