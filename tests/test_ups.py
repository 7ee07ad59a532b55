"""The UPS through Network UPS Tools: a real `upsd` serving a real `dummy-ups` that replays `.seq` scripts.

Timing: dummy-ups looks at its script once per `pollinterval` (1 s here) and starts each `TIMER n`
when it processes that line, so every TIMER lasts n to n + 1 s. An outage spanning k TIMERs in the
script therefore lasts between its nominal length and k seconds more on the device, and the monitor
(polling every MONITOR_INTERVAL_S) sees each end up to one interval late.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from drivers.errors import SensorError
from drivers.nut import NutAccessDenied, NutClient, NutConnectionError, NutUnknownUps
from gateway.config.ups import UpsConfig
from gateway.power.outages import build_outages
from gateway.power.ups import UpsMonitor, parse_status
from gateway.store.database import open_for_reading
from gateway.store.events import utc_timestamp
from gateway.store.writer import StoreWriter
from tests.support.eventstore import committed_events
from tests.support.nut import NutServer
from tests.support.ports import free_port
from tests.support.waiting import wait_until

MONITOR_INTERVAL_S = 0.2
DRIVER_POLL_S = 1.0

STEADY = "ups.status: OL\nbattery.charge: 100\nups.load: 30\ninput.voltage: 230\nTIMER 600\n"

# OL -> OB DISCHRG -> OB LB -> OL CHRG; on battery for 3 TIMERs = 6 s nominal
OUTAGE_SCRIPT = """\
ups.status: OL
battery.charge: 100
battery.runtime: 1800
ups.load: 35
input.voltage: 230
TIMER 4
ups.status: OB DISCHRG
battery.charge: 90
ups.load: 40
input.voltage: 0
TIMER 2
battery.charge: 60
ups.load: 55
TIMER 2
ups.status: OB DISCHRG LB
battery.charge: 20
battery.runtime: 120
ups.load: 50
TIMER 2
ups.status: OL CHRG
battery.charge: 25
ups.load: 36
input.voltage: 229
TIMER 600
"""
OUTAGE_NOMINAL_S, OUTAGE_TIMERS = 6.0, 3

FLAGS_SCRIPT = """\
ups.status: OL
battery.charge: 100
ups.load: 40
TIMER 3
ups.status: OL RB
TIMER 2
ups.status: OL RB OVER
ups.load: 112
TIMER 2
ups.status: OL RB
ups.load: 60
TIMER 2
ups.status: OL
TIMER 600
"""


@pytest.fixture
def nut_factory(tmp_path: Path) -> Iterator:
    started: list[NutServer] = []

    def start(script: str = STEADY, **kwargs) -> NutServer:
        server = NutServer(tmp_path / f"nut{len(started)}", script, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreWriter]:
    writer = StoreWriter(tmp_path / "dcgate.db")
    writer.start()
    yield writer
    writer.stop()


def _kinds(path: Path) -> list[str]:
    return [e.kind for e in committed_events(path) if e.kind.startswith("power.")]


def _one(path: Path, kind: str) -> dict:
    events = committed_events(path, kind=kind)
    assert len(events) == 1, f"{kind}: {events}"
    return events[0].fields


# -- the client ----------------------------------------------------------------------------
def test_client_lists_and_gets_variables(nut_factory):
    nut = nut_factory()
    with NutClient(nut.host, nut.port, timeout_s=2) as client:
        variables = client.list_vars(nut.ups_name)
        assert variables["ups.status"] == "OL"
        assert variables["battery.charge"] == "100"
        assert variables["driver.name"] == "dummy-ups"
        assert client.get_var(nut.ups_name, "input.voltage") == "230"
        # the description has spaces: it comes back quoted and must be unquoted
        assert client.list_ups() == {nut.ups_name: "dcgate test UPS"}


def test_unknown_ups_names_it_and_says_how_to_list(nut_factory):
    nut = nut_factory()
    with NutClient(nut.host, nut.port, timeout_s=2) as client, pytest.raises(NutUnknownUps) as caught:
        client.list_vars("no-such-ups")
    message = str(caught.value)
    assert "'no-such-ups'" in message and nut.server in message and f"upsc -l {nut.server}" in message
    assert isinstance(caught.value, SensorError) and caught.value.error_code == "UNKNOWN-UPS"


def test_wrong_password_is_access_denied(nut_factory):
    nut = nut_factory(users={"dcgate": "right-one"})
    wrong = NutClient(nut.host, nut.port, username="dcgate", password="wrong", login_ups=nut.ups_name, timeout_s=2)
    with wrong, pytest.raises(NutAccessDenied) as caught:
        wrong.list_vars(nut.ups_name)
    assert "upsd.users" in str(caught.value) and nut.server in str(caught.value)
    right = NutClient(nut.host, nut.port, username="dcgate", password="right-one", login_ups=nut.ups_name,
                      timeout_s=2)
    with right:
        assert right.list_vars(nut.ups_name)["ups.status"] == "OL"
        assert right.num_logins(nut.ups_name) == 1  # upsd checked the password and counted our LOGIN


def test_upsd_down_gives_a_hint_and_the_client_reconnects(nut_factory):
    port = free_port()
    with NutClient("127.0.0.1", port, timeout_s=2) as client, pytest.raises(NutConnectionError) as caught:
        client.list_vars("ups")
    assert "upsd not running?" in str(caught.value) and f"127.0.0.1:{port}" in str(caught.value)

    nut = nut_factory()
    with NutClient(nut.host, nut.port, timeout_s=2) as client:
        assert client.get_var(nut.ups_name, "ups.status") == "OL"
        nut.stop_upsd()
        with pytest.raises(NutConnectionError) as caught:
            client.get_var(nut.ups_name, "ups.status")
        assert nut.server in str(caught.value)
        nut.start_upsd()
        assert client.get_var(nut.ups_name, "ups.status") == "OL"  # same client, new connection


def test_status_flags_are_parsed():
    assert parse_status("OB DISCHRG LB") == {"OB", "DISCHRG", "LB"}
    assert parse_status("  ol  chrg ") == {"OL", "CHRG"}
    assert parse_status("") == frozenset()


# -- the monitor ---------------------------------------------------------------------------
def test_outage_script_gives_lost_low_restored_with_its_timing(nut_factory, store):
    nut = nut_factory(OUTAGE_SCRIPT)
    client = NutClient(nut.host, nut.port, timeout_s=2)
    monitor = UpsMonitor(client, nut.ups_name, MONITOR_INTERVAL_S, store.append)
    monitor.start()
    try:
        wait_until(lambda: monitor.state()["status"] == "OL", 5, message="the first reading on mains")
        wait_until(lambda: monitor.state()["on_battery"], 15, message="the UPS on battery")
        assert monitor.state()["outage"]["started"]
        wait_until(lambda: committed_events(store.path, kind="power.mains_restored"), 20,
                   message="the mains back")
        state = monitor.state()
    finally:
        monitor.stop()
    assert state["status"] == "OL CHRG" and state["outage"] is None

    assert _kinds(store.path) == [
        "power.ups_status", "power.mains_lost", "power.battery_low",
        "power.mains_restored", "power.battery_low_cleared",
    ]
    lost = _one(store.path, "power.mains_lost")
    assert lost["ups"] == nut.ups_name and lost["status"] == "OB DISCHRG"
    assert lost["battery_charge_pct"] == 90 and lost["load_pct"] == 40 and lost["input_voltage"] == 0
    assert lost["runtime_s"] == 1800
    # seen on mains one poll before: the start is known to within the monitor's interval
    assert 0 < lost["uncertain_s"] <= MONITOR_INTERVAL_S * 3
    low = _one(store.path, "power.battery_low")
    assert low["battery_charge_pct"] == 20 and low["runtime_s"] == 120
    restored = _one(store.path, "power.mains_restored")
    print(f"outage measured {restored['duration_s']} s, script nominal {OUTAGE_NOMINAL_S} s")
    # each of the 3 TIMERs may run up to one driver poll long; each end is seen up to one monitor poll late
    assert OUTAGE_NOMINAL_S - MONITOR_INTERVAL_S <= restored["duration_s"] \
        <= OUTAGE_NOMINAL_S + OUTAGE_TIMERS * DRIVER_POLL_S + MONITOR_INTERVAL_S, restored
    assert restored["lowest_battery_pct"] == 20 and restored["highest_load_pct"] == 55
    assert restored["battery_charge_pct"] == 25 and restored["status"] == "OL CHRG"
    assert restored["outage_started"] <= committed_events(store.path, kind="power.mains_lost")[0].ts

    # the outage log, from the same stored events
    db = open_for_reading(store.path)
    try:
        log = build_outages(db)
        this_month = build_outages(db, month=utc_timestamp()[:7])
        other_month = build_outages(db, month="2001-01")
    finally:
        db.close()
    assert len(log) == 1 and this_month == log and other_month == []
    outage = log[0]
    assert not outage.open and outage.end_known and outage.ups == nut.ups_name
    assert outage.started == committed_events(store.path, kind="power.mains_lost")[0].ts
    assert outage.ended == committed_events(store.path, kind="power.mains_restored")[0].ts
    assert abs(outage.duration_s - restored["duration_s"]) < 0.5  # commit times vs the monitor's clock
    assert outage.lowest_battery_pct == 20 and outage.highest_load_pct == 55


def test_open_outage_is_in_the_log(nut_factory, store):
    nut = nut_factory(OUTAGE_SCRIPT.split("TIMER 2\nups.status: OL CHRG")[0] + "TIMER 600\n")
    monitor = UpsMonitor(NutClient(nut.host, nut.port, timeout_s=2), nut.ups_name, MONITOR_INTERVAL_S,
                         store.append)
    monitor.start()
    try:
        wait_until(lambda: committed_events(store.path, kind="power.battery_low"), 20, message="battery low")
    finally:
        monitor.stop()
    db = open_for_reading(store.path)
    try:
        (outage,) = build_outages(db)
    finally:
        db.close()
    assert outage.open and outage.ended is None and outage.duration_s is None
    assert outage.lowest_battery_pct == 20 and outage.highest_load_pct == 40  # what the events recorded


def test_unreachable_then_reachable_without_invented_transitions(nut_factory, store):
    nut = nut_factory()
    monitor = UpsMonitor(NutClient(nut.host, nut.port, timeout_s=2), nut.ups_name, MONITOR_INTERVAL_S,
                         store.append)
    monitor.start()
    try:
        wait_until(lambda: monitor.state()["reachable"], 5, message="the first reading")
        nut.stop_upsd()
        wait_until(lambda: committed_events(store.path, kind="power.ups_unreachable"), 10, message="unreachable")
        assert monitor.state()["reachable"] is False and monitor.state()["status"] is None
        nut.start_upsd()
        wait_until(lambda: committed_events(store.path, kind="power.ups_reachable"), 10, message="reachable")
    finally:
        monitor.stop()
    assert _kinds(store.path) == ["power.ups_status", "power.ups_unreachable", "power.ups_reachable"]
    error = _one(store.path, "power.ups_unreachable")["error"]
    assert nut.server in error and "upsd" in error
    assert _one(store.path, "power.ups_reachable")["unreachable_s"] > 0


def test_replace_battery_and_overload(nut_factory, store):
    nut = nut_factory(FLAGS_SCRIPT)
    monitor = UpsMonitor(NutClient(nut.host, nut.port, timeout_s=2), nut.ups_name, MONITOR_INTERVAL_S,
                         store.append)
    monitor.start()
    try:
        wait_until(lambda: committed_events(store.path, kind="power.replace_battery_cleared"), 20,
                   message="the whole flags script")
    finally:
        monitor.stop()
    assert _kinds(store.path) == [
        "power.ups_status", "power.replace_battery", "power.overload",
        "power.overload_cleared", "power.replace_battery_cleared",
    ]
    assert _one(store.path, "power.overload")["load_pct"] == 112


# -- the config ----------------------------------------------------------------------------
def test_ups_config_password_file_rules(tmp_path: Path):
    secret = tmp_path / "ups.pw"
    secret.write_text("s3cret\n")
    os.chmod(secret, 0o644)
    base = {"driver": "nut", "name": "rack-ups", "username": "dcgate", "password_file": str(secret)}
    with pytest.raises(ValidationError, match="readable by other users"):
        UpsConfig.model_validate(base)
    os.chmod(secret, 0o600)
    config = UpsConfig.model_validate(base)
    assert config.read_password() == "s3cret" and config.port == 3493 and config.interval_s == 5
    secret.write_text("  \n")
    with pytest.raises(ValidationError, match="is empty"):
        UpsConfig.model_validate(base)
    with pytest.raises(ValidationError, match="go together"):
        UpsConfig.model_validate({"driver": "nut", "name": "rack-ups", "username": "dcgate"})
    with pytest.raises(ValidationError):
        UpsConfig.model_validate({"driver": "nut", "name": "rack-ups", "port": "3493"})  # strict: no coercion
