"""The door camera station with the real face_recognition (dlib) and OpenCV on the shared test images.

The images and the video live in ../shared/faces (never copied into the repository). Live-loop tests
wait on conditions with deadlines; nothing here sleeps to synchronise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from access.face_match import FaceDecision, FaceMatcher, RecognizerSettings
from access.face_station import FaceStation, MotionGate, still_source, video_source
from drivers.camera import Frame, FrameSource, iter_frames
from drivers.errors import SensorError, SensorReadError
from drivers.sim.camera import StillCamera
from enrollment.face_quality import enroll_samples, to_rgb
from tests.support.waiting import wait_until

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"
CLIP = FACES / "short_hamilton_clip.mp4"
SETTINGS = RecognizerSettings(agree_frames=3)


@pytest.fixture(scope="module")
def obama_template() -> np.ndarray:
    return enroll_samples([FACES / "obama.jpg"]).template


@pytest.fixture(scope="module")
def lin_template() -> np.ndarray:
    return enroll_samples([FACES / "lin-manuel-miranda.png"]).template


@pytest.fixture(scope="module")
def obama2_rgb() -> np.ndarray:
    return to_rgb(FACES / "obama2.jpg")


@pytest.fixture
def matcher(obama_template: np.ndarray, lin_template: np.ndarray) -> FaceMatcher:
    matcher = FaceMatcher()
    matcher.add("staff-obama", obama_template)
    matcher.add("staff-lin", lin_template)
    return matcher


@pytest.fixture
def stations() -> Iterator[Callable[..., FaceStation]]:
    """Make stations; every one is stopped at the end, even when the test fails."""
    made: list[FaceStation] = []

    def make(matcher: FaceMatcher, on_decision: Callable[[FaceDecision], None] | None = None,
             settings: RecognizerSettings = SETTINGS, **kwargs: object) -> FaceStation:
        kwargs.setdefault("camera_factory", None)
        station = FaceStation("server-room", matcher, settings, on_decision or (lambda d: None), **kwargs)  # type: ignore[arg-type]
        made.append(station)
        return station

    yield make
    for station in made:
        station.stop()


class Scripted:
    """A camera showing a list of pictures, one frame each, on a `fps` clock; then it ends like a file."""

    def __init__(self, pictures: list[np.ndarray], fps: float = 10.0) -> None:
        self.name = "scripted"
        self._pictures, self._fps, self._next = pictures, fps, 0
        self.closed = False

    def read(self) -> Frame | None:
        if self._next >= len(self._pictures):
            return None
        frame = Frame(self._pictures[self._next], self._next / self._fps)
        self._next += 1
        return frame

    def close(self) -> None:
        self.closed = True


# --- present: the simulator's "hold this to the camera" -------------------------------------------------


def test_photo_of_an_enrolled_person_is_granted_and_a_stranger_is_unknown(matcher: FaceMatcher, stations) -> None:
    station = stations(matcher)
    granted = station.present(still_source(FACES / "obama2.jpg", SETTINGS))
    assert granted is not None and granted.outcome == "granted" and granted.person_id == "staff-obama"
    assert granted.frames == 3 and granted.distance <= 0.6
    unknown = station.present(still_source(FACES / "biden.jpg", SETTINGS))
    assert unknown is not None and unknown.outcome == "unknown_face" and unknown.person_id is None
    status = station.status()
    assert status["camera"] == "sim" and status["presented"] == 2 and status["decisions"] == 2
    assert status["frames_seen"] == 0  # no live loop on a simulated camera


def test_picture_without_a_face_ends_without_a_decision(matcher: FaceMatcher, stations) -> None:
    station = stations(matcher)
    source = still_source(np.full((360, 640, 3), 128, np.uint8), RecognizerSettings(liveness=True))
    assert station.present(source) is None  # the caller denies this as no_face
    # one frame was enough to know: a still shows the same picture in all of its 60 frames
    assert len(list(iter_frames(source))) == 0  # closed by present()


def test_video_of_the_enrolled_person_is_granted(matcher: FaceMatcher, stations) -> None:
    matcher.add("staff-alex", enroll_samples([FACES / "alex-lacamoire.png"]).template)
    station = stations(matcher)
    decision = station.present(video_source(CLIP, step=5))
    assert decision is not None and decision.outcome == "granted" and decision.person_id == "staff-lin"
    assert 0.3 < decision.distance <= 0.6


def test_still_photo_is_refused_with_liveness_on(matcher: FaceMatcher, stations) -> None:
    settings = RecognizerSettings(agree_frames=3, liveness=True, blink_window_s=1.0)
    station = stations(matcher, settings=settings)
    decision = station.present(still_source(FACES / "lin-manuel-miranda.png", settings))
    assert decision is not None and decision.outcome == "liveness_failed"
    assert decision.person_id == "staff-lin" and not decision.blinked
    assert decision.frames == 11  # t = 0.0 .. 1.0 s at 10 fps: the whole blink window was watched
    # the default sim photo spans the 5 s window and a second more, so it never runs out before deciding
    assert len(list(iter_frames(still_source(FACES / "obama.jpg", RecognizerSettings(liveness=True))))) == 60
    assert len(list(iter_frames(still_source(FACES / "obama.jpg", SETTINGS)))) == 3


def test_revoked_face_is_unknown_at_the_next_presentation(matcher: FaceMatcher, stations) -> None:
    station = stations(matcher)
    assert station.present(still_source(FACES / "obama2.jpg", SETTINGS)).outcome == "granted"  # type: ignore[union-attr]
    assert matcher.remove("staff-obama")  # revocation, on the matcher the station shares
    decision = station.present(still_source(FACES / "obama2.jpg", SETTINGS))
    assert decision is not None and decision.outcome == "unknown_face" and decision.person_id is None


# --- the live loop ----------------------------------------------------------------------------------


def test_live_camera_on_the_clip_reports_a_grant(matcher: FaceMatcher, stations) -> None:
    decisions: list[FaceDecision] = []
    station = stations(matcher, decisions.append, camera_factory=lambda: video_source(CLIP, step=5), idle_fps=100)
    station.start()
    wait_until(lambda: decisions, timeout=60, message=lambda: f"a decision; status {station.status()}")
    assert decisions[0].outcome == "granted" and decisions[0].person_id == "staff-lin"
    status = station.status()
    assert status["camera"] == "live" and status["running"] and status["source"] == str(CLIP)
    assert status["decisions"] >= 1 and status["last_decision"] == "granted"
    station.stop()
    assert not station.status()["running"]


def test_empty_corridor_is_not_analysed_until_someone_arrives(
    matcher: FaceMatcher, stations, obama2_rgb: np.ndarray
) -> None:
    corridor = np.full_like(obama2_rgb, 120)
    pictures = [corridor] * 40 + [obama2_rgb] * 60  # 4 s of nothing, then a person for 6 s
    decisions: list[FaceDecision] = []
    opened: list[Scripted] = []

    def factory() -> FrameSource:
        if opened:
            raise SensorError("unplugged")  # one showing only: the counters below stay put
        opened.append(Scripted(pictures))
        return opened[0]

    station = stations(matcher, decisions.append, camera_factory=factory, idle_fps=400)
    station.start()
    wait_until(lambda: station.status()["frames_seen"] == 100, timeout=20, message=lambda: str(station.status()))
    status = station.status()
    # the first frame (someone may already be there), then the K frames of the arriving face: nothing else
    assert status["frames_analysed"] == 1 + SETTINGS.agree_frames, status
    assert [(d.outcome, d.person_id) for d in decisions] == [("granted", "staff-obama")]


def test_person_standing_still_is_decided_once(matcher: FaceMatcher, stations) -> None:
    decisions: list[FaceDecision] = []

    def on_decision(decision: FaceDecision) -> None:
        decisions.append(decision)
        raise RuntimeError("the authenticator failed")  # must not stop the camera thread

    station = stations(matcher, on_decision, idle_fps=400,
                       camera_factory=lambda: StillCamera(FACES / "obama2.jpg", frames=1000, fps=10))
    station.start()
    wait_until(lambda: station.status()["frames_seen"] >= 150, timeout=20, message=lambda: str(station.status()))
    status = station.status()
    assert status["frames_analysed"] == SETTINGS.agree_frames, status  # 15 s of a still scene: 3 analysed
    assert status["decisions"] == 1 and [d.outcome for d in decisions] == ["granted"]
    assert status["running"] and status["last_error"] is None


def test_same_person_moving_is_not_decided_again_until_they_leave(
    matcher: FaceMatcher, stations, obama2_rgb: np.ndarray
) -> None:
    corridor = np.full_like(obama2_rgb, 120)
    moved = np.roll(obama2_rgb, 40, axis=1)  # the same person, a step to the side
    # 10 fps: arrives at 1 s, moves at 4 s, leaves at 6 s, comes back at 7.5 s (all within 2 x hold_off_s)
    pictures = [corridor] * 10 + [obama2_rgb] * 30 + [moved] * 20 + [corridor] * 15 + [obama2_rgb] * 30
    decisions: list[FaceDecision] = []
    opened: list[Scripted] = []

    def factory() -> FrameSource:
        if opened:
            raise SensorError("unplugged")
        opened.append(Scripted(pictures))
        return opened[0]

    station = stations(matcher, decisions.append, camera_factory=factory, idle_fps=400, hold_off_s=2.0)
    station.start()
    wait_until(lambda: station.status()["frames_seen"] == len(pictures), timeout=30,
               message=lambda: str(station.status()))
    status = station.status()
    assert [d.person_id for d in decisions] == ["staff-obama", "staff-obama"]  # arrival, and the return
    assert status["decisions"] == 2 and status["suppressed"] == 1  # the move in between was not reported


def test_camera_that_will_not_open_is_retried_and_reported(matcher: FaceMatcher, stations) -> None:
    calls: list[int] = []

    def factory() -> FrameSource:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("driver bug")  # not even a SensorError: the thread still survives
        raise SensorError("camera source 'rtsp://admin:s3cret@10.0.0.5/stream' could not be opened")

    station = stations(matcher, camera_factory=factory, min_backoff_s=0.01, max_backoff_s=0.05)
    station.start()
    wait_until(lambda: len(calls) >= 4, timeout=10, message="the camera to be retried")
    status = station.status()
    assert status["running"] and "could not be opened" in status["last_error"]
    assert "s3cret" not in status["last_error"] and "***@10.0.0.5" in status["last_error"]
    station.stop()
    assert not station.status()["running"]


def test_camera_that_fails_mid_stream_is_reopened_and_closed_on_stop(
    matcher: FaceMatcher, stations, obama2_rgb: np.ndarray
) -> None:
    corridor = np.full((120, 160, 3), 90, np.uint8)
    opened: list[Scripted] = []

    class Flaky(Scripted):
        def read(self) -> Frame | None:
            if len(opened) < 3 and self._next == 2:
                raise SensorReadError("camera '0' delivered no frame (unplugged, stream dropped or device busy)")
            return super().read()

    def factory() -> FrameSource:
        opened.append(Flaky([corridor] * 100_000))
        return opened[-1]

    station = stations(matcher, camera_factory=factory, min_backoff_s=0.01, max_backoff_s=0.02, idle_fps=200)
    station.start()
    wait_until(lambda: len(opened) == 3 and station.status()["last_error"] is None, timeout=10,
               message=lambda: f"the third camera to deliver; status {station.status()}")
    assert all(camera.closed for camera in opened[:2])  # each failed camera was released before the reopen
    seen = station.status()["frames_seen"]
    wait_until(lambda: station.status()["frames_seen"] > seen + 5, timeout=10, message="frames after the reopen")
    station.stop()
    assert opened[2].closed and not station.status()["running"]


def test_present_and_the_live_loop_share_one_recogniser(
    matcher: FaceMatcher, stations, obama2_rgb: np.ndarray
) -> None:
    live = threading.Event()

    class Busy(Scripted):  # a corridor that always moves, so the live loop keeps wanting the recogniser
        def read(self) -> Frame | None:
            live.set()
            return super().read()

    noise = np.random.default_rng(3)
    pictures = [noise.integers(0, 255, (120, 160, 3), np.uint8) for _ in range(20)] * 500
    station = stations(matcher, camera_factory=lambda: Busy(pictures), idle_fps=200)
    station.start()
    live.wait(10)
    decision = station.present(still_source(obama2_rgb, SETTINGS))
    assert decision is not None and decision.outcome == "granted" and decision.person_id == "staff-obama"


# --- the motion gate --------------------------------------------------------------------------------


def test_motion_gate_sees_a_change_and_then_absorbs_it(obama2_rgb: np.ndarray) -> None:
    gate = MotionGate(threshold=3.0, background_s=1.0)
    empty = np.full_like(obama2_rgb, 120)
    assert not gate.moved(Frame(empty, 0.0))  # the first frame is the background
    assert not gate.moved(Frame(empty, 0.1))
    assert gate.moved(Frame(obama2_rgb, 0.2)) and gate.level > 10
    t = 0.2
    while gate.moved(Frame(obama2_rgb, t := t + 0.1)):
        assert t < 5.0, "the background never took in the new scene"
    assert not gate.moved(Frame(obama2_rgb, t + 0.1))  # the person standing still is scenery now
    # (the station keeps analysing a face it has seen for active_s, so standing still is not a problem)
    with pytest.raises(ValueError):
        MotionGate(threshold=0)
