"""`Presence`: who is inside, exit-button matching, overstays reported once, and rebuilding it from the logbook.

Pure logic with explicit times (epoch seconds); no clock, no sleeps. T0 is 2026-11-21T08:00:00Z.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from access.presence import ExitMatch, Presence, Stay, iso_utc, parse_utc
from gateway.store.events import Event

T0 = 1795248000.0  # 2026-11-21T08:00:00.000Z
HOUR = 3600.0
LIMITS: dict[str, float | None] = {"staff": 3 * HOUR, "officer": 3 * HOUR, "admin": None}


def limit(role: str) -> float | None:
    return LIMITS[role]


def ids(stays: list[Stay]) -> list[str]:
    return [stay.person for stay in stays]


def test_timestamps_round_trip() -> None:
    assert iso_utc(T0) == "2026-11-21T08:00:00.000Z"
    assert iso_utc(T0 + 1.2345) == "2026-11-21T08:00:01.234Z"
    assert iso_utc(T0 + 59.9996) == "2026-11-21T08:01:00.000Z"  # rounding carries into the seconds
    assert parse_utc("2026-11-21T08:00:01.234Z") == T0 + 1.234
    assert parse_utc(iso_utc(T0 + 0.5)) == T0 + 0.5


def test_enter_exit_and_order() -> None:
    room = Presence()
    room.enter("b", "Budi", "staff", "ruang-server", T0 + 10)
    room.enter("a", "Ani", "admin", "ruang-server", T0)
    assert ids(room.inside()) == ["a", "b"]  # by entry time
    assert room.is_inside("a") and len(room) == 2
    stay = room.exit("a", T0 + 60)
    assert stay == Stay("a", "Ani", "admin", "ruang-server", T0)
    assert not room.is_inside("a") and ids(room.inside()) == ["b"]
    assert room.exit("a", T0 + 61) is None  # not inside any more
    assert room.exit("nobody", T0) is None


def test_stay_as_dict() -> None:
    stay = Stay("p-1", "Budi", "staff", "ruang-server", T0)
    assert stay.as_dict(T0 + 90.5) == {
        "person": "p-1", "name": "Budi", "role": "staff", "door": "ruang-server",
        "since": "2026-11-21T08:00:00.000Z", "stay_s": 90.5,
    }
    assert stay.as_dict(T0 - 5)["stay_s"] == 0.0  # a clock step back never gives a negative stay


# -- exit button -----------------------------------------------------------------------------------


def test_exit_button_with_nobody_inside() -> None:
    room = Presence()
    assert room.exit_button("ruang-server", T0) == ExitMatch([], [])
    assert room.unattributed_exits == 0


def test_exit_button_with_one_inside_lets_them_out() -> None:
    room = Presence()
    stay = room.enter("a", "Ani", "staff", "ruang-server", T0)
    match = room.exit_button("ruang-server", T0 + 600)
    assert match == ExitMatch(persons=[stay], candidates=[])
    assert len(room) == 0
    assert match.event_fields("ruang-server", T0 + 600) == {
        "door": "ruang-server", "via": "exit_button", "candidates": [],
        "persons": [{"person": "a", "name": "Ani", "role": "staff", "door": "ruang-server",
                     "since": "2026-11-21T08:00:00.000Z", "stay_s": 600.0}],
    }


def test_two_inside_need_two_presses() -> None:
    room = Presence()
    a = room.enter("a", "Ani", "staff", "ruang-server", T0)
    b = room.enter("b", "Budi", "staff", "ruang-server", T0 + 5)
    first = room.exit_button("ruang-server", T0 + 60)
    assert first == ExitMatch(persons=[], candidates=["a", "b"])
    assert room.unattributed_exits == 1 and len(room) == 2  # nobody is guessed out
    second = room.exit_button("ruang-server", T0 + 70)
    assert second == ExitMatch(persons=[a, b], candidates=[])
    assert len(room) == 0 and room.unattributed_exits == 0


def test_reader_exit_between_presses_keeps_the_count_below_the_headcount() -> None:
    room = Presence()
    for n, person in enumerate("abc"):
        room.enter(person, person.upper(), "staff", "ruang-server", T0 + n)
    assert room.exit_button("ruang-server", T0 + 10).candidates == ["a", "b", "c"]
    assert room.exit_button("ruang-server", T0 + 11).candidates == ["a", "b", "c"]
    room.exit("a", T0 + 12)  # through an exit reader: two inside, the count drops to 1
    assert room.unattributed_exits == 1 and ids(room.inside()) == ["b", "c"]
    match = room.exit_button("ruang-server", T0 + 13)
    assert ids(match.persons) == ["b", "c"] and len(room) == 0


def test_reader_exit_of_the_last_but_one_leaves_the_other_inside() -> None:
    room = Presence()
    room.enter("a", "Ani", "staff", "ruang-server", T0)
    room.enter("b", "Budi", "staff", "ruang-server", T0 + 1)
    room.exit_button("ruang-server", T0 + 2)  # ambiguous
    room.exit("a", T0 + 3)
    # nobody is marked out by a reader exit; the next press settles it
    assert ids(room.inside()) == ["b"] and room.unattributed_exits == 0
    assert ids(room.exit_button("ruang-server", T0 + 4).persons) == ["b"]


def test_entering_again_starts_a_new_stay() -> None:
    room = Presence()
    room.enter("a", "Ani", "staff", "ruang-server", T0)
    room.enter("b", "Budi", "staff", "ruang-server", T0 + 1)
    room.exit_button("ruang-server", T0 + 2)  # Ani went out on this press, unseen
    room.enter("a", "Ani", "staff", "ruang-server", T0 + 100)  # ... and comes back in
    assert room.unattributed_exits == 0  # that press was hers, so it no longer counts against Budi
    assert room.get("a") == Stay("a", "Ani", "staff", "ruang-server", T0 + 100)
    assert ids(room.inside()) == ["b", "a"]


# -- overstays -------------------------------------------------------------------------------------


def test_overstays_are_reported_once_per_stay() -> None:
    room = Presence()
    room.enter("s", "Sari", "staff", "ruang-server", T0)
    room.enter("x", "Admin", "admin", "ruang-server", T0)  # no limit for admin here
    assert room.overstays(T0 + 3 * HOUR, limit) == []  # exactly at the limit is not over it
    over = room.overstays(T0 + 3 * HOUR + 1, limit)
    assert ids(over) == ["s"]
    assert room.overstays(T0 + 5 * HOUR, limit) == []  # once only
    assert room.reported() == {"s"}
    room.exit("s", T0 + 5 * HOUR)
    room.enter("s", "Sari", "staff", "ruang-server", T0 + 6 * HOUR)  # a new stay
    assert room.overstays(T0 + 8 * HOUR, limit) == []
    assert ids(room.overstays(T0 + 9 * HOUR + 1, limit)) == ["s"]
    assert room.overstays(T0 + 100 * HOUR, limit) == []


def test_mark_reported_only_for_someone_inside() -> None:
    room = Presence()
    assert not room.mark_reported("a")
    room.enter("a", "Ani", "staff", "ruang-server", T0)
    assert room.mark_reported("a")
    assert room.overstays(T0 + 10 * HOUR, limit) == []


# -- replay ----------------------------------------------------------------------------------------


def granted(person: str, direction: str, at: float, role: str = "staff", door: str = "ruang-server") -> dict[str, Any]:
    return {"kind": "access.granted", "ts": iso_utc(at), "source": f"door:{door}",
            "fields": {"door": door, "person": person, "name": person.upper(), "role": role,
                       "direction": direction, "method": "face"}}


def exit_event(at: float, persons: list[Any], candidates: list[str] | None = None) -> dict[str, Any]:
    return {"kind": "access.exit", "ts": iso_utc(at),
            "fields": {"door": "ruang-server", "via": "exit_button", "persons": persons,
                       "candidates": candidates or []}}


def overstay_event(person: str, at: float) -> dict[str, Any]:
    return {"kind": "access.overstay", "ts": iso_utc(at),
            "fields": {"person": person, "name": person.upper(), "role": "staff", "since": iso_utc(T0),
                       "max_stay_h": 3, "stay_s": at - T0}}


def state(room: Presence, now: float) -> tuple[list[dict[str, Any]], set[str], int]:
    return [stay.as_dict(now) for stay in room.inside()], room.reported(), room.unattributed_exits


def test_replay_in_and_out_through_every_kind_of_exit() -> None:
    events = [
        granted("a", "in", T0),
        granted("b", "in", T0 + 1),
        granted("c", "in", T0 + 2, role="admin"),
        granted("d", "in", T0 + 3),
        granted("a", "out", T0 + 10),  # an exit reader
        exit_event(T0 + 20, ["b"]),  # persons as ids
        exit_event(T0 + 30, [{"person": "c", "stay_s": 28}]),  # persons as dicts
        {"kind": "person.revoked", "ts": iso_utc(T0 + 40), "fields": {"person": "d", "name": "D", "by": "x",
                                                                      "reason": "left", "erased": 2}},
        {"kind": "door.opened", "ts": iso_utc(T0 + 41), "fields": {"door": "ruang-server", "reason": "grant"}},
    ]
    room = Presence.replay(events)
    # revoking someone does not walk them out of the room
    assert room.inside() == [Stay("d", "D", "staff", "ruang-server", T0 + 3)]


def test_replay_takes_the_door_from_the_source_when_the_fields_lack_it() -> None:
    event = granted("a", "in", T0)
    del event["fields"]["door"]
    assert Presence.replay([event]).inside()[0].door == "ruang-server"


def test_replay_after_an_overstay_does_not_alarm_again() -> None:
    events = [granted("a", "in", T0), overstay_event("a", T0 + 3 * HOUR + 1)]
    room = Presence.replay(events)
    assert room.is_inside("a") and room.reported() == {"a"}
    assert room.overstays(T0 + 5 * HOUR, limit) == []


def test_replay_of_ambiguous_presses_keeps_the_count() -> None:
    events = [granted("a", "in", T0), granted("b", "in", T0 + 1), exit_event(T0 + 5, [], ["a", "b"])]
    room = Presence.replay(events)
    assert room.unattributed_exits == 1
    assert ids(room.exit_button("ruang-server", T0 + 6).persons) == ["a", "b"]


def test_replay_accepts_store_events() -> None:
    fields = granted("a", "in", T0)["fields"]
    event = Event(seq=1, id="e1", ts=iso_utc(T0), kind="access.granted", source="door:ruang-server",
                  payload=json.dumps(fields), prev_hash="0" * 64, hash="1" * 64)
    assert ids(Presence.replay([event]).inside()) == ["a"]  # type: ignore[list-item]


def test_threads_entering_at_once() -> None:
    room = Presence()
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(200):
            room.enter(f"p{n}-{i}", "X", "staff", "ruang-server", T0 + i)
            if i % 2:
                room.exit(f"p{n}-{i}", T0 + i + 1)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(room) == 8 * 100


# -- property: the live Presence and its replay agree ----------------------------------------------

PEOPLE = ["a", "b", "c", "d"]
ROLE_OF = {"a": "staff", "b": "staff", "c": "officer", "d": "admin"}

operation = st.one_of(
    st.tuples(st.just("enter"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("exit"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("button"), st.just("")),
    st.tuples(st.just("check"), st.just("")),
    st.tuples(st.just("revoke"), st.sampled_from(PEOPLE)),
)


def drive(ops: list[tuple[tuple[str, str], int]], check: Callable[[str], float | None]) -> tuple[Presence, list, float]:
    """Run `ops` on a live Presence, logging what the authenticator would, as it would."""
    room, log, now = Presence(), [], T0
    for (op, person), step in ops:
        now += step
        if op == "enter":
            room.enter(person, person.upper(), ROLE_OF[person], "ruang-server", now)
            log.append(granted(person, "in", now, role=ROLE_OF[person]))
        elif op == "exit":
            room.exit(person, now)
            log.append(granted(person, "out", now, role=ROLE_OF[person]))
        elif op == "button":
            match = room.exit_button("ruang-server", now)
            log.append({"kind": "access.exit", "ts": iso_utc(now), "fields": match.event_fields("ruang-server", now)})
        elif op == "check":
            log += [overstay_event(stay.person, now) for stay in room.overstays(now, check)]
        else:
            log.append({"kind": "person.revoked", "ts": iso_utc(now), "fields": {"person": person}})
    return room, log, now


@given(st.lists(st.tuples(operation, st.integers(0, 2 * int(HOUR))), max_size=60))
@settings(max_examples=300, deadline=None)
def test_replay_equals_the_live_presence(ops: list[tuple[tuple[str, str], int]]) -> None:
    live, log, now = drive(ops, limit)
    rebuilt = Presence.replay(log)
    assert state(rebuilt, now) == state(live, now)
    # and they go on to behave alike: the same overstays, the same next exit-button match
    assert live.overstays(now + 4 * HOUR, limit) == rebuilt.overstays(now + 4 * HOUR, limit)
    assert live.exit_button("ruang-server", now) == rebuilt.exit_button("ruang-server", now)
