"""The door end to end: a real gateway process, a real mosquitto, real SQLite, real face_recognition on the
shared photos (../shared/faces) and the real fingerprint driver talking to the in-process emulator
(`[doors.fingerprint] port = "sim"`). Everything is done through `dcgate` as an officer would type it.

Four gateway runs, each a scenario the issue accepts: faces at a face_or_finger door; fingerprints and a
person's life (deactivate, activate, revoke); the door's mechanics and who is inside across a restart and
a crash; two factors, liveness and the role's schedule.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from access.crypto import generate_key_file
from access.presence import parse_utc
from gateway.config.access import DAYS
from tests.support.eventstore import committed_events
from tests.support.gateway_proc import GatewayProcess, run_cli
from tests.support.waiting import wait_until

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"
CLIP = FACES / "short_hamilton_clip.mp4"
NIP_OBAMA = "196108041992031001"  # an 18-digit civil-servant NIP: born 1961-08-04, appointed 1992-03, male
NIP_LIN = "198001162005011002"


# -- config ------------------------------------------------------------------------------------------


def main_door(**overrides: Any) -> dict[str, Any]:
    """hardware/config/sim.toml's `main`: simulated pins, a simulated camera and fingerprint sensor."""
    return {
        "name": "main", "auth": "face_or_finger", "gpio": "sim", "lock_pin": 23, "contact_pin": 24,
        "exit_button_pin": 25, "unlock_s": 5, "held_open_s": 30, "liveness": False,
        "camera": {"source": "sim"}, "fingerprint": {"port": "sim"},
    } | overrides


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return generate_key_file(tmp_path / "biometric.key")


@pytest.fixture
def door_config(make_config, key_file) -> Callable[..., Path]:
    """A config with `doors` and an [access] section using the test's key (extra keys merged into it)."""

    def make(doors: list[dict[str, Any]], **access: Any) -> Path:
        return make_config(access={"key_file": str(key_file), "timezone": "Asia/Jakarta", **access}, doors=doors)

    return make


# -- dcgate, as typed --------------------------------------------------------------------------------


def dcgate(config: Path, *args: str) -> str:
    result = run_cli(*args, "--config", str(config))
    assert result.returncode == 0, f"dcgate {' '.join(args)}: exit {result.returncode}\n{result.stdout}{result.stderr}"
    return result.stdout


def dcgate_json(config: Path, *args: str) -> Any:
    out = dcgate(config, *args)  # `enroll finger` says "place the finger" first: the JSON follows
    return json.loads(out[min(i for i in (out.find("{"), out.find("[")) if i >= 0):])


def add_person(config: Path, name: str, nip: str, role: str) -> str:
    return dcgate(config, "person", "add", "--name", name, "--nip", nip, "--role", role, "--by", "Budi").strip()


def enroll_face(config: Path, person: str, image: str) -> dict[str, Any]:
    enrolled = dcgate_json(config, "enroll", "face", person, "--image", str(FACES / image), "--by", "Budi")
    assert enrolled["person"] == person and enrolled["accepted"] == 1 and enrolled["refused"] == []
    return enrolled


def enroll_finger(config: Path, person: str, door: str = "main") -> int:
    enrolled = dcgate_json(config, "enroll", "finger", person, "--door", door, "--by", "Budi")
    assert enrolled["person"] == person and enrolled["door"] == door
    return enrolled["slot"]


def present(config: Path, door: str, *how: str) -> dict[str, Any]:
    """`dcgate door present DOOR --face IMG | --video FILE | --finger N`: the decision it prints."""
    return json.loads(dcgate(config, "door", "present", door, *how))


def face(config: Path, image: str, door: str = "main") -> dict[str, Any]:
    return present(config, door, "--face", str(FACES / image))


def finger(config: Path, slot: int, door: str = "main") -> dict[str, Any]:
    return present(config, door, "--finger", str(slot))


def sim_door(config: Path, *values: str, door: str = "main") -> dict[str, Any]:
    return json.loads(dcgate(config, "sim", "set", "door", door, *values))["state"]


def inside(config: Path) -> list[dict[str, Any]]:
    return json.loads(dcgate(config, "inside", "--json"))


def door_status(config: Path, door: str = "main") -> dict[str, Any]:
    return dcgate_json(config, "door", "status")[door]


# -- the logbook -------------------------------------------------------------------------------------


def events(gw: GatewayProcess, kind: str, **match: Any) -> list[dict[str, Any]]:
    """Fields of the committed events of `kind` whose fields include `match`."""
    return [e.fields for e in committed_events(gw.config.database_path, kind=kind)
            if all(e.fields.get(k) == v for k, v in match.items())]


def wait_event(gw: GatewayProcess, kind: str, timeout: float = 10, count: int = 1, **match: Any) -> dict[str, Any]:
    """The `count`-th committed event of `kind` matching `match`, waited for."""
    found = wait_until(lambda: events(gw, kind, **match)[count - 1:], timeout,
                       message=lambda: f"{kind} {match} (#{count}); have {events(gw, kind)}\n{gw.log_tail()}")
    return found[0]


def granted(decision: dict[str, Any], person: str, method: str, door: str = "main") -> None:
    assert decision["decision"] == "granted", decision
    assert (decision["door"], decision["person"], decision["method"], decision["reason"]) == (
        door, person, method, None), decision


def denied(decision: dict[str, Any], reason: str, person: str | None = None, method: str | None = None) -> None:
    assert decision["decision"] == "denied", decision
    assert decision["reason"] == reason and decision["person"] == person, decision
    if method is not None:
        assert decision["method"] == method, decision


# -- 1 + 2: faces at a face_or_finger door -----------------------------------------------------------


def test_faces_are_granted_or_refused_and_every_decision_reaches_mqtt(door_config, gateway_factory, subscriber):
    config = door_config([main_door()])
    gw = gateway_factory(config)
    obama = add_person(config, "Barack Obama", NIP_OBAMA, "officer")
    lin = add_person(config, "Lin-Manuel Miranda", NIP_LIN, "staff")
    enroll_face(config, obama, "obama.jpg")
    enroll_face(config, lin, "lin-manuel-miranda.png")

    # other photos of him, low resolution ones too: 320x240 and 427x240 frames whose faces (~107 and ~62 px)
    # are still over the recogniser's min_face_px of 48, as test_face.py expects
    distances = {}
    for image in ("obama2.jpg", "obama3.jpg", "obama-240p.jpg", "obama_small.jpg"):
        decision = face(config, image)
        granted(decision, obama, "face")
        assert (decision["door"], decision["direction"], decision["name"], decision["nip"]) == (
            "main", "in", "Barack Obama", NIP_OBAMA)
        distances[image] = decision["distance"]
    assert all(0 < d <= 0.6 for d in distances.values()), distances

    stranger = face(config, "biden.jpg")
    denied(stranger, "unknown_face", method="face")
    assert stranger["distance"] > 0.6 and stranger["name"] is None

    # two faces: a decision, not a crash. Only the largest (nearest the door: Biden) is judged, as
    # access/face_match.py documents, so the enrolled man beside him does not open the door for him
    denied(face(config, "two_people.jpg"), "unknown_face")
    # an RGBA PNG is converted, not refused
    granted(face(config, "32bit.png"), obama, "face")

    video = present(config, "main", "--video", str(CLIP))
    granted(video, lin, "face")
    assert 0.3 < video["distance"] <= 0.6 and video["name"] == "Lin-Manuel Miranda"

    status = gw.status()
    assert status["doors"]["main"]["camera"]["presented"] == 8 and gw.running
    assert [row["person"] for row in status["inside"]] == [obama, lin]

    # the logbook holds every decision, and each reached the subscriber with the person and the door
    want = [("access.granted", obama)] * 4 + [("access.denied", None)] * 2 + [("access.granted", obama),
                                                                             ("access.granted", lin)]

    def stored() -> list[tuple[str, str | None]]:
        return [(e.kind, e.fields.get("person")) for e in committed_events(gw.config.database_path)
                if e.kind.startswith("access.")]

    wait_until(lambda: len(stored()) >= len(want), 5, message=lambda: f"access events committed: {stored()}")
    assert stored() == want

    def received() -> list[dict[str, Any]]:
        return [m for m in subscriber.events() if m["kind"].startswith("access.")]

    wait_until(lambda: len(received()) >= len(want), 10, message=lambda: f"access events over MQTT: {received()}")
    messages = received()
    assert [(m["kind"], m.get("person")) for m in messages] == want
    assert all(m["door"] == "main" and m["source"] == "door:main" and m["method"] == "face" for m in messages)
    assert [m["reason"] for m in messages if m["kind"] == "access.denied"] == ["unknown_face", "unknown_face"]
    assert {m["name"] for m in messages if m["kind"] == "access.granted"} == {"Barack Obama", "Lin-Manuel Miranda"}
    topics = {m.topic for m in subscriber.snapshot() if "/events/access/" in m.topic}
    assert topics == {"dcgate/test-site/test-gw/events/access/granted", "dcgate/test-site/test-gw/events/access/denied"}
    assert gw.terminate() == 0


# -- 4 + 5: fingerprints, deactivation, revocation ---------------------------------------------------


def test_fingerprint_deactivation_and_revocation(door_config, gateway_factory):
    # a WITA site: the logbook's local times follow [access] timezone
    config = door_config([main_door()], timezone="Asia/Makassar")
    gw = gateway_factory(config)
    obama = add_person(config, "Barack Obama", NIP_OBAMA, "admin")
    enroll_face(config, obama, "obama.jpg")
    slot = enroll_finger(config, obama)
    assert slot == 0
    enrolled = wait_event(gw, "biometric.enrolled", method="finger")
    assert (enrolled["person"], enrolled["slot"], enrolled["door"]) == (obama, 0, "main")

    by_finger = finger(config, slot)
    granted(by_finger, obama, "finger")
    assert by_finger["slot"] == slot and by_finger["confidence"] > 0
    logged = wait_event(gw, "access.granted")
    assert (logged["person"], logged["method"], logged["slot"], logged["confidence"]) == (
        obama, "finger", slot, by_finger["confidence"])
    denied(finger(config, 7), "unknown_finger", method="finger")

    synced = dcgate_json(config, "finger", "sync", "main")
    assert synced["templates"] == 1
    assert synced["sensors"]["in"]["slots"] == {"added": [], "replaced": [], "removed": [], "kept": [slot],
                                               "failed": {}}

    assert dcgate_json(config, "person", "deactivate", obama, "--by", "Budi", "--reason", "cuti")["status"] == \
        "inactive"
    denied(finger(config, slot), "inactive", obama, "finger")
    assert dcgate_json(config, "person", "activate", obama, "--by", "Budi")["status"] == "active"
    granted(finger(config, slot), obama, "finger")

    revoked = dcgate_json(config, "person", "revoke", obama, "--by", "Budi", "--reason", "mutasi")
    assert revoked["person"]["status"] == "revoked"
    assert revoked["erased"] == {"faces": 1, "finger_slots": [slot], "sensors": {"main": "erased"}}
    erased = wait_event(gw, "biometric.erased")
    assert (erased["person"], erased["slots"], erased["sensors"], erased["by"]) == (
        obama, [slot], {"main": "erased"}, "Budi")
    assert erased["faces"] == 1

    # the same finger and face now match nothing: the template is gone from the sensor and the matcher
    denied(finger(config, slot), "unknown_finger", method="finger")
    denied(face(config, "obama2.jpg"), "unknown_face", method="face")
    assert dcgate_json(config, "finger", "sync", "main")["sensors"]["in"]["slots"]["kept"] == []
    assert gw.status()["doors"]["main"]["fingerprint"]["in"]["slots_used"] == 0

    # the logbook, by person: what happened to him, in order, in WITA
    lines = dcgate(config, "log", "--person", NIP_OBAMA, "--json").splitlines()
    book = [json.loads(line) for line in lines]
    assert [(e["kind"], e["reason"]) for e in book if e["kind"].startswith("access.")] == [
        ("access.granted", None), ("access.denied", "inactive"), ("access.granted", None)]
    assert [e["kind"] for e in book if not e["kind"].startswith(("access.", "door."))] == [
        "person.added", "biometric.enrolled", "biometric.enrolled", "person.deactivated", "person.activated",
        "person.revoked", "biometric.erased"]
    assert all(e["time"].endswith("+08:00") for e in book), [e["time"] for e in book]
    assert gw.terminate() == 0


# -- 6 + 7: the door itself, who is inside, restart and crash ----------------------------------------


def test_door_mechanics_presence_restart_and_crash(door_config, gateway_factory):
    config = door_config([main_door(held_open_s=5, unlock_s=10)])
    gw = gateway_factory(config)
    admin = add_person(config, "Lin-Manuel Miranda", NIP_LIN, "admin")
    slot = enroll_finger(config, admin)
    assert inside(config) == []

    granted(finger(config, slot), admin, "finger")
    assert gw.control("door.status")["main"]["state"] == "unlocked"
    assert sim_door(config, "open=1")["opened"] is True
    opened = wait_event(gw, "door.opened")
    assert (opened["door"], opened["reason"], opened["person"], opened["method"]) == ("main", "grant", admin, "finger")
    assert [(row["person"], row["door"], row["role"]) for row in inside(config)] == [(admin, "main", "admin")]
    held = wait_event(gw, "door.held_open", timeout=15)  # held_open_s = 5
    assert (held["reason"], held["person"], held["held_open_s"]) == ("grant", admin, 5.0) and held["open_s"] >= 5
    assert sim_door(config, "open=0")["open"] is False
    closed = wait_event(gw, "door.closed")
    assert closed["held_open"] is True and closed["forced"] is False and closed["open_s"] >= 5
    status = door_status(config)
    assert (status["state"], status["locked"], status["door_open"]) == ("locked", True, False)

    # a crowbar while locked
    assert sim_door(config, "open=1")["opened"] is False  # locked: a push does nothing
    sim_door(config, "force=1")
    forced = wait_event(gw, "door.forced")
    assert forced["state_before"] == "locked"
    assert wait_event(gw, "door.opened", count=2)["reason"] == "forced"
    sim_door(config, "open=0")
    assert wait_event(gw, "door.closed", count=2)["forced"] is True

    # leaving: the exit button, then the door opens and shuts; the one person inside is out
    sim_door(config, "exit=1")
    assert wait_event(gw, "door.exit_button")["state_before"] == "locked"
    wait_until(lambda: gw.control("door.status")["main"]["state"] == "unlocked", 5, message="the exit unlock")
    assert sim_door(config, "open=1")["opened"] is True
    left = wait_event(gw, "access.exit")
    assert left["via"] == "exit_button" and left["door"] == "main" and left["candidates"] == []
    assert [p["person"] for p in left["persons"]] == [admin] and left["persons"][0]["stay_s"] > 5
    assert wait_event(gw, "door.opened", count=3)["reason"] == "exit_button"
    sim_door(config, "open=0")
    wait_event(gw, "door.closed", count=3)
    assert inside(config) == []

    # inside across a clean restart: the logbook, not memory, says who is in
    granted(finger(config, slot), admin, "finger")
    since = parse_utc(inside(config)[0]["since"])

    def still_inside() -> bool:  # the same stay; its start as the logbook has it, a few ms after the decision
        rows = inside(config)
        return len(rows) == 1 and rows[0]["person"] == admin and abs(parse_utc(rows[0]["since"]) - since) < 1

    assert gw.terminate() == 0
    assert still_inside()  # the gateway is stopped: `inside` reads the logbook itself
    gw = gateway_factory(config)
    assert still_inside()

    # a crash while the door stands unlocked for a grant: it comes back locked
    granted(finger(config, slot), admin, "finger")
    wait_until(lambda: len(events(gw, "access.granted")) == 3, 5, message="the grant committed")
    before = gw.status()["doors"]["main"]
    assert before["state"] == "unlocked" and before["relay_on"] is True
    gw.kill()
    gw = gateway_factory(config)
    assert events(gw, "gateway.started")[-1]["previous_shutdown"] == "unclean"
    status = door_status(config)  # no grant survives a restart: the boot drives the relay to locked
    assert (status["state"], status["locked"], status["relay_on"], status["unlock_remaining_s"]) == (
        "locked", True, False, None)
    pushed = sim_door(config, "open=1")
    assert pushed == {"opened": False, "open": False, "lock_released": False, "relay_energised": False}
    assert [row["person"] for row in inside(config)] == [admin]  # the second entry, still inside
    assert gw.terminate() == 0


# -- 3 + 8 + 9: two factors, liveness, the schedule --------------------------------------------------


def test_two_factors_liveness_and_schedule(door_config, gateway_factory):
    # staff may not come today nor tomorrow (WIB), so a run across midnight still sees a closed day
    today = datetime.now(ZoneInfo("Asia/Jakarta"))
    closed_days = {DAYS[today.weekday()], DAYS[(today + timedelta(days=1)).weekday()]}
    lab = {key: value for key, value in main_door(name="lab", auth="face", liveness=True, lock_pin=5,
                                                   contact_pin=6, exit_button_pin=13).items() if key != "fingerprint"}
    config = door_config([main_door(auth="face_and_finger"), lab], second_factor_s=2,
                         roles={"staff": {"days": [d for d in DAYS if d not in closed_days]}})
    gw = gateway_factory(config)
    officer = add_person(config, "Barack Obama", NIP_OBAMA, "officer")
    staff = add_person(config, "Lin-Manuel Miranda", NIP_LIN, "staff")
    enroll_face(config, officer, "obama.jpg")
    officer_slot, staff_slot = enroll_finger(config, officer), enroll_finger(config, staff)

    # the role's schedule, judged on the first factor: refused at once
    denied(finger(config, staff_slot), "outside_schedule", staff, "finger")

    # face, then finger within second_factor_s: one grant, both factors' evidence
    first = face(config, "obama_small.jpg")
    # the finger follows within the 2 s window: over the control socket (the operation `dcgate door present`
    # calls), because a new CLI process alone takes ~1 s to start on a loaded test machine
    waiting = gw.control("door.status")["main"]
    second = gw.control("door.present", {"door": "main", "finger": officer_slot, "direction": "in"})
    assert (first["decision"], first["person"], first["method"], first["waiting_for"], first["within_s"]) == (
        "pending", officer, "face", "finger", 2.0)
    assert waiting["state"] == "locked" and waiting["pending"]["person"] == officer  # one factor opens nothing
    granted(second, officer, "face+finger")
    assert second["distance"] <= 0.6 and second["slot"] == officer_slot and second["confidence"] > 0
    grant = wait_event(gw, "access.granted")
    assert (grant["door"], grant["person"], grant["method"], grant["slot"]) == ("main", officer, "face+finger",
                                                                                officer_slot)
    assert [(p["person"], p["waiting_for"]) for p in events(gw, "access.pending")] == [(officer, "finger")]

    # a face alone: pending, and the health loop (every 5 s) times it out; nothing is granted
    pending = face(config, "obama_small.jpg")
    started = time.monotonic()
    assert pending["decision"] == "pending"
    assert gw.control("door.status")["main"]["pending"]["method"] == "face"

    # meanwhile, at the liveness door: a photo of an enrolled face never blinks
    photo = face(config, "obama-240p.jpg", door="lab")
    denied(photo, "liveness_failed", officer, "face")
    assert photo["door"] == "lab" and photo["distance"] <= 0.6  # recognised: refused for the missing blink only

    timeout = wait_event(gw, "access.denied", timeout=12 - (time.monotonic() - started),
                         reason="second_factor_timeout")
    assert (timeout["person"], timeout["method"], timeout["door"]) == (officer, "face", "main")
    asked = committed_events(gw.config.database_path, kind="access.pending")[-1].ts
    refused = next(e.ts for e in committed_events(gw.config.database_path, kind="access.denied")
                   if e.fields["reason"] == "second_factor_timeout")
    assert 2.0 <= parse_utc(refused) - parse_utc(asked) < 2.0 + 5.0 + 2.0  # second_factor_s, then a health tick
    assert len(events(gw, "access.granted")) == 1
    assert door_status(config)["pending"] is None
    assert gw.terminate() == 0
