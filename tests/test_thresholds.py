"""Threshold alarms: each rule, Hypothesis properties, the alarm book, and rebuilding it from a real store."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.config.thresholds import ThresholdConfig
from gateway.errors import DcgateError, InvalidValueError
from gateway.monitoring import (
    ACK_EVENT,
    AlarmBook,
    AlarmEvaluator,
    AlarmTransition,
    UnknownAlarmError,
    rebuild_alarm_book,
)
from gateway.store.database import open_for_reading
from gateway.store.events import iter_events
from gateway.store.writer import StoreWriter

DEFAULT = ThresholdConfig()


def evaluator(config: ThresholdConfig = DEFAULT, start: float = 0.0) -> AlarmEvaluator:
    counter = itertools.count(1)
    return AlarmEvaluator("rack1", config, start=start, new_id=lambda: f"alarm-{next(counter)}")


def feed(ev: AlarmEvaluator, rows: list[tuple[float, float | None, float | None, str]]) -> list[AlarmTransition]:
    out: list[AlarmTransition] = []
    for t, temperature, humidity, status in rows:
        out += ev.observe(t, temperature, humidity, status)  # type: ignore[arg-type]
    return out


def summary(transitions: list[AlarmTransition]) -> list[tuple[str, str, str, str]]:
    return [(x.kind, x.quantity, x.condition, x.severity) for x in transitions]


# -- config ------------------------------------------------------------------------------
def test_config_defaults_are_the_jambi_standard() -> None:
    c = ThresholdConfig()
    assert (c.temperature_low_c, c.temperature_high_c, c.humidity_low_pct, c.humidity_high_pct) == (20, 22, 35, 65)
    assert (c.temperature_hysteresis_c, c.humidity_hysteresis_pct, c.min_duration_s) == (0.5, 2.0, 60.0)
    assert (c.rate_delta_c, c.rate_window_s) == (2.0, 600.0)
    assert all(field.description for field in ThresholdConfig.model_fields.values())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"temperature_low_c": 23}, "temperature_low_c (23 °C) is not below temperature_high_c (22 °C)"),
        ({"temperature_critical_high_c": 21}, "temperature_critical_high_c (21 °C) must be above temperature_high_c"),
        ({"humidity_critical_low_pct": 40}, "humidity_critical_low_pct (40 %) must be below humidity_low_pct"),
        ({"temperature_hysteresis_c": 1.5}, "temperature_hysteresis_c (1.5 °C) is too wide for the band 20–22"),
        ({"humidity_hysteresis_pct": 5}, "not smaller than the gap between the warning and critical limits (5 %)"),
        ({"rate_delta_c": 0.5}, "not smaller than rate_delta_c (0.5)"),
        ({"unknown_key": 1}, "Extra inputs are not permitted"),
        ({"min_duration_s": "60"}, "Input should be a valid number"),
    ],
)
def test_config_refuses_inconsistent_values_naming_them(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DEFAULT.with_overrides(overrides)


def test_config_override_keeps_the_rest() -> None:
    c = DEFAULT.with_overrides({"temperature_high_c": 24, "temperature_critical_high_c": 27})
    assert (c.temperature_high_c, c.temperature_critical_high_c, c.temperature_low_c) == (24, 27, 20)


# -- rules -------------------------------------------------------------------------------
def test_high_raises_only_after_min_duration() -> None:
    ev = evaluator()
    assert feed(ev, [(0, 21, 50, "ok"), (10, 22.5, 50, "ok"), (40, 22.6, 50, "ok")]) == []
    [raised] = ev.observe(70, 22.4, 50)
    assert (raised.kind, raised.condition, raised.severity, raised.since, raised.limit) == (
        "raised", "high", "warning", 10, 22.0)
    assert raised.event_kind == "env.alarm.raised"


def test_a_dip_below_the_limit_restarts_the_min_duration() -> None:
    ev = evaluator()
    assert feed(ev, [(0, 23, 50, "ok"), (50, 21.9, 50, "ok"), (70, 23, 50, "ok"), (120, 23, 50, "ok")]) == []
    assert summary(ev.observe(130, 23, 50)) == [("raised", "temperature", "high", "warning")]


def test_low_temperature_and_humidity_bands() -> None:
    ev = evaluator(DEFAULT.with_overrides({"min_duration_s": 0}))
    assert summary(ev.observe(0, 19.5, 33)) == [
        ("raised", "temperature", "low", "warning"), ("raised", "humidity", "low", "warning")]
    assert summary(ev.observe(10, 20.4, 36.9)) == []  # inside, but not by the hysteresis yet
    assert summary(ev.observe(20, 20.5, 37)) == [
        ("cleared", "temperature", "low", "warning"), ("cleared", "humidity", "low", "warning")]


def test_clear_needs_hysteresis_and_reports_duration_and_clear_point() -> None:
    ev = evaluator(DEFAULT.with_overrides({"min_duration_s": 0}))
    [raised] = ev.observe(100, 23, 50)
    assert ev.observe(200, 21.6, 50) == []
    [cleared] = ev.observe(300, 21.5, 50)
    assert (cleared.kind, cleared.alarm_id) == ("cleared", raised.alarm_id)
    assert (cleared.duration_s, cleared.limit) == (200, 21.5)
    assert cleared.event_fields()["duration_s"] == 200


def test_escalation_keeps_the_alarm_id_and_never_clears_in_between() -> None:
    ev = evaluator()
    out = feed(ev, [(0, 23, 50, "ok"), (60, 23, 50, "ok"), (70, 26, 50, "ok"), (100, 26, 50, "ok"),
                    (130, 25.5, 50, "ok"), (140, 24.6, 50, "ok"), (150, 24.5, 50, "ok"), (160, 21.5, 50, "ok")])
    kinds = [(x.kind, x.severity, x.previous_severity) for x in out if x.quantity == "temperature"]
    assert kinds == [("raised", "warning", None), ("severity_changed", "critical", "warning"),
                     ("severity_changed", "warning", "critical"), ("cleared", "warning", None)]
    assert len({x.alarm_id for x in out if x.quantity == "temperature"}) == 1
    escalated = next(x for x in out if x.kind == "severity_changed")
    assert (escalated.at, escalated.limit, escalated.event_kind) == (130, 25.0, "env.alarm.severity_changed")


def test_straight_to_critical_raises_critical_once() -> None:
    ev = evaluator()
    out = feed(ev, [(0, 27, 50, "ok"), (30, 27, 50, "ok"), (60, 27, 50, "ok")])
    assert summary(out) == [("raised", "temperature", "high", "critical")]


def test_rate_of_change_air_conditioning_failure() -> None:
    ev = evaluator(DEFAULT.with_overrides({"min_duration_s": 0, "temperature_critical_high_c": 30}))
    rows = [(t, 20.5 + 0.005 * t, 50, "ok") for t in range(0, 601, 60)]  # +3 °C in 10 min
    out = [x for x in feed(ev, rows) if x.quantity == "rate"]
    assert summary(out)[0] == ("raised", "rate", "rising_fast", "critical")
    assert out[0].at == 420 and out[0].value == pytest.approx(2.1)
    # temperature stops rising: once the window slides past the rise, the alarm clears
    later = feed(ev, [(t, 23.5, 50, "ok") for t in range(660, 1300, 60)])
    assert [(x.kind, x.alarm_id) for x in later if x.quantity == "rate"] == [("cleared", out[0].alarm_id)]


def test_rate_falling_is_a_warning() -> None:
    ev = evaluator(DEFAULT.with_overrides({"min_duration_s": 0}))
    out = feed(ev, [(0, 21.5, 50, "ok"), (300, 19.5, 50, "ok")])
    assert ("raised", "rate", "falling_fast", "warning") in summary(out)


def test_fault_alarm_after_min_duration_and_clear_on_good_reading() -> None:
    ev = evaluator()
    assert feed(ev, [(0, 21, 50, "ok"), (10, None, None, "fault"), (40, None, None, "fault")]) == []
    [fault] = ev.observe(70, None, None, "fault")
    assert (fault.quantity, fault.condition, fault.since) == ("probe", "fault", 10)
    assert ev.tick(1000) == []  # a reported fault is not also "stale"
    [cleared] = ev.observe(1010, 21, 50)
    assert (cleared.kind, cleared.condition, cleared.alarm_id) == ("cleared", "fault", fault.alarm_id)


def test_stale_when_silent_and_cleared_by_a_reading() -> None:
    ev = evaluator()
    ev.observe(0, 21, 50)
    assert ev.tick(299) == []
    [stale] = ev.tick(300)
    assert (stale.condition, stale.since, stale.value) == ("stale", 0, 300)
    assert ev.tick(400) == []
    assert summary(ev.observe(500, 21, 50)) == [("cleared", "probe", "stale", "warning")]


def test_stale_from_start_when_no_reading_ever_came() -> None:
    ev = evaluator(start=1000)
    assert summary(ev.tick(1300)) == [("raised", "probe", "stale", "warning")]


def test_value_alarm_stays_while_the_probe_fails() -> None:
    ev = evaluator(DEFAULT.with_overrides({"min_duration_s": 0}))
    ev.observe(0, 24, 50)
    out = feed(ev, [(t, None, None, "fault") for t in range(10, 200, 10)])
    assert all(x.quantity == "probe" for x in out)
    assert [a[2] for a in ev.active()] == ["high", "fault"]


def test_long_gap_restarts_min_duration() -> None:
    ev = evaluator()
    ev.observe(0, 23, 50)
    assert ev.observe(1000, 23, 50) == []  # 1000 s beyond the limit, but nobody saw the 1000 s in between
    assert not [x for x in ev.observe(1000.5, 23, 50) if x.quantity == "temperature"]
    assert summary([x for x in ev.observe(1060, 23, 50) if x.quantity == "temperature"]) == [
        ("raised", "temperature", "high", "warning")]


def test_nan_and_bad_status() -> None:
    ev = evaluator(DEFAULT.with_overrides({"min_duration_s": 0}))
    assert ev.observe(0, float("nan"), None) == []
    with pytest.raises(InvalidValueError, match="'broken'"):
        ev.observe(1, 21, 50, "broken")  # type: ignore[arg-type]


# -- Hypothesis properties ---------------------------------------------------------------
statuses = st.sampled_from(["ok", "ok", "ok", "ok", "fault", "stale"])
observations = st.lists(
    st.tuples(st.floats(0, 400), st.floats(10, 35), st.floats(20, 80), statuses), min_size=1, max_size=80
)
configs = st.builds(
    lambda md, hyst: DEFAULT.with_overrides({"min_duration_s": md, "temperature_hysteresis_c": hyst}),
    st.sampled_from([0.0, 30.0, 60.0, 300.0]), st.sampled_from([0.0, 0.2, 0.5, 0.9]),
)


def run(config: ThresholdConfig, steps: list[tuple[float, float, float, str]]) -> list[AlarmTransition]:
    ev = evaluator(config)
    out: list[AlarmTransition] = []
    t = 0.0
    for dt, temperature, humidity, status in steps:
        t += dt
        out += ev.observe(t, temperature, humidity, status)  # type: ignore[arg-type]
        if status == "stale":
            out += ev.tick(t + dt / 2)
    return out


@settings(max_examples=300, deadline=None)
@given(configs, observations)
def test_property_lifecycle_per_alarm_id(config: ThresholdConfig, steps: list[tuple[float, float, float, str]]) -> None:
    out = run(config, steps)
    state: dict[str, str] = {}
    active_keys: dict[tuple[str, str], str] = {}
    for x in out:
        key = (x.quantity, x.condition)
        if x.kind == "raised":
            assert x.alarm_id not in state, "an id is raised once"
            assert key not in active_keys, f"duplicate active alarm for {key}"
            state[x.alarm_id], active_keys[key] = "active", x.alarm_id
        elif x.kind == "severity_changed":
            assert state.get(x.alarm_id) == "active" and x.severity != x.previous_severity
        else:
            assert state.get(x.alarm_id) == "active", "clear without a prior raise, or cleared twice"
            state[x.alarm_id] = "cleared"
            del active_keys[key]


@settings(max_examples=300, deadline=None)
@given(configs, observations)
def test_property_min_duration_respected(config: ThresholdConfig, steps: list[tuple[float, float, float, str]]) -> None:
    out = run(config, steps)
    for x in out:
        if x.kind == "raised" and x.quantity in ("temperature", "humidity", "rate"):
            assert x.at - x.since >= config.min_duration_s
        if x.kind == "severity_changed" and x.severity == "critical":
            assert x.at >= x.since + config.min_duration_s


@settings(max_examples=200, deadline=None)
@given(configs, st.lists(st.tuples(st.floats(0, 400), st.floats(-40, 80), st.floats(0, 100),
                                   st.sampled_from(["fault", "stale"])), min_size=1, max_size=60))
def test_property_failed_readings_never_make_value_alarms(
    config: ThresholdConfig, steps: list[tuple[float, float, float, str]]
) -> None:
    out = run(config, [(0.0, 21.0, 50.0, "ok"), *steps])
    assert all(x.quantity == "probe" for x in out)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([0.2, 0.5, 0.9]),
    st.lists(st.tuples(st.floats(1, 120), st.floats(0.001, 1.0)), min_size=1, max_size=60),
)
def test_property_no_flapping_inside_the_hysteresis_band(
    hyst: float, steps: list[tuple[float, float]]
) -> None:
    config = DEFAULT.with_overrides({"temperature_hysteresis_c": hyst, "min_duration_s": 0, "rate_alarm": False})
    ev = evaluator(config)
    [raised] = ev.observe(0, 23.0, 50)
    t, out = 0.0, []
    high = config.temperature_high_c
    for dt, fraction in steps:
        t += dt
        # strictly inside (high - hysteresis, high + hysteresis]: above the clear point, below critical
        value = high - hyst + fraction * 2 * hyst
        out += ev.observe(t, value, 50)
    assert [x for x in out if x.quantity == "temperature"] == []
    assert ev.active()[0][0] == raised.alarm_id


# -- the alarm book ----------------------------------------------------------------------
def raised_book() -> tuple[AlarmBook, AlarmTransition]:
    ev = evaluator(DEFAULT.with_overrides({"min_duration_s": 0}))
    [raised] = ev.observe(100, 23, 50)
    book = AlarmBook()
    book.apply(raised)
    return book, raised


def test_acknowledge_records_who_when_note_and_does_not_clear() -> None:
    book, raised = raised_book()
    fields = book.acknowledge(raised.alarm_id, " Budi ", "AC unit 2 restarted", at=160.0)
    assert fields == {"alarm_id": raised.alarm_id, "probe": "rack1", "quantity": "temperature", "condition": "high",
                      "severity": "warning", "by": "Budi", "note": "AC unit 2 restarted", "at": 160.0}
    [alarm] = book.active()
    assert alarm.acknowledged and alarm.acknowledgements[0].by == "Budi"


def test_acknowledge_refuses_unknown_cleared_and_ambiguous_ids() -> None:
    book, raised = raised_book()
    with pytest.raises(UnknownAlarmError, match="no active alarm 'nope'; active: alarm-1"):
        book.acknowledge("nope", "Budi", "", at=1.0)
    with pytest.raises(InvalidValueError, match="--by"):
        book.acknowledge(raised.alarm_id, "  ", "", at=1.0)
    assert book.get("alar").alarm_id == "alarm-1"  # unique prefix, like git
    book.apply_event("env.alarm.raised", {**raised.event_fields(), "alarm_id": "alarm-2", "condition": "low"})
    with pytest.raises(UnknownAlarmError, match="matches 2 active alarms"):
        book.get("alarm")
    book.apply_event("env.alarm.cleared", {"alarm_id": "alarm-1", "at": 200.0})
    with pytest.raises(UnknownAlarmError, match="already cleared") as info:
        book.acknowledge("alarm-1", "Budi", "", at=1.0)
    assert isinstance(info.value, DcgateError) and isinstance(info.value, KeyError)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[StoreWriter]:
    w = StoreWriter(tmp_path / "dcgate.db")
    w.start()
    yield w
    w.stop()


def test_rebuild_from_stored_events_survives_a_restart(writer: StoreWriter, tmp_path: Path) -> None:
    config = DEFAULT.with_overrides({"min_duration_s": 0})
    ev = AlarmEvaluator("rack1", config, start=0)
    book = AlarmBook()
    transitions = ev.observe(0, 26, 30) + ev.observe(10, 26, 40)  # temperature critical; humidity raised, cleared
    for x in transitions:
        book.apply(x)
        writer.append_and_wait(x.event_kind, "monitor:rack1", x.event_fields())
    temp_alarm = next(x for x in transitions if x.quantity == "temperature")
    writer.append_and_wait(ACK_EVENT, "cli:budi", book.acknowledge(temp_alarm.alarm_id[:8], "Budi", "on it", 20.0))
    writer.stop()

    db = open_for_reading(tmp_path / "dcgate.db")
    try:
        events = sorted([*iter_events(db, kind="env.alarm.*"), *iter_events(db, kind=ACK_EVENT)], key=lambda e: e.seq)
    finally:
        db.close()
    rebuilt = rebuild_alarm_book(events)
    assert rebuilt.active() == book.active()
    [alarm] = rebuilt.active()
    assert (alarm.alarm_id, alarm.severity) == (temp_alarm.alarm_id, "critical")
    assert alarm.acknowledgements[0].note == "on it"

    # a fresh evaluator adopts it: still hot means no duplicate raise, cooling clears the old id
    restarted = AlarmEvaluator("rack1", config, start=30)
    restarted.restore(rebuilt.active("rack1"))
    assert [x for x in restarted.observe(30, 26, 50) if x.quantity == "temperature"] == []
    [cleared] = [x for x in restarted.observe(40, 21, 50) if x.quantity == "temperature"]
    assert (cleared.kind, cleared.alarm_id, cleared.duration_s) == ("cleared", temp_alarm.alarm_id, 40)
