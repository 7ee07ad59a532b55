"""Modbus RTU and TCP probes against pymodbus's own server emulating XY-MD02/SHT20 units.

RTU runs over a real serial line: a `socat` pty pair, the emulator on one end, the gateway's
driver on the other. Faults are made by the emulated device itself (silent unit, corrupted CRC,
exception response), so the driver sees exactly the bytes a faulty bus would give it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.climate import ClimateReading
from drivers.errors import SensorReadError
from drivers.modbus import (
    BusRegistry,
    ModbusBus,
    ModbusClimateProbe,
    ModbusCrcError,
    ModbusExceptionError,
    ModbusLinkError,
    ModbusTimeoutError,
    Quantity,
    SerialSettings,
    TcpEndpoint,
    built_in,
    generic,
)
from drivers.modbus.scan import parse_units, scan
from drivers.sim.modbus_device import FLOAT_BIG, FLOAT_LITTLE, INT32_LITTLE, ModbusDeviceEmulator, UnitState
from gateway.config.modbus import ModbusRtuProbeConfig, ModbusTcpProbeConfig, build_modbus_probe, bus_conflicts
from tests.support.gateway_proc import REPO
from tests.support.ports import free_port
from tests.support.socat import PtyPair
from tests.support.waiting import wait_until

TIMEOUT = 0.2  # short, so the fault tests stay fast


@pytest.fixture
def emulator(pty: PtyPair) -> Iterator[ModbusDeviceEmulator]:
    units = {1: UnitState(21.5, 45.2), 2: UnitState(-3.4, 60.0), 3: UnitState(24.9, 38.1, model="sht20", scale=100)}
    with ModbusDeviceEmulator(units, port=str(pty.a)) as device:
        yield device


@pytest.fixture
def registry() -> Iterator[BusRegistry]:
    buses = BusRegistry()
    yield buses
    buses.close_all()


def rtu_bus(registry: BusRegistry, pty: PtyPair) -> ModbusBus:
    return registry.rtu(SerialSettings(str(pty.b), 9600))


def probe(registry: BusRegistry, pty: PtyPair, unit: int, profile: str = "xy-md02",
          **kwargs: Any) -> ModbusClimateProbe:
    kwargs.setdefault("timeout_s", TIMEOUT)
    return ModbusClimateProbe(f"p{unit}", rtu_bus(registry, pty), unit, built_in(profile, kwargs.pop("scale", None)),
                              **kwargs)


# -- reading ------------------------------------------------------------------------------------------

def test_xy_md02_profile_reads_temperature_and_humidity_including_negative(emulator, registry, pty) -> None:
    assert probe(registry, pty, 1).read() == ClimateReading(21.5, 45.2)
    assert probe(registry, pty, 2).read() == ClimateReading(-3.4, 60.0)


def test_sht20_profile_with_scale_100(emulator, registry, pty) -> None:
    assert probe(registry, pty, 3, "sht20", scale=100).read() == ClimateReading(24.9, 38.1)


def test_sht20_answering_x100_read_at_x10_is_a_fault_naming_the_scale_not_a_value(emulator, registry, pty) -> None:
    with pytest.raises(SensorReadError, match=r"249 °C.*scale = 100"):
        probe(registry, pty, 3, "sht20").read()


@pytest.mark.parametrize(("base", "data_type", "scale", "order"), [
    (FLOAT_BIG, "float32", 1.0, "big"),
    (FLOAT_LITTLE, "float32", 1.0, "little"),
    (INT32_LITTLE, "int32", 100.0, "little"),
])
def test_generic_profile_32_bit_values_and_word_order(emulator, registry, pty, base, data_type, scale, order) -> None:
    emulator.set(1, temperature_c=23.25, humidity_pct=41.5)
    profile = generic(Quantity(3, base, data_type, scale, order), Quantity(3, base + 2, data_type, scale, order))
    reading = ModbusClimateProbe("g", rtu_bus(registry, pty), 1, profile, timeout_s=TIMEOUT).read()
    assert reading == ClimateReading(23.25, 41.5)


def test_generic_with_the_wrong_word_order_does_not_give_the_value(emulator, registry, pty) -> None:
    emulator.set(1, temperature_c=23.25, humidity_pct=41.5)
    swapped = [Quantity(3, FLOAT_BIG + offset, "float32", 1.0, "little") for offset in (0, 2)]
    reading = ModbusClimateProbe("g", rtu_bus(registry, pty), 1, generic(*swapped), timeout_s=TIMEOUT).read()
    # 23.25 is 0x41BA 0x0000; with the words swapped it is a denormal next to zero
    assert abs(reading.temperature_c) < 1e-3 and abs(reading.humidity_pct) < 1e-3


def test_live_changes_of_the_emulated_device_are_read(emulator, registry, pty) -> None:
    p1 = probe(registry, pty, 1)
    emulator.set(1, temperature_c=29.7, humidity_pct=70.3)
    assert p1.read() == ClimateReading(29.7, 70.3)


def test_probes_on_one_bus_share_one_link_and_frames_never_interleave(emulator, registry, pty) -> None:
    probes = [probe(registry, pty, unit, "sht20" if unit == 3 else "xy-md02", scale=100 if unit == 3 else None)
              for unit in (1, 2, 3)]
    assert len({id(p.bus) for p in probes}) == 1 and len(registry.buses()) == 1
    expected = {1: ClimateReading(21.5, 45.2), 2: ClimateReading(-3.4, 60.0), 3: ClimateReading(24.9, 38.1)}
    wrong: list[str] = []
    counts = {unit: 0 for unit in expected}
    start = threading.Barrier(len(probes))

    def hammer(p: ModbusClimateProbe) -> None:
        start.wait()
        for _ in range(15):
            try:
                reading = p.read()
            except SensorReadError as exc:
                wrong.append(f"unit {p.unit}: {exc}")
                continue
            if reading != expected[p.unit]:
                wrong.append(f"unit {p.unit}: {reading}")
            counts[p.unit] += 1

    threads = [threading.Thread(target=hammer, args=(p,)) for p in probes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert wrong == []
    assert counts == {1: 15, 2: 15, 3: 15}
    assert probes[0].bus.transactions == 45  # no retry was needed: not one frame was lost to a collision


def test_the_last_probe_closed_releases_the_port(emulator, registry, pty) -> None:
    p1, p2 = probe(registry, pty, 1), probe(registry, pty, 2)
    p1.read()
    p1.close()
    assert registry.buses() == [p2.bus]
    assert p2.read() == ClimateReading(-3.4, 60.0)
    p2.close()
    assert registry.buses() == []


def test_one_port_with_two_different_baud_rates_is_refused(emulator, registry, pty) -> None:
    rtu_bus(registry, pty)
    with pytest.raises(ValueError, match=r"baudrate, parity"):
        registry.rtu(SerialSettings(str(pty.b), 19200))


# -- faults -------------------------------------------------------------------------------------------

def test_silent_unit_is_a_timeout_after_the_configured_retries(emulator, registry, pty) -> None:
    p1 = probe(registry, pty, 1, retries=2)
    emulator.set(1, fault="silent")
    before = emulator.requests
    with pytest.raises(ModbusTimeoutError) as caught:
        p1.read()
    message = str(caught.value)
    assert f"no answer from unit 1 on {pty.b} at 9600 baud" in message
    assert "timeout" in message and "after 3 attempts" in message
    assert "A and B swapped" in message and "unit id" in message
    assert emulator.requests - before == 3  # the device saw every attempt and kept quiet
    assert p1.bus.transactions == 3


def test_corrupted_crc_is_named_as_a_crc_error(emulator, registry, pty) -> None:
    p1 = probe(registry, pty, 1, retries=1)
    emulator.set(1, fault="bad_crc")
    with pytest.raises(ModbusCrcError, match=r"CRC error in the reply from unit 1 .* after 2 attempts") as caught:
        p1.read()
    assert "termination" in str(caught.value)


def test_exception_response_names_the_exception_code(emulator, registry, pty) -> None:
    p1 = probe(registry, pty, 1, retries=1)
    emulator.set(1, fault="exception", exception_code=0x02)
    with pytest.raises(ModbusExceptionError, match=r"exception response 0x02 \(illegal data address\)") as caught:
        p1.read()
    assert caught.value.code == 2
    assert "register" in str(caught.value)


def test_a_register_the_device_lacks_gives_illegal_data_address(emulator, registry, pty) -> None:
    profile = generic(Quantity(4, 50, "int16", 10.0), Quantity(4, 51, "int16", 10.0))
    with pytest.raises(ModbusExceptionError, match="0x02"):
        ModbusClimateProbe("g", rtu_bus(registry, pty), 1, profile, timeout_s=TIMEOUT, retries=0).read()


@pytest.mark.parametrize("fault", ["silent", "bad_crc", "exception"])
def test_probe_recovers_when_the_fault_is_cleared(emulator, registry, pty, fault) -> None:
    p1 = probe(registry, pty, 1, retries=0)
    emulator.set(1, fault=fault)
    with pytest.raises(SensorReadError):
        p1.read()
    emulator.set(1, fault="none")
    assert p1.read() == ClimateReading(21.5, 45.2)


def test_a_faulty_unit_does_not_disturb_the_others_on_the_bus(emulator, registry, pty) -> None:
    p1, p2 = probe(registry, pty, 1, retries=0), probe(registry, pty, 2, retries=0)
    emulator.set(1, fault="bad_crc")
    with pytest.raises(ModbusCrcError):
        p1.read()
    assert p2.read() == ClimateReading(-3.4, 60.0)


def test_unplugged_adapter_is_named_and_the_port_is_reopened_when_it_is_back(tmp_path, registry) -> None:
    pair = PtyPair(tmp_path / "dev", tmp_path / "gw").start()
    device = ModbusDeviceEmulator([1], port=str(pair.a)).start()
    p1 = ModbusClimateProbe("p1", registry.rtu(SerialSettings(str(pair.b))), 1, built_in("xy-md02"),
                            timeout_s=TIMEOUT, retries=0)
    try:
        assert p1.read() == ClimateReading(21.0, 50.0)
        device.stop()
        pair.stop()
        with pytest.raises(ModbusLinkError, match=rf"serial port {pair.b} does not exist.*USB RS-485 adapter"):
            wait_until(lambda: _fails(p1), 5, message="the read to fail")
            p1.read()
        pair.start()
        device = ModbusDeviceEmulator([1], port=str(pair.a)).start()
        assert wait_until(lambda: _reads(p1), 5, message="the probe to read again") == ClimateReading(21.0, 50.0)
    finally:
        device.stop()
        pair.stop()


def _fails(p: ModbusClimateProbe) -> bool:
    try:
        p.read()
    except ModbusLinkError:
        return True
    except SensorReadError:
        return False
    return False


def _reads(p: ModbusClimateProbe) -> ClimateReading | None:
    try:
        return p.read()
    except SensorReadError:
        return None


# -- TCP ------------------------------------------------------------------------------------------------

@pytest.fixture
def tcp_emulator() -> Iterator[ModbusDeviceEmulator]:
    with ModbusDeviceEmulator({1: UnitState(22.2, 55.5), 2: UnitState(19.5, 35.0)},
                              tcp=("127.0.0.1", free_port())) as device:
        yield device


def test_tcp_reads_and_reports_silent_and_exception(tcp_emulator, registry) -> None:
    assert tcp_emulator.tcp is not None
    bus = registry.tcp(TcpEndpoint(*tcp_emulator.tcp))
    p1 = ModbusClimateProbe("t1", bus, 1, built_in("xy-md02"), timeout_s=TIMEOUT, retries=1)
    p2 = ModbusClimateProbe("t2", registry.tcp(TcpEndpoint(*tcp_emulator.tcp)), 2, built_in("xy-md02"),
                            timeout_s=TIMEOUT)
    assert p2.bus is bus
    assert (p1.read(), p2.read()) == (ClimateReading(22.2, 55.5), ClimateReading(19.5, 35.0))
    tcp_emulator.set(1, fault="silent")
    with pytest.raises(ModbusTimeoutError, match=rf"no answer from unit 1 on 127.0.0.1:{tcp_emulator.tcp[1]}.*2 att"):
        p1.read()
    tcp_emulator.set(1, fault="exception")
    with pytest.raises(ModbusExceptionError, match=r"0x04 \(server device failure\)"):
        p1.read()
    tcp_emulator.set(1, fault="none")
    assert p1.read() == ClimateReading(22.2, 55.5)


def test_tcp_connection_refused_is_named_with_host_and_port(registry) -> None:
    port = free_port()
    p1 = ModbusClimateProbe("t1", registry.tcp(TcpEndpoint("127.0.0.1", port)), 1, built_in("xy-md02"),
                            timeout_s=TIMEOUT, retries=0)
    with pytest.raises(ModbusLinkError, match=rf"cannot connect to 127.0.0.1:{port}"):
        p1.read()


# -- scan ---------------------------------------------------------------------------------------------

def test_scan_finds_the_units_and_guesses_profile_and_scale(emulator, pty) -> None:
    emulator.set(2, fault="exception")
    bus = ModbusBus(SerialSettings(str(pty.b), 9600))
    try:
        found = scan(bus, range(1, 6), timeout=0.1)
    finally:
        bus.close()
    assert [(r.unit, r.profile, r.scale) for r in found] == [(1, "xy-md02", 10.0), (2, "generic", None),
                                                            (3, "sht20", 100.0)]
    assert found[0].temperature_c == 21.5 and found[2].humidity_pct == 38.1
    assert "exception 0x04" in found[1].detail
    assert found[0].line().startswith('unit 1: profile = "xy-md02", scale = 10 (21.5 °C, 45.2 %')


def test_scan_unit_ranges() -> None:
    assert parse_units("1-3,7") == [1, 2, 3, 7]
    assert parse_units("1-247")[-1] == 247
    for bad in ("0-3", "1-248", "x", "5-2"):
        with pytest.raises(ValueError, match="--units"):
            parse_units(bad)


# -- config -------------------------------------------------------------------------------------------

RTU = {"name": "rack1", "driver": "modbus-rtu", "port": "/dev/ttyUSB0", "unit": 3}
TCP = {"name": "rack2", "driver": "modbus-tcp", "host": "192.168.1.50", "unit": 1}
GENERIC_T = {"function": 3, "register": 100, "data_type": "float32", "scale": 1.0, "word_order": "little"}


def errors(model: type, data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in caught.value.errors()]


def test_valid_rtu_and_tcp_configs_with_defaults() -> None:
    rtu = ModbusRtuProbeConfig.model_validate(RTU)
    assert (rtu.baudrate, rtu.parity, rtu.stopbits, rtu.bytesize, rtu.profile, rtu.interval_s) == \
        (9600, "N", 1, 8, "xy-md02", 10.0)
    assert rtu.profile_object() == built_in("xy-md02")
    tcp = ModbusTcpProbeConfig.model_validate({**TCP, "profile": "sht20", "scale": 100})
    assert tcp.port == 502 and tcp.profile_object() == built_in("sht20", 100)
    gen = ModbusRtuProbeConfig.model_validate({**RTU, "profile": "generic", "temperature": GENERIC_T,
                                               "humidity": {**GENERIC_T, "register": 102}})
    assert gen.profile_object() == generic(Quantity(3, 100, "float32", 1.0, "little"),
                                           Quantity(3, 102, "float32", 1.0, "little"))


@pytest.mark.parametrize(("change", "key", "words"), [
    ({"port": "ttyUSB0"}, "port", ["'ttyUSB0'", "/dev/ttyUSB0"]),
    ({"baudrate": 9000}, "baudrate", ["9000", "9600"]),
    ({"unit": 0}, "unit", ["greater than or equal to 1"]),
    ({"unit": 248}, "unit", ["less than or equal to 247"]),
    ({"parity": "X"}, "parity", ["'N'"]),
    ({"interval_s": 0.5}, "interval_s", ["greater than or equal to 1"]),
    ({"profile": "dht22"}, "profile", ["xy-md02"]),
    ({"unit": "3"}, "unit", ["integer"]),
    ({"baud": 9600}, "baud", ["Extra inputs"]),
    ({"name": "Rack 1"}, "name", ["pattern"]),
])
def test_invalid_rtu_config_names_the_key_and_value(change, key, words) -> None:
    found = errors(ModbusRtuProbeConfig, {**RTU, **change})
    assert [k for k, _ in found] == [key]
    for word in words:
        assert word in found[0][1]


@pytest.mark.parametrize(("change", "words"), [
    ({"profile": "generic"}, ['profile = "generic" needs temperature and humidity', "[probes.temperature]"]),
    ({"profile": "generic", "temperature": GENERIC_T}, ["needs humidity", "[probes.humidity]"]),
    ({"temperature": GENERIC_T}, ['only read with profile = "generic", not "xy-md02"', "Fix"]),
    ({"profile": "generic", "temperature": GENERIC_T, "humidity": GENERIC_T, "scale": 100},
     ['scale = 100 is not used with profile = "generic"', "temperature.scale"]),
])
def test_profile_settings_that_do_not_fit_together_are_explained(change, words) -> None:
    found = errors(ModbusRtuProbeConfig, {**RTU, **change})
    assert len(found) == 1
    for word in words:
        assert word in found[0][1]


def test_generic_register_settings_are_checked_by_key() -> None:
    found = errors(ModbusTcpProbeConfig, {**TCP, "profile": "generic", "temperature": {**GENERIC_T, "function": 6},
                                          "humidity": {**GENERIC_T, "word_order": "middle"}})
    assert sorted(k for k, _ in found) == ["humidity.word_order", "temperature.function"]


def test_probes_sharing_a_bus_must_agree_and_not_share_a_unit() -> None:
    a = ModbusRtuProbeConfig.model_validate(RTU)
    b = ModbusRtuProbeConfig.model_validate({**RTU, "name": "rack1b", "baudrate": 19200, "unit": 4})
    c = ModbusRtuProbeConfig.model_validate({**RTU, "name": "rack1c"})
    d = ModbusTcpProbeConfig.model_validate(TCP)
    problems = bus_conflicts([a, b, c, d])
    assert len(problems) == 2
    assert "'rack1' and 'rack1b' use /dev/ttyUSB0 with different serial settings" in problems[0]
    assert "'rack1' and 'rack1c' both read unit 3 on /dev/ttyUSB0" in problems[1]
    assert bus_conflicts([a, d]) == []


def test_config_builds_probes_that_share_the_bus(emulator, registry, pty) -> None:
    configs = [ModbusRtuProbeConfig.model_validate({**RTU, "name": f"p{u}", "port": str(pty.b), "unit": u,
                                                    "timeout_s": TIMEOUT}) for u in (1, 2)]
    probes = [build_modbus_probe(c, registry) for c in configs]
    assert probes[0].bus is probes[1].bus
    assert [p.read() for p in probes] == [ClimateReading(21.5, 45.2), ClimateReading(-3.4, 60.0)]


# -- the emulator as technicians run it ----------------------------------------------------------------

def test_emulator_command_line_serves_units_and_takes_live_commands(pty, registry) -> None:
    device = subprocess.Popen(
        [sys.executable, "-m", "drivers.sim.modbus_device", "--port", str(pty.a), "--units", "1,2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    assert device.stdin is not None and device.stdout is not None
    try:
        assert device.stdout.readline().startswith("ready: units [1, 2]")
        p2 = probe(registry, pty, 2)
        assert p2.read() == ClimateReading(21.0, 50.0)
        device.stdin.write("set 2 temperature=30.5 humidity=41\n")
        device.stdin.flush()
        assert "temperature_c=30.5" in device.stdout.readline()
        assert p2.read() == ClimateReading(30.5, 41.0)
        device.stdin.write("fault 2 silent\n")
        device.stdin.flush()
        assert device.stdout.readline().strip() == "unit 2: fault=silent"
        with pytest.raises(ModbusTimeoutError):
            p2.read()
        device.stdin.write("fault 2 melted\n")
        device.stdin.flush()
        assert "fault='melted' is not one of none, silent, bad_crc, exception" in device.stdout.readline()
    finally:
        device.stdin.close()
        assert device.wait(10) == 0
        device.stdout.close()
