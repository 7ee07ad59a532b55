"""DhtProbe against the simulated adafruit_dht backend: a shared fake clock, no real sleeping."""

from __future__ import annotations

import pytest

from drivers.climate import ClimateReading
from drivers.dht import MIN_SPACING_S, DhtProbe
from drivers.errors import InvalidValueError, SensorError, SensorReadError
from drivers.sim.dht import CHECKSUM, FULL_BUFFER, NOT_FOUND, SimDht


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def make(model: str = "dht22", **kwargs: object) -> tuple[DhtProbe, SimDht, FakeClock]:
    clock = FakeClock()
    sensor = SimDht(model, clock=clock)  # type: ignore[arg-type]
    probe = DhtProbe("rack1", 4, model, sensor, clock=clock, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]
    return probe, sensor, clock


# -- the simulator mirrors the library ---------------------------------------------------
def test_sim_too_fast_returns_previous_values_silently() -> None:
    clock = FakeClock()
    sensor = SimDht(clock=clock, temperature_c=21.0)
    assert sensor.temperature == 21.0
    sensor.set(temperature_c=30.0)
    clock.now += 2.0  # exactly 2 s is not "more than 2 s": the library does not measure
    assert sensor.temperature == 21.0
    assert sensor.measurements == 1
    clock.now += 0.1
    assert sensor.temperature == 30.0


def test_sim_failed_attempt_keeps_old_values_and_restarts_the_wait() -> None:
    clock = FakeClock()
    sensor = SimDht(clock=clock, temperature_c=21.0, humidity_pct=40.0)
    assert (sensor.temperature, sensor.humidity) == (21.0, 40.0)
    sensor.set(temperature_c=25.0)
    sensor.script("checksum")
    clock.now += 3
    with pytest.raises(RuntimeError, match=r"Checksum did not validate\. Try again\."):
        _ = sensor.temperature
    # the trap: asking again at once gives the *old* value with no error
    assert sensor.humidity == 40.0
    assert sensor.temperature == 21.0
    assert sensor.measurements == 2


def test_sim_messages_are_the_librarys() -> None:
    clock = FakeClock()
    sensor = SimDht(clock=clock)
    sensor.script("checksum", "buffer")
    messages = []
    for _ in range(2):
        clock.now += 3
        with pytest.raises(RuntimeError) as info:
            _ = sensor.temperature
        messages.append(str(info.value))
    sensor.wired = False
    clock.now += 3
    with pytest.raises(RuntimeError) as info:
        _ = sensor.temperature
    assert [*messages, str(info.value)] == [CHECKSUM, FULL_BUFFER, NOT_FOUND]
    assert FULL_BUFFER == "A full buffer was not returned. Try again."
    assert NOT_FOUND == "DHT sensor not found, check wiring"


def test_sim_failure_rate_is_seeded_and_realistic() -> None:
    def run(seed: int) -> list[str]:
        clock = FakeClock()
        sensor = SimDht(clock=clock, failure_rate=0.3, seed=seed)
        results = []
        for _ in range(200):
            clock.now += 2.5
            try:
                results.append(str(sensor.temperature))
            except RuntimeError as exc:
                results.append(str(exc))
        return results

    first = run(7)
    assert first == run(7)
    failures = sum(1 for r in first if "Try again" in r)
    assert 30 < failures < 90
    assert {CHECKSUM, FULL_BUFFER} <= set(first)


# -- DhtProbe ------------------------------------------------------------------------------
def test_good_read_and_median_of_three_rejects_a_single_outlier() -> None:
    probe, sensor, clock = make()
    sensor.script((21.0, 50.0), (21.2, 51.0), (24.0, 58.0))  # the last is odd but within the jump limit
    readings = []
    for _ in range(3):
        readings.append(probe.read())
        clock.now += 10
    assert readings[0] == ClimateReading(21.0, 50.0)
    assert readings[1] == ClimateReading(21.1, 50.5)
    assert readings[2] == ClimateReading(21.2, 51.0)  # median, not the 24.0 spike


def test_old_samples_leave_the_median() -> None:
    probe, sensor, clock = make(max_age_s=60)
    sensor.script((21.0, 50.0), (21.0, 50.0), (23.0, 55.0))
    probe.read()
    clock.now += 10
    probe.read()
    clock.now += 120  # both earlier samples are now older than max_age_s
    assert probe.read() == ClimateReading(23.0, 55.0)


def test_retries_checksum_and_full_buffer_then_succeeds() -> None:
    probe, sensor, clock = make()
    sensor.script("checksum", "buffer", (21.5, 45.0))
    assert probe.read() == ClimateReading(21.5, 45.0)
    assert sensor.measurements == 3
    # backoff, and never closer than the library's 2 s (a quicker retry would return an old value)
    assert clock.sleeps == [pytest.approx(MIN_SPACING_S), pytest.approx(2 * MIN_SPACING_S)]


def test_fails_after_tries_with_a_clear_message_and_no_value() -> None:
    probe, sensor, clock = make()
    sensor.script((21.0, 50.0))
    probe.read()
    clock.now += 30
    sensor.script("checksum", "checksum", "checksum")
    with pytest.raises(SensorReadError) as info:
        probe.read()
    message = str(info.value)
    assert "DHT22 on GPIO4" in message and "no valid reading in 3 tries (checksum error)" in message
    assert "10 kΩ pull-up and cable length" in message
    assert sensor.measurements == 4
    assert isinstance(info.value, SensorError)


def test_sensor_not_found_says_check_wiring() -> None:
    probe, sensor, _ = make(tries=2)
    sensor.wired = False
    with pytest.raises(SensorReadError, match=r"2 tries \(sensor not found\); check the wiring"):
        probe.read()


def test_mixed_causes_are_counted() -> None:
    probe, sensor, _ = make()
    sensor.script("checksum", "buffer", "checksum")
    with pytest.raises(SensorReadError, match=r"2× checksum error, 1× incomplete data"):
        probe.read()


def test_no_data_before_first_success_is_a_failure_not_a_value() -> None:
    class Empty:
        temperature = None
        humidity = None

        def exit(self) -> None:
            pass

    clock = FakeClock()
    probe = DhtProbe("p", 4, backend=Empty(), clock=clock, sleep=clock.sleep, tries=1)
    with pytest.raises(SensorReadError, match="no data"):
        probe.read()


def test_impossible_jump_is_rejected_then_a_real_change_is_accepted() -> None:
    probe, sensor, clock = make()
    sensor.script((21.0, 50.0))
    probe.read()
    clock.now += 2.2
    sensor.script((35.0, 50.0), (21.1, 50.0))  # +14 °C in 2 s: a corrupted frame that passed the checksum
    assert probe.read() == ClimateReading(21.05, 50.0)
    assert sensor.measurements == 3
    # the same jump three times in a row is a real change (e.g. the probe was moved next to an exhaust)
    clock.now += 10
    sensor.script((30.0, 50.0), (30.1, 50.0), (30.0, 50.0))
    assert probe.read() == ClimateReading(30.0, 50.0)


def test_jump_that_never_settles_fails() -> None:
    probe, sensor, clock = make()
    sensor.script((21.0, 50.0))
    probe.read()
    clock.now += 5
    sensor.script((35.0, 50.0), (50.0, 50.0), (35.0, 50.0))
    with pytest.raises(SensorReadError, match="suspect jump"):
        probe.read()


def test_minimum_interval_returns_fresh_median_without_touching_the_sensor() -> None:
    probe, sensor, clock = make()
    sensor.script((21.0, 50.0))
    first = probe.read()
    clock.now += 1.0
    assert probe.read() == first
    assert sensor.measurements == 1
    assert clock.sleeps == []


def test_after_a_failure_the_next_read_waits_out_the_interval() -> None:
    probe, sensor, clock = make(tries=1)
    sensor.script("checksum", (22.0, 48.0))
    with pytest.raises(SensorReadError):
        probe.read()
    clock.now += 0.5
    assert probe.read() == ClimateReading(22.0, 48.0)
    assert clock.sleeps == [pytest.approx(MIN_SPACING_S - 0.5)]
    assert sensor.measurements == 2


def test_dht11_ranges() -> None:
    probe, sensor, clock = make("dht11", tries=1)
    sensor.set(temperature_c=24.0, humidity_pct=55.4)
    assert probe.read() == ClimateReading(24.0, 55.0)  # DHT11 humidity is whole percent
    clock.now += 120
    sensor.set(temperature_c=55.0)  # beyond the DHT11's 0–50 °C
    with pytest.raises(SensorReadError, match=r"DHT11 on GPIO4.*out of range"):
        probe.read()
    dht22, sensor22, _ = make("dht22", tries=1)
    sensor22.set(temperature_c=55.0)
    assert dht22.read().temperature_c == 55.0


def test_bad_arguments_are_refused() -> None:
    sensor = SimDht()
    with pytest.raises(InvalidValueError, match="GPIO pin 40"):
        DhtProbe("p", 40, backend=sensor)
    with pytest.raises(InvalidValueError, match="'am2302'"):
        DhtProbe("p", 4, "am2302", backend=sensor)  # type: ignore[arg-type]


def test_real_backend_missing_gives_a_clear_error() -> None:
    # this test machine has no adafruit_dht/board (they are in the Raspberry-Pi-only `pi` extra)
    with pytest.raises(SensorError, match=r"DHT22 on GPIO4 needs adafruit-circuitpython-dht.*dcgate\[pi\]"):
        DhtProbe("p", 4)


def test_close_releases_the_pin() -> None:
    probe, sensor, _ = make()
    probe.close()
    assert sensor.closed
