"""ATS, generator and fuel: sim contacts and a controlled clock; the Modbus path against the emulator on a pty."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.contacts import GpioContact
from drivers.errors import SensorError, SensorReadError
from drivers.modbus.bus import BusRegistry, ModbusTimeoutError, SerialSettings
from drivers.modbus.profiles import Quantity
from drivers.modbus.register import ModbusRegisterReader
from drivers.sim.contacts import SimContact, SimContactWorld
from drivers.sim.modbus_device import ModbusDeviceEmulator, UnitState
from gateway.config.power import PowerConfig
from gateway.power.generator import (
    ContactAtsReader,
    ContactRunningReader,
    PowerMonitor,
    build_power_readers,
)
from tests.support.waiting import wait_until


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_700_000_000.0

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, kind: str, source: str, fields: Any) -> None:
        self.events.append((kind, source, dict(fields)))

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.events]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [fields for k, _, fields in self.events if k == kind]

    def clear(self) -> None:
        self.events.clear()


class Tank:
    """A fuel sensor the test sets (the Modbus path has its own test below)."""

    def __init__(self, pct: float) -> None:
        self.pct = pct
        self.fault: str | None = None

    def read(self) -> float:
        if self.fault:
            raise SensorReadError(self.fault)
        return self.pct

    def close(self) -> None:
        """Nothing to release."""


def power_config(**generator: Any) -> PowerConfig:
    fuel = {"link": {"transport": "tcp", "host": "127.0.0.1", "unit": 1},
            "register": {"function": 4, "register": 1}, "interval_s": 60.0}
    return PowerConfig.model_validate({
        "ats": {"source": "gpio", "mains_pin": 17, "generator_pin": 27},
        "generator": {"running_pin": 22, "fuel": fuel, "learn_after_min": 10.0, **generator},
    })


@pytest.fixture
def world() -> SimContactWorld:
    return SimContactWorld({"ats-mains": True, "ats-generator": False, "generator-running": False})


def monitor(world: SimContactWorld, emit: Recorder, clock: Clock, tank: Tank | None = None,
            running_contact: bool = True, **kwargs: Any) -> PowerMonitor:
    ats = ContactAtsReader(SimContact(world, "ats-mains"), SimContact(world, "ats-generator"))
    running = ContactRunningReader(SimContact(world, "generator-running")) if running_contact else None
    return PowerMonitor(ats, running, tank, kwargs.pop("config", power_config()), emit, clock, **kwargs)


def outage(world: SimContactWorld, on: bool) -> None:
    world.set("ats-mains", not on)
    world.set("ats-generator", on)
    world.set("generator-running", on)


# -- ATS --------------------------------------------------------------------------------------

def test_ats_mains_to_generator_and_back_emits_switches_and_the_run(world) -> None:
    clock, emit = Clock(), Recorder()
    m = monitor(world, emit, clock, running_contact=False)  # running follows the ATS
    m.poll_once()
    assert emit.of("power.ats_status") == [{"position": "mains", "reason": "startup"}]
    assert emit.of("power.generator_status")[0]["running"] is False
    emit.clear()
    clock.advance(1)
    m.poll_once()
    assert emit.events == []  # nothing changed, nothing said

    world.set("ats-mains", False)  # mains lost: the ATS opens, then transfers
    clock.advance(1)
    m.poll_once()
    world.set("ats-generator", True)
    clock.advance(1)
    m.poll_once()
    assert emit.of("power.ats_switched") == [{"from": "mains", "to": "off", "uncertain_s": 1.0},
                                             {"from": "off", "to": "generator", "uncertain_s": 1.0}]
    assert emit.of("power.generator_started")[0]["ats_position"] == "generator"
    assert m.ats_state()["position"] == "generator" and m.generator_state()["running"] is True

    clock.advance(600)
    outage(world, False)
    m.poll_once()
    assert emit.of("power.ats_switched")[-1] == {"from": "generator", "to": "mains", "uncertain_s": 600.0}
    stopped = emit.of("power.generator_stopped")
    assert len(stopped) == 1 and stopped[0]["duration_s"] == 600.0 and stopped[0]["start_known"] is True
    assert stopped[0]["fuel_used_pct"] is None  # no fuel sensor: no invented number
    assert {source for _, source, _ in emit.events} == {"power:ats", "power:generator"}


def test_contact_fault_is_reported_once_and_a_change_meanwhile_is_uncertain(world) -> None:
    clock, emit = Clock(), Recorder()
    m = monitor(world, emit, clock)
    m.poll_once()
    world.fault("ats-mains", "wire broken (simulated)")
    for _ in range(3):
        clock.advance(1)
        m.poll_once()
    faults = emit.of("power.contact_fault")
    assert len(faults) == 1 and faults[0]["reader"] == "ats" and "wire broken" in faults[0]["error"]
    assert m.ats_state()["readable"] is False and m.ats_state()["position"] == "mains"  # last known, flagged

    outage(world, True)
    world.fault("ats-mains", None)
    clock.advance(1)
    m.poll_once()
    assert emit.of("power.contact_fault_cleared") == [{"reader": "ats", "fault_s": 3.0}]
    assert emit.of("power.ats_switched") == [{"from": "mains", "to": "generator", "uncertain_s": 4.0}]

    world.set("ats-mains", True)  # both contacts closed: impossible, so a fault, not a position
    clock.advance(1)
    m.poll_once()
    assert "both closed" in emit.of("power.contact_fault")[-1]["error"]
    assert m.ats_state()["position"] == "generator"

    world.fault("generator-running", "no signal")
    clock.advance(1)
    m.poll_once()
    assert emit.of("power.contact_fault")[-1]["reader"] == "generator"
    assert emit.of("power.generator_stopped") == []  # an unreadable contact is not a stop


# -- fuel, burn rate, refuel alarm ------------------------------------------------------------------

def run_for(m: PowerMonitor, clock: Clock, tank: Tank, minutes: int, pct_per_hour: float,
            noise: float = 0.0) -> None:
    """Poll once a minute while the tank drains; `noise` alternates ± so the sensor is not a clean line."""
    exact = tank.pct
    for i in range(minutes):
        clock.advance(60)
        exact -= pct_per_hour / 60
        tank.pct = round(exact + (noise if i % 2 else -noise), 2)
        m.poll_once()


def test_run_learns_the_burn_rate_raises_on_hours_and_a_refuel_clears_without_negative_burn(world) -> None:
    clock, emit, tank = Clock(), Recorder(), Tank(60.0)
    m = monitor(world, emit, clock, tank)
    m.poll_once()
    assert emit.of("power.fuel_level") == [{"fuel_pct": 60.0, "fuel_litres": None, "running": False,
                                            "burn_rate_pct_h": None, "hours_left": None, "reason": "startup"}]
    outage(world, True)
    clock.advance(1)
    m.poll_once()
    assert emit.of("power.generator_started")[0]["fuel_pct"] == 60.0

    run_for(m, clock, tank, 5, 5.0, noise=0.3)
    assert m.generator_state()["hours_left"] is None  # 5 min < learn_after_min: not trusted yet
    run_for(m, clock, tank, 115, 5.0, noise=0.3)  # 2 h at 5 %/h: 50 % left, 10 h
    state = m.generator_state()
    assert state["burn_rate_pct_h"] == pytest.approx(5.0, abs=0.2)
    assert state["hours_left"] == pytest.approx(10.0, abs=0.6)
    assert emit.of("power.refuel_needed") == []
    levels = [e["fuel_pct"] for e in emit.of("power.fuel_level")]
    assert 9 <= len(levels) <= 12  # about one per whole percent, not one per reading
    assert all(abs(a - b) >= 1.0 for a, b in itertools.pairwise(levels))

    run_for(m, clock, tank, 150, 5.0, noise=0.3)  # below 8 h (40 %) while running, above 30 %
    raised = emit.of("power.refuel_needed")
    assert len(raised) == 1 and raised[0]["reason"] == "hours" and raised[0]["running"] is True
    assert raised[0]["hours_left"] < 8 and raised[0]["fuel_pct"] > 30

    tank.pct = 95.0  # refuelled while running
    clock.advance(60)
    m.poll_once()
    refuelled = emit.of("power.refuelled")
    assert len(refuelled) == 1 and refuelled[0]["from_pct"] < 40 and refuelled[0]["to_pct"] == 95.0
    cleared = emit.of("power.refuel_needed_cleared")
    assert len(cleared) == 1 and cleared[0]["reason"] == "hours" and cleared[0]["hours_left"] > 8
    assert m.generator_state()["burn_rate_pct_h"] == pytest.approx(5.0, abs=0.2)  # the jump is not a burn

    run_for(m, clock, tank, 60, 5.0, noise=0.3)
    outage(world, False)
    clock.advance(60)
    m.poll_once()
    stopped = emit.of("power.generator_stopped")[0]
    assert stopped["fuel_start_pct"] == 60.0
    assert stopped["fuel_added_pct"] == pytest.approx(95 - refuelled[0]["from_pct"])
    # 5 %/h over ~5.5 h of running, the refuel added back in
    assert stopped["fuel_used_pct"] == pytest.approx(5.0 * stopped["duration_s"] / 3600, abs=1.0)
    assert stopped["burn_rate_pct_h"] == pytest.approx(5.0, abs=0.2) and stopped["burn_learned_h"] > 4

    learned = m.state()["learned"]
    assert learned["burn_rate_pct_h"] == pytest.approx(5.0, abs=0.2)
    # kept across runs and restarts: a new monitor given what was learned knows hours left at once
    emit2 = Recorder()
    again = monitor(world, emit2, clock, Tank(50.0), learned=learned)
    again.poll_once()
    assert again.generator_state()["hours_left"] == pytest.approx(10.0, abs=0.5)
    fresh = monitor(world, Recorder(), clock, Tank(50.0))
    fresh.poll_once()
    assert fresh.generator_state()["hours_left"] is None  # never invented without a learned rate


def test_level_alarm_with_hysteresis_and_refuel_at_rest(world) -> None:
    clock, emit, tank = Clock(), Recorder(), Tank(35.0)
    m = monitor(world, emit, clock, tank, config=power_config(tank_litres=200.0))
    m.poll_once()
    tank.pct = 29.5
    clock.advance(60)
    m.poll_once()
    raised = emit.of("power.refuel_needed")
    assert len(raised) == 1 and raised[0]["reason"] == "level" and raised[0]["running"] is False
    assert raised[0]["fuel_litres"] == 59.0 and raised[0]["hours_left"] is None
    tank.pct = 30.5  # noise just above the level does not clear it
    clock.advance(60)
    m.poll_once()
    tank.pct = 29.0
    clock.advance(60)
    m.poll_once()
    assert emit.of("power.refuel_needed_cleared") == [] and len(emit.of("power.refuel_needed")) == 1
    tank.pct = 80.0
    clock.advance(60)
    m.poll_once()
    assert emit.of("power.refuelled")[0]["added_litres"] == 102.0
    assert emit.of("power.refuel_needed_cleared")[0]["alarm_s"] == 180.0
    assert m.generator_state()["refuel_needed"] is False


def test_a_slow_rise_or_flat_level_while_running_is_never_a_burn_rate(world) -> None:
    clock, emit, tank = Clock(), Recorder(), Tank(50.0)
    m = monitor(world, emit, clock, tank)
    m.poll_once()
    outage(world, True)
    run_for(m, clock, tank, 60, -1.0)  # +1 %/h: e.g. a day tank filled slowly by a pump
    state = m.generator_state()
    assert state["burn_rate_pct_h"] is None and state["hours_left"] is None
    outage(world, False)
    clock.advance(60)
    m.poll_once()
    assert emit.of("power.generator_stopped")[0]["burn_rate_pct_h"] is None


def test_fuel_sensor_fault_and_recovery(world) -> None:
    clock, emit, tank = Clock(), Recorder(), Tank(50.0)
    m = monitor(world, emit, clock, tank)
    m.poll_once()
    tank.fault = "no answer"
    clock.advance(60)
    m.poll_once()
    clock.advance(60)
    m.poll_once()
    assert emit.of("power.fuel_sensor_fault") == [{"reader": "fuel", "error": "no answer"}]
    assert m.generator_state()["errors"] == {"fuel": "no answer"} and m.generator_state()["fuel_pct"] == 50.0
    tank.fault = None
    clock.advance(60)
    m.poll_once()
    assert emit.of("power.fuel_sensor_fault_cleared") == [{"reader": "fuel", "fault_s": 120.0}]  # first failure to now


# -- the Modbus path: real pymodbus on a socat pty -------------------------------------------------

@pytest.fixture
def registry() -> Iterator[BusRegistry]:
    reg = BusRegistry()
    yield reg
    reg.close_all()


# The emulated unit is a climate probe; its registers stand in for a generator controller's:
# input register 1 (int16 ×10) carries the fuel %, input register 2 (int16 ×10) the ATS code.
def test_register_reader_reads_the_emulated_register_and_names_a_silent_unit(pty, registry) -> None:
    with ModbusDeviceEmulator({3: UnitState(temperature_c=47.5, humidity_pct=2.0)}, port=str(pty.a)) as device:
        bus = registry.rtu(SerialSettings(str(pty.b)))
        reader = ModbusRegisterReader("fuel level", bus, 3, Quantity(4, 1, "int16", 10.0), retries=1, timeout_s=0.2)
        assert reader.read() == 47.5
        device.set(3, temperature_c=12.3)
        assert reader.read() == 12.3
        device.set(3, fault="silent")
        with pytest.raises(ModbusTimeoutError, match=r"fuel level: no answer from unit 3 .* after 2 attempts"):
            reader.read()
        reader.close()


def test_power_monitor_over_modbus_ats_and_fuel_on_one_shared_bus(pty, registry) -> None:
    link = {"transport": "rtu", "port": str(pty.b), "unit": 3, "timeout_s": 0.2, "retries": 0}
    config = PowerConfig.model_validate({
        "ats": {"source": "modbus", "link": link, "register": {"function": 4, "register": 2},
                "positions": {"0": "off", "1": "mains", "2": "generator"}, "interval_s": 0.2},
        "generator": {"fuel": {"link": link, "register": {"function": 4, "register": 1}, "interval_s": 1.0},
                      "tank_litres": 400.0, "interval_s": 0.2},
    })
    emit = Recorder()
    with ModbusDeviceEmulator({3: UnitState(temperature_c=64.0, humidity_pct=1.0)}, port=str(pty.a)) as device:
        readers = build_power_readers(config, registry)
        assert len(registry.buses()) == 1  # ATS and fuel share the one RS-485 link
        m = PowerMonitor(readers.ats, readers.running, readers.fuel, config, emit)
        m.start()
        try:
            wait_until(lambda: emit.of("power.fuel_level"), 10, message="the first fuel reading")
            assert emit.of("power.ats_status")[0]["position"] == "mains"
            assert emit.of("power.fuel_level")[0]["fuel_litres"] == 256.0
            device.set(3, humidity_pct=2.0)  # code 2: transferred to the generator
            wait_until(lambda: emit.of("power.generator_started"), 10, message="generator_started")
            assert emit.of("power.ats_switched")[0]["to"] == "generator"
            device.set(3, humidity_pct=7.0)  # a code the config does not map: a fault, not a guess
            wait_until(lambda: emit.of("power.contact_fault"), 10, message="contact_fault for code 7")
            assert "code 7" in emit.of("power.contact_fault")[0]["error"]
            device.set(3, humidity_pct=1.0, temperature_c=150.0)  # 150 %: a wrong scale, not a level
            wait_until(lambda: emit.of("power.fuel_sensor_fault"), 10, message="fuel_sensor_fault")
            assert "outside 0..100" in emit.of("power.fuel_sensor_fault")[0]["error"]
            wait_until(lambda: emit.of("power.generator_stopped"), 10, message="generator_stopped")
            assert m.ats_state()["position"] == "mains"
        finally:
            m.stop()
    assert registry.buses() == []  # stop() released the monitor's share of the bus


# -- the GPIO backend, with a scripted RPi.GPIO stand-in (no GPIO here) ----------------------------

class FakeGpio:
    BCM, IN, PUD_UP, PUD_DOWN, PUD_OFF = "BCM", "IN", "UP", "DOWN", "OFF"

    def __init__(self, levels: list[int]) -> None:
        self.levels, self.setups, self.cleaned = list(levels), [], []

    def setwarnings(self, flag: bool) -> None:
        """Accepted."""

    def setmode(self, mode: str) -> None:
        assert mode == self.BCM

    def setup(self, pin: int, direction: str, pull_up_down: str) -> None:
        self.setups.append((pin, direction, pull_up_down))

    def input(self, pin: int) -> int:
        return self.levels.pop(0) if len(self.levels) > 1 else self.levels[0]

    def cleanup(self, pin: int) -> None:
        self.cleaned.append(pin)


def test_gpio_contact_polarity_pull_and_debounce() -> None:
    low = FakeGpio([0])
    contact = GpioContact("ats-mains", 17, active_low=True, debounce_ms=20, gpio=low, clock=Clock())
    assert contact.is_closed() is True and low.setups == [(17, "IN", "UP")]
    contact.close()
    assert low.cleaned == [17]
    high = FakeGpio([0])
    assert GpioContact("x", 5, active_low=False, debounce_ms=0, gpio=high).is_closed() is False
    assert high.setups == [(5, "IN", "DOWN")]
    # bounces 0/1 for a few samples, then settles high: open for an active-low contact
    bouncing = FakeGpio([0, 1, 0, 1, 1, 1, 1, 1, 1, 1])
    assert GpioContact("x", 6, debounce_ms=20, gpio=bouncing, clock=Clock()).is_closed() is False
    chattering = FakeGpio([0, 1] * 200)
    with pytest.raises(SensorReadError, match="did not settle"):
        GpioContact("x", 6, debounce_ms=20, gpio=chattering, clock=Clock()).is_closed()


def test_gpio_contact_without_the_library_is_a_sensor_error_naming_the_package() -> None:
    contact = GpioContact("generator-running", 22)
    with pytest.raises(SensorError, match="rpi-lgpio"):
        contact.is_closed()
    contact.close()  # nothing was set up: nothing to clean, no error


# -- config --------------------------------------------------------------------------------------

def check_error(data: dict[str, Any], *words: str) -> None:
    with pytest.raises(ValidationError) as info:
        PowerConfig.model_validate(data)
    text = str(info.value)
    for word in words:
        assert word in text, f"{word!r} not in {text}"


LINK = {"transport": "rtu", "port": "/dev/ttyUSB0", "unit": 5}
REG = {"function": 3, "register": 0}


def test_valid_power_config_defaults() -> None:
    config = power_config()
    gen = config.generator
    assert gen is not None and gen.refuel_below_pct == 30.0 and gen.refuel_below_hours == 8.0
    assert config.ats is not None and config.ats.active_low is True and config.contact_interval_s == 1.0
    assert PowerConfig.model_validate({}).ats is None
    modbus = PowerConfig.model_validate({"ats": {"source": "modbus", "link": LINK, "register": REG,
                                                 "positions": {"1": "mains", "2": "generator"}}})
    assert modbus.ats is not None and modbus.ats.position_codes() == {1: "mains", 2: "generator"}  # type: ignore[union-attr]
    schema = PowerConfig.model_json_schema()
    assert "description" in schema["$defs"]["GeneratorConfig"]["properties"]["refuel_below_pct"]


@pytest.mark.parametrize(("data", "words"), [
    ({"ats": {"source": "gpio", "mains_pin": 17, "generator_pin": 17}}, ("both 17", "two different pins")),
    ({"ats": {"source": "gpio", "mains_pin": 40, "generator_pin": 27}}, ("mains_pin = 40", "BCM number")),
    ({"ats": {"source": "relay"}}, ("source",)),
    ({"ats": {"source": "modbus", "link": LINK, "register": REG, "positions": {"one": "mains", "2": "generator"}}},
     ("'one' is not a whole number",)),
    ({"ats": {"source": "modbus", "link": LINK, "register": REG, "positions": {"1": "mains"}}},
     ("no code means generator",)),
    ({"ats": {"source": "modbus", "link": {**LINK, "port": "ttyUSB0"}, "register": REG, "positions": {}}},
     ("'ttyUSB0' is not a device path",)),
    ({"ats": {"source": "modbus", "link": {**LINK, "baudrate": 9000}, "register": REG,
              "positions": {"1": "mains", "2": "generator"}}}, ("baudrate 9000", "9600")),
    ({"generator": {"running_pin": 22}, "ats": {"source": "gpio", "mains_pin": 22, "generator_pin": 27}},
     ("running_pin = 22 is also [power.ats] mains_pin",)),
    ({"generator": {"fuel": {"link": LINK, "register": REG}}}, ("no running signal", "running_pin")),
    ({"generator": {"running_pin": 22, "running_register": {"link": LINK, "register": REG}}},
     ("keep one of them",)),
    ({"generator": {"running_pin": 22, "refuel_below_pct": 120}}, ("refuel_below_pct",)),
    ({"generator": {"running_pin": 22, "refuel_below_hours": "8"}}, ("refuel_below_hours",)),
    ({"generator": {"running_pin": 22, "fuel_pct": 3}}, ("fuel_pct", "Extra inputs")),
])
def test_invalid_power_config_names_the_value_and_the_fix(data: dict[str, Any], words: tuple[str, ...]) -> None:
    check_error(data, *words)
