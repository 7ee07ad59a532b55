"""One door's camera: a cheap motion gate, then `FaceRecognizer`; decisions go to `on_decision`.

The live loop (a thread per door, started by the service) reads the camera and judges each frame in
three steps, cheapest first:

1. Motion gate (~0.3 ms a frame): the frame reduced to 64 px wide, grey, blurred, compared with a
   slowly-updated background. HOG on every frame of an empty corridor would keep a Pi core busy all day.
2. A frame is analysed when it moved, within `active_s` of the last motion or of the last face seen
   (a person standing still in front of the camera is still waited for), or is the first after opening.
3. After a decision the scene as it is becomes the gate's background and nothing is analysed for
   `hold_off_s`; afterwards the same decision again (same outcome, same person) is suppressed while that
   face stays, so one person at the door is decided once. The face has left after `LEAVE_FRAMES`
   analysed frames without one, or when no repeat came for 2 × `hold_off_s`.

Idle frames are read at `idle_fps` (the thread waits on its stop event between them); analysed frames
are read as fast as recognition goes, which on a Pi is the real limit (~0.1-0.3 s a frame).

Timing uses each frame's own clock (`Frame.t`): monotonic for a live camera, media time for a file, so
a file replays the same way however fast it is read.

`present(source)` runs the same recogniser on a given source (a still image or a video file): the
simulator's `dcgate door present DOOR --face IMAGE | --video FILE`, and the tests. It shares the
recogniser with the live loop under one lock, and returns the decision instead of reporting it.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from access.face_match import FaceDecision, FaceMatcher, FaceObservation, FaceRecognizer, RecognizerSettings
from drivers.camera import Frame, FrameSource, OpenCvCamera
from drivers.errors import InvalidValueError, SensorError
from drivers.sim.camera import StillCamera

log = logging.getLogger(__name__)

GATE_WIDTH = 64  # px: enough to see a person arrive, small enough to cost nothing
DEFAULT_MOTION_THRESHOLD = 3.0  # mean |grey - background| (0-255); a person entering a door camera gives 10-30
LEAVE_FRAMES = 2  # analysed frames without a face before the held person counts as gone (one can be a turned head)


def _redact(text: str) -> str:
    """Camera URLs carry credentials (rtsp://user:password@host/...): never in a status, event or log line."""
    return re.sub(r"(?<=://)[^/@\s]*@", "***@", text)


class MotionGate:
    """Mean absolute difference of a tiny blurred grey frame from an exponentially-updated background.

    The background follows the scene with time constant `background_s` (on the frames' clock), so a
    light switched on or a chair moved stops counting as motion after a few seconds.
    """

    def __init__(self, threshold: float = DEFAULT_MOTION_THRESHOLD, background_s: float = 5.0) -> None:
        if not threshold > 0 or not background_s > 0:
            raise InvalidValueError(
                f"motion gate needs threshold > 0 and background_s > 0, got {threshold}, {background_s}"
            )
        self.threshold, self.background_s = threshold, background_s
        self.reset()

    def reset(self) -> None:
        self._background: np.ndarray | None = None
        self._t: float | None = None
        self.level = 0.0

    def moved(self, frame: Frame) -> bool:
        """Feed one frame; True when it differs from the background by more than the threshold."""
        height, width = frame.rgb.shape[:2]
        small = cv2.resize(frame.rgb, (GATE_WIDTH, max(1, round(height * GATE_WIDTH / width))),
                           interpolation=cv2.INTER_AREA)  # reduce first: the rest then costs nothing
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), (5, 5), 0).astype(np.float32)
        if self._background is None or self._t is None or frame.t < self._t:
            self._background, self._t, self.level = grey, frame.t, 0.0  # first frame, or the clock restarted
            return False
        if self._background.shape != grey.shape:  # the camera changed resolution: look, to be safe
            self._background, self._t, self.level = grey, frame.t, 255.0
            return True
        self.level = float(cv2.absdiff(grey, self._background).mean())
        alpha = 1.0 - math.exp(-max(frame.t - self._t, 0.0) / self.background_s)
        cv2.accumulateWeighted(grey, self._background, max(alpha, 0.01))
        self._t = frame.t
        return self.level > self.threshold


class _WatchedRecognizer(FaceRecognizer):
    """A FaceRecognizer that also says whether the last frame it looked at showed a usable face."""

    face_seen = False

    def observe(self, rgb: np.ndarray) -> FaceObservation | None:
        observation = super().observe(rgb)
        self.face_seen = observation is not None
        return observation


def still_source(image: str | Path | np.ndarray, settings: RecognizerSettings, *, fps: float = 10.0) -> StillCamera:
    """A photo held to the camera, as many frames as the recogniser needs to decide on it.

    Identical frames decide on the K-th or never, so K frames without liveness. With liveness, the
    frames span the whole blink window and a second more, so a photo is refused as liveness_failed
    rather than running out of frames (which the caller would report as no_face).
    """
    frames = settings.agree_frames
    if settings.liveness:
        frames = max(frames, math.ceil(fps * (settings.blink_window_s + 1.0)))
    return StillCamera(image, frames=frames, fps=fps)


def video_source(path: str | Path, *, step: int = 5) -> OpenCvCamera:
    """A video file as the door camera; every `step`-th frame (5 of a 30 fps file ≈ what a Pi analyses)."""
    return OpenCvCamera(Path(path), step=step)


class FaceStation:
    """One door's camera. Thread-safe: the live loop, `present()` and `status()` may run at once.

    `camera_factory` opens the camera (and is called again to reopen it after a failure); None is a
    simulated door camera that sees only what is `present`ed, with no thread.
    """

    def __init__(self, door: str, matcher: FaceMatcher, settings: RecognizerSettings,
                 on_decision: Callable[[FaceDecision], None], *,
                 camera_factory: Callable[[], FrameSource] | None,
                 motion_threshold: float = DEFAULT_MOTION_THRESHOLD, idle_fps: float = 5.0,
                 active_s: float = 3.0, hold_off_s: float = 3.0,
                 min_backoff_s: float = 1.0, max_backoff_s: float = 30.0) -> None:
        if not idle_fps > 0 or not active_s > 0 or hold_off_s < 0 or not 0 < min_backoff_s <= max_backoff_s:
            raise InvalidValueError(
                f"face station {door!r}: needs idle_fps > 0, active_s > 0, hold_off_s >= 0 and "
                f"0 < min_backoff_s <= max_backoff_s; got {idle_fps}, {active_s}, {hold_off_s}, "
                f"{min_backoff_s}, {max_backoff_s}"
            )
        self.door, self.matcher, self.settings = door, matcher, settings
        self.idle_fps, self.active_s, self.hold_off_s = idle_fps, active_s, hold_off_s
        self.min_backoff_s, self.max_backoff_s = min_backoff_s, max_backoff_s
        self._on_decision = on_decision
        self._factory = camera_factory
        # FaceMatcher is safe to share: writers swap its (ids, matrix) pair under its own lock and a
        # match reads the pair once, so enrolment and revocation need no lock here.
        self._recognizer = _WatchedRecognizer(matcher, settings)
        self._recognizer_lock = threading.Lock()  # one recogniser per door: the live loop or present()
        self._gate = MotionGate(motion_threshold)
        self._mutex = threading.Lock()  # guards the counters and fields status() reads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._source: str | None = None
        self._last_error: str | None = None
        self._counts = {"frames_seen": 0, "frames_analysed": 0, "decisions": 0, "suppressed": 0, "presented": 0}
        self._last_decision: str | None = None
        self._reset_live()

    # -- public ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the live loop (nothing to run for a simulated camera)."""
        with self._mutex:
            if self._started:
                return
            self._started = True
            self._stop.clear()
            if self._factory is not None:
                self._thread = threading.Thread(target=self._run, name=f"face-{self.door}", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the live loop and close the camera (the loop closes it on its way out)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():  # stuck inside a driver read; it is a daemon and exits with the process
                log.warning("face %s: camera thread did not stop within %.0f s", self.door, timeout)
        with self._mutex:
            self._started, self._thread = False, None

    def present(self, source: FrameSource, timeout: float = 30.0) -> FaceDecision | None:
        """Run the recogniser on `source` until a decision; None if the source ends (or `timeout` passes) first.

        None means no usable face was seen long enough: the caller denies with `no_face`. The decision is
        returned, not passed to `on_decision`. The source is closed afterwards.
        """
        deadline = time.monotonic() + timeout
        try:
            if not self._recognizer_lock.acquire(timeout=max(timeout, 0.0)):
                raise SensorError(f"face {self.door}: the camera is busy with another presentation")
            try:
                return self._present(source, deadline)
            finally:
                self._recognizer.reset()  # the live loop starts afresh, not mid-way through this face
                self._recognizer_lock.release()
        finally:
            source.close()

    def status(self) -> dict[str, Any]:
        """For `dcgate status`, the console and MQTT state topics. Counters are the live loop's frames."""
        with self._mutex:
            running = self._thread.is_alive() if self._thread is not None else self._started
            return {
                "door": self.door,
                "camera": "sim" if self._factory is None else "live",
                "source": self._source,
                "running": running,
                "last_error": self._last_error,
                **self._counts,
                "last_decision": self._last_decision,
                "motion": round(self._gate.level, 1),
            }

    # -- present ---------------------------------------------------------------------------------
    def _present(self, source: FrameSource, deadline: float) -> FaceDecision | None:
        recognizer = self._recognizer
        recognizer.reset()
        with self._mutex:
            self._counts["presented"] += 1
        first = True
        while time.monotonic() < deadline:
            frame = source.read()
            if frame is None:
                return None
            decision = recognizer.process(frame)
            if decision is not None:
                with self._mutex:
                    self._counts["decisions"] += 1
                    self._last_decision = decision.outcome
                return decision
            if first and isinstance(source, StillCamera) and not recognizer.face_seen:
                return None  # a still repeats one picture: no face in the first frame, none in any
            first = False
        return None

    # -- the live loop ---------------------------------------------------------------------------
    def _reset_live(self) -> None:
        """Forget the scene: on start and whenever the camera is (re)opened, its clock may restart."""
        self._gate.reset()
        self._fresh = True  # the first frame is analysed: someone may already stand at the door
        self._last_motion_t: float | None = None
        self._last_face_t: float | None = None
        self._hold_until: float | None = None
        self._held: tuple[str, str | None] | None = None  # (outcome, person) last reported
        self._held_until: float | None = None  # a repeat after this is a new decision
        self._absent = 0
        self._prev_t: float | None = None
        self._frame_error: str | None = None

    def _run(self) -> None:
        camera: FrameSource | None = None
        backoff = self.min_backoff_s
        next_read = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    if camera is None:
                        camera = self._factory()  # type: ignore[misc]  # the thread runs only with a factory
                        self._reset_live()
                        with self._mutex:
                            self._source = _redact(str(getattr(camera, "name", "camera")))
                    frame = camera.read()
                    if frame is None:
                        raise SensorError(f"camera {camera.name!r} ended (a file, not a live camera?)")
                except Exception as exc:  # a camera failure must never end the door's camera thread
                    self._note_error(exc)
                    camera = self._close(camera)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)
                    continue
                backoff = self.min_backoff_s
                self._clear_error()
                try:
                    analysed = self._live_frame(frame)
                except Exception as exc:  # a bad frame (dlib refusing it...) is logged, not fatal
                    if repr(exc) != self._frame_error:  # once per kind of failure, not once per frame
                        log.exception("face %s: frame could not be analysed", self.door)
                    self._frame_error, analysed = repr(exc), False
                now = time.monotonic()
                if analysed:
                    next_read = now  # recognition itself paces the loop
                else:
                    next_read = max(next_read + 1.0 / self.idle_fps, now)
                    self._stop.wait(next_read - now)
        finally:
            self._close(camera)

    def _live_frame(self, frame: Frame) -> bool:
        """Gate one live frame and maybe analyse it; True when it went to the recogniser."""
        t = frame.t
        if self._prev_t is not None and t < self._prev_t:
            self._reset_live()  # the source's clock went back (a file reopened): a new scene
        self._prev_t = t
        moved = self._gate.moved(frame)
        with self._mutex:
            self._counts["frames_seen"] += 1
        if moved:
            self._last_motion_t = t
        if self._hold_until is not None and t < self._hold_until:
            return False
        if self._held is not None and self._held_until is not None and t > self._held_until:
            self._held = None  # no repeat for a while: whoever shows up next is decided afresh
        recent = (self._last_motion_t is not None and t - self._last_motion_t <= self.active_s) or (
            self._last_face_t is not None and t - self._last_face_t <= self.active_s
        )
        if not (self._fresh or recent):
            return False
        if not self._recognizer_lock.acquire(blocking=False):
            return False  # present() has the recogniser; this frame is not needed
        try:
            self._fresh = False
            decision = self._recognizer.process(frame)
            face_seen = self._recognizer.face_seen
        finally:
            self._recognizer_lock.release()
        with self._mutex:
            self._counts["frames_analysed"] += 1
        if face_seen:
            self._last_face_t, self._absent = t, 0
        else:
            self._absent += 1
            if self._absent >= LEAVE_FRAMES:
                self._held = None  # the face left: the next one is a new decision
        if decision is not None:
            self._decided(decision, t)
        return True

    def _decided(self, decision: FaceDecision, t: float) -> None:
        key = (decision.outcome, decision.person_id)
        repeat = key == self._held
        self._held, self._held_until = key, t + 2 * self.hold_off_s
        self._hold_until = t + self.hold_off_s
        # the decided scene becomes the background and its motion is spent: only a new move (or the face
        # leaving) wakes the recogniser again
        self._last_face_t = self._last_motion_t = None
        self._gate.reset()
        with self._mutex:
            self._counts["suppressed" if repeat else "decisions"] += 1
            if not repeat:
                self._last_decision = decision.outcome
        if repeat:
            return  # the same person still standing there: decided once
        try:
            self._on_decision(decision)
        except Exception:  # the consumer failing must not stop the door's camera
            log.exception("face %s: decision handler failed", self.door)

    def _note_error(self, exc: Exception) -> None:
        message = _redact(str(exc) or type(exc).__name__)
        with self._mutex:
            new, self._last_error = message != self._last_error, message
        if new:  # logged once per new failure, not on every retry
            if isinstance(exc, SensorError):
                log.warning("face %s: camera: %s; reopening with backoff", self.door, message)
            else:
                log.error("face %s: camera failed unexpectedly: %s", self.door, message, exc_info=exc)

    def _clear_error(self) -> None:
        if self._last_error is None:
            return
        with self._mutex:
            self._last_error = None
        log.info("face %s: camera delivering frames again", self.door)

    def _close(self, camera: FrameSource | None) -> None:
        if camera is not None:
            try:
                camera.close()
            except Exception as exc:  # closing a broken device may fail too; the reopen is what matters
                log.debug("face %s: closing the camera: %s", self.door, exc)
        return None
