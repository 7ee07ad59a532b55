"""Room and power monitoring through a real gateway process: alarms, UPS via a real upsd, Modbus on a pty."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.sim.modbus_device import ModbusDeviceEmulator, UnitState
from tests.support.eventstore import committed_events
from tests.support.gateway_proc import run_cli
from tests.support.nut import NutServer
from tests.support.waiting import wait_until

# raise at once, so the test need not wait a minute per alarm
QUICK = {"min_duration_s": 0, "rate_alarm": False}


def kinds(gw, prefix: str) -> list[str]:
    return [e.kind for e in committed_events(gw.config.database_path) if e.kind.startswith(prefix)]


def set_probe(gw, **values: str) -> None:
    gw.control("sim.set", {"device": "probe", "name": "rack1", "values": values})


def test_a_hot_room_raises_escalates_is_acknowledged_and_clears(make_config, gateway_factory):
    config = make_config(thresholds=QUICK)
    gw = gateway_factory(config)
    set_probe(gw, temperature="23.0")
    raised = wait_until(lambda: committed_events(gw.config.database_path, kind="env.alarm.raised"), 10,
                        message="env.alarm.raised")[0].fields
    assert (raised["probe"], raised["quantity"], raised["condition"], raised["severity"]) == (
        "rack1", "temperature", "high", "warning")
    assert raised["value"] == 23.0 and raised["limit"] == 22.0

    set_probe(gw, temperature="26.0")  # beyond the critical band (25 °C): same alarm, more severe
    changed = wait_until(lambda: committed_events(gw.config.database_path, kind="env.alarm.severity_changed"), 10,
                         message="the escalation")[0].fields
    assert changed["alarm_id"] == raised["alarm_id"] and changed["severity"] == "critical"

    listed = run_cli("alarm", "list", "--json", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    alarms = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(a["alarm_id"], a["severity"], a["acknowledged"]) for a in alarms] == [
        (raised["alarm_id"], "critical", False)]

    ack = run_cli("alarm", "ack", raised["alarm_id"][:8], "--by", "Budi", "--note", "AC unit 2 restarted",
                  "--config", str(config))
    assert ack.returncode == 0, ack.stderr
    acked = committed_events(gw.config.database_path, kind="alarm.acknowledged")[0].fields
    assert (acked["alarm_id"], acked["by"], acked["note"]) == (raised["alarm_id"], "Budi", "AC unit 2 restarted")
    assert "acknowledged by Budi" in run_cli("alarm", "list", "--config", str(config)).stdout

    set_probe(gw, temperature="21.0")  # back inside by more than the hysteresis
    cleared = wait_until(lambda: committed_events(gw.config.database_path, kind="env.alarm.cleared"), 10,
                         message="the clear")[0].fields
    assert cleared["alarm_id"] == raised["alarm_id"] and cleared["duration_s"] >= 0
    assert run_cli("alarm", "list", "--config", str(config)).stdout.strip() == "no active alarms"
    unknown = run_cli("alarm", "ack", raised["alarm_id"], "--by", "Budi", "--config", str(config))
    assert unknown.returncode != 0 and "already cleared" in unknown.stderr


def test_an_alarm_survives_a_restart_without_being_raised_twice(make_config, gateway_factory):
    config = make_config(thresholds=QUICK)
    gw = gateway_factory(config)
    set_probe(gw, humidity="80")
    wait_until(lambda: committed_events(gw.config.database_path, kind="env.alarm.raised"), 10, message="the raise")
    assert gw.terminate() == 0

    again = gateway_factory(config)  # starts at the configured 50 % again: the old alarm clears, by its id
    cleared = wait_until(lambda: committed_events(again.config.database_path, kind="env.alarm.cleared"), 10,
                         message="the old alarm to clear")
    raised = committed_events(again.config.database_path, kind="env.alarm.raised")
    assert len(raised) == 1 and cleared[0].fields["alarm_id"] == raised[0].fields["alarm_id"]


def test_a_failed_probe_raises_a_fault_alarm_and_no_value_alarm(make_config, gateway_factory):
    gw = gateway_factory(make_config(thresholds=QUICK))
    set_probe(gw, fault="disconnected")
    raised = wait_until(lambda: committed_events(gw.config.database_path, kind="env.alarm.raised"), 10,
                        message="the fault alarm")
    assert [(e.fields["quantity"], e.fields["condition"]) for e in raised] == [("probe", "fault")]
    assert gw.status()["alarms"][0]["condition"] == "fault"


OUTAGE = """\
ups.status: OL
battery.charge: 100
battery.runtime: 1800
ups.load: 35
input.voltage: 230
TIMER 3
ups.status: OB DISCHRG
battery.charge: 70
ups.load: 45
input.voltage: 0
TIMER 2
ups.status: OL CHRG
battery.charge: 72
input.voltage: 231
TIMER 600
"""


@pytest.fixture
def nut(tmp_path: Path) -> Iterator[NutServer]:
    server = NutServer(tmp_path / "nut", OUTAGE).start()
    yield server
    server.stop()


def test_a_mains_outage_through_a_real_upsd_is_logged_and_published(make_config, gateway_factory, nut,
                                                                   subscriber, subscriber_factory):
    discovery = subscriber_factory("homeassistant/#", client_id="ha")
    config = make_config(ups={"driver": "nut", "host": nut.host, "port": nut.port, "name": "testups",
                              "interval_s": 0.5})
    gw = gateway_factory(config)
    restored = wait_until(lambda: committed_events(gw.config.database_path, kind="power.mains_restored"), 30,
                          message="power.mains_restored")[0].fields
    assert kinds(gw, "power.mains_") == ["power.mains_lost", "power.mains_restored"]
    assert 1.0 <= restored["duration_s"] <= 5.0  # one 2 s TIMER, as dummy-ups and the 0.5 s poll see it
    assert restored["lowest_battery_pct"] == 70

    outages = run_cli("power", "outages", "--json", "--config", str(config))
    assert outages.returncode == 0, outages.stderr
    [outage] = [json.loads(line) for line in outages.stdout.splitlines()]
    assert outage["open"] is False and outage["lowest_battery_pct"] == 70 and outage["highest_load_pct"] == 45

    ups = gw.status()["devices"]["ups"]
    assert ups["reachable"] is True and ups["on_battery"] is False
    state = wait_until(lambda: subscriber.on_topic("dcgate/test-site/test-gw/power/ups"), 15,
                       message="the retained UPS state")
    assert json.loads(state[-1].payload)["ups"] == "testups"
    battery = json.loads(wait_until(lambda: discovery.on_topic(
        "homeassistant/sensor/dcgate_test_site_test_gw/ups_battery/config"), 10, message="UPS discovery")[-1].payload)
    assert battery["state_topic"] == "dcgate/test-site/test-gw/power/ups" and battery["device_class"] == "battery"
    on_battery = discovery.on_topic("homeassistant/binary_sensor/dcgate_test_site_test_gw/ups_on_battery/config")
    assert json.loads(on_battery[-1].payload)["value_template"] == "{{ 'ON' if value_json.on_battery else 'OFF' }}"
    upstream = [e["kind"] for e in subscriber.events() if e["kind"].startswith("power.mains_")]
    wait_until(lambda: [e["kind"] for e in subscriber.events() if e["kind"].startswith("power.mains_")] == [
        "power.mains_lost", "power.mains_restored"], 10, message=f"the outage upstream (so far {upstream})")


def test_modbus_rtu_probes_on_a_pty_bus_are_read_by_the_gateway(pty, make_config, gateway_factory):
    with ModbusDeviceEmulator({1: UnitState(23.4, 55.5), 2: UnitState(20.1, 40.0)}, port=str(pty.a)):
        probes = [{"name": f"rack{u}", "driver": "modbus-rtu", "port": str(pty.b), "unit": u, "interval_s": 1,
                   "timeout_s": 0.3} for u in (1, 2)]
        gw = gateway_factory(make_config(probes=probes))

        def readings() -> dict[str, tuple[float, float]]:
            return {e.fields["probe"]: (e.fields["temperature_c"], e.fields["humidity_pct"])
                    for e in committed_events(gw.config.database_path, kind="env.reading")}

        assert wait_until(lambda: len(readings()) == 2 and readings(), 15, message="both probes read") == {
            "rack1": (23.4, 55.5), "rack2": (20.1, 40.0)}
        assert gw.terminate() == 0


def test_a_dht_probe_without_its_library_is_reported_failed_not_invented(make_config, gateway_factory):
    gw = gateway_factory(make_config(probes=[{"name": "door", "driver": "dht22", "pin": 4, "interval_s": 10}]))
    probe = wait_until(lambda: (p := gw.status()["devices"]["probes"]["door"])["status"] == "fault" and p, 10,
                       message="the DHT probe reported failed")
    assert probe["temperature_c"] is None and "dcgate[pi]" in probe["error"]
    failed = committed_events(gw.config.database_path, kind="env.probe_failed")
    assert failed and failed[0].fields["probe"] == "door"


def test_read_probe_goes_through_the_running_gateway_or_reads_directly(make_config, gateway_factory):
    config = make_config()
    gw = gateway_factory(config)
    set_probe(gw, temperature="24.5")
    through = run_cli("read", "probe", "rack1", "--config", str(config))
    assert through.returncode == 0, through.stderr
    assert json.loads(through.stdout) == {"probe": "rack1", "temperature_c": 24.5, "humidity_pct": 50.0,
                                          "via": "gateway"}
    failing = run_cli("read", "probe", "nope", "--config", str(config))
    assert failing.returncode != 0 and "no probe 'nope'" in failing.stderr
    assert gw.terminate() == 0
    direct = run_cli("read", "probe", "rack1", "--config", str(config))
    assert json.loads(direct.stdout)["via"] == "direct" and json.loads(direct.stdout)["temperature_c"] == 21.0


def test_doctor_names_each_device_and_a_hint_for_the_failing_one(make_config, gateway_factory):
    probes = [{"name": "rack1", "driver": "sim", "interval_s": 60},
              {"name": "door", "driver": "dht22", "pin": 4, "interval_s": 10}]
    config = make_config(probes=probes)
    offline = run_cli("doctor", "--config", str(config))
    assert offline.returncode == 1
    assert "OK   probe rack1" in offline.stdout and "OK   mqtt 127.0.0.1" in offline.stdout
    assert "FAIL probe door: DHT22 on GPIO4" in offline.stdout and "dcgate[pi]" in offline.stdout

    gw = gateway_factory(config)
    wait_until(lambda: gw.status()["devices"]["probes"]["door"]["status"] == "fault", 10, message="door fault")
    online = run_cli("doctor", "--json", "--config", str(config))
    checks = {c["device"]: c for c in map(json.loads, online.stdout.splitlines())}
    assert online.returncode == 1
    assert checks["probe rack1"]["ok"] and checks["probe rack1"]["value"]["temperature_c"] == 21.0
    assert not checks["probe door"]["ok"] and "dcgate[pi]" in checks["probe door"]["detail"]
    assert any(device.startswith("mqtt ") and c["ok"] for device, c in checks.items())


def test_modbus_scan_finds_the_units_on_a_bus(pty):
    with ModbusDeviceEmulator({3: UnitState(22.0, 50.0), 7: UnitState(21.0, 45.0)}, port=str(pty.a)):
        found = run_cli("modbus", "scan", "--port", str(pty.b), "--units", "1-8", "--timeout", "0.1")
        assert found.returncode == 0, found.stderr
        lines = [line for line in found.stdout.splitlines() if line.startswith("unit")]
        assert [line.split()[1] for line in lines] == ["3:", "7:"], found.stdout
        assert all('profile = "xy-md02"' in line for line in lines)
    none = run_cli("modbus", "scan", "--port", str(pty.b), "--units", "1-2", "--timeout", "0.05")
    assert none.returncode == 1 and "A and B swapped" in none.stdout


def test_readings_history_raw_and_per_minute_as_json_and_csv(make_config, gateway_factory):
    config = make_config()
    gw = gateway_factory(config)
    for temperature in ("21.0", "23.0", "25.0"):
        before = len(committed_events(gw.config.database_path, kind="env.reading"))
        set_probe(gw, temperature=temperature)  # each set is read at once; wait for it before the next
        wait_until(lambda: len(committed_events(gw.config.database_path, kind="env.reading")) > before, 10,  # noqa: B023
                   message=f"the {temperature} °C reading")
    set_probe(gw, fault="timeout")  # a failed read: no reading, and no value in the history
    wait_until(lambda: committed_events(gw.config.database_path, kind="env.probe_failed"), 10, message="the fault")

    raw = run_cli("readings", "rack1", "--since", "10m", "--config", str(config))
    assert raw.returncode == 0, raw.stderr
    temperatures = [json.loads(line)["temperature_c"] for line in raw.stdout.splitlines()]
    assert temperatures == [21.0, 21.0, 23.0, 25.0]  # the start-up reading, then the three set values

    minute = run_cli("readings", "rack1", "--every", "hour", "--csv", "--config", str(config))
    header, *rows = minute.stdout.splitlines()
    assert header.startswith("period,count,temperature_min_c,temperature_mean_c,temperature_max_c")
    assert len(rows) >= 1 and rows[-1].split(",")[2:5] != ["", "", ""]
    total = sum(int(r.split(",")[1]) for r in rows)
    assert total == 4
    unknown = run_cli("readings", "nope", "--config", str(config))
    assert unknown.returncode != 0 and "configured: rack1" in unknown.stderr


def test_ats_and_fuel_over_modbus_switch_start_the_generator_and_are_published(pty, make_config,
                                                                                gateway_factory, subscriber,
                                                                                subscriber_factory):
    discovery = subscriber_factory("homeassistant/#", client_id="ha")
    # the emulated unit 5 stands in for an ATS controller and a tank sensor: input register 1 holds
    # the fuel level (x10), input register 2 the ATS position code (x10)
    with ModbusDeviceEmulator({5: UnitState(65.0, 1.0)}, port=str(pty.a)) as device:
        link = {"transport": "rtu", "port": str(pty.b), "unit": 5, "timeout_s": 0.3}
        power = {
            "ats": {"source": "modbus", "link": link, "interval_s": 0.5,
                    "register": {"function": 4, "register": 2, "data_type": "int16", "scale": 10},
                    "positions": {"0": "off", "1": "mains", "2": "generator"}},
            "generator": {"interval_s": 0.5, "fuel": {
                "link": link, "interval_s": 1,
                "register": {"function": 4, "register": 1, "data_type": "int16", "scale": 10}}},
        }
        gw = gateway_factory(make_config(power=power))
        # one poll sets the position, then what it means for the generator: wait for both
        wait_until(lambda: (s := gw.status()["devices"])["ats"]["position"] == "mains"
                   and s["generator"]["running"] is False, 10, message="the ATS on mains, generator stopped")

        device.set(5, humidity_pct=2.0)  # the ATS moves to the generator
        switched = wait_until(lambda: committed_events(gw.config.database_path, kind="power.ats_switched"),
                              10, message="power.ats_switched")[0].fields
        assert (switched["from"], switched["to"]) == ("mains", "generator")
        started = wait_until(lambda: committed_events(gw.config.database_path, kind="power.generator_started"),
                             10, message="power.generator_started")[0].fields
        assert started["fuel_pct"] == 65.0

        device.set(5, temperature_c=25.0)  # the tank runs low
        wait_until(lambda: committed_events(gw.config.database_path, kind="power.refuel_needed"), 10,
                   message="power.refuel_needed")
        generator = wait_until(lambda: subscriber.on_topic("dcgate/test-site/test-gw/power/generator"), 15,
                               message="the retained generator state")
        assert json.loads(generator[-1].payload)["running"] is True
        node = "homeassistant/{}/dcgate_test_site_test_gw/{}/config"
        ats = json.loads(wait_until(lambda: discovery.on_topic(node.format("sensor", "ats_source")), 10,
                                    message="ATS discovery")[-1].payload)
        assert ats["state_topic"] == "dcgate/test-site/test-gw/power/ats" and "generator" in ats["options"]
        fuel = json.loads(discovery.on_topic(node.format("sensor", "generator_fuel"))[-1].payload)
        assert fuel["unit_of_measurement"] == "%" and fuel["value_template"] == "{{ value_json.fuel_pct }}"
        assert discovery.on_topic(node.format("binary_sensor", "generator_running"))
        assert gw.terminate() == 0
