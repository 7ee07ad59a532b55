"""Watch the ATS, the generator and its fuel; emit `power.*` events on transitions.

Like the UPS monitor: transitions, not a stream of readings. The one exception is
`power.fuel_level`, sent at start and whenever the level has moved by a whole percent since the
last one, so the monthly fuel control card (*kartu kontrol bahan bakar*) can be built from events.

Burn rate (% of the tank per hour) is learned only from the generator's own runs: a least-squares
line through the fuel readings of each stretch of running, trusted once it spans `learn_after_min`
and its standard error is under `TRUST_ERROR` of the rate (a noisy sensor needs a longer stretch).
A rise of `REFUEL_JUMP_PCT` or more is refuelling: it ends the stretch (never a negative burn) and is
reported as `power.refuelled`. Runs are blended with what earlier runs taught, weighted by hours,
with old runs' weight capped so a changed load shows within a few runs. Without a learned rate,
hours left is None: never a guess.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

from drivers.contacts import ContactInput, GpioContact
from drivers.errors import SensorError, SensorReadError
from drivers.modbus.bus import BusRegistry
from drivers.modbus.register import ModbusRegisterReader
from gateway.config.power import AtsGpioConfig, ModbusRtuLink, ModbusTcpLink, PowerConfig
from gateway.store.events import utc_timestamp

log = logging.getLogger(__name__)

Emit = Callable[[str, str, Mapping[str, Any]], object]

REFUEL_JUMP_PCT = 2.0  # a rise this large between readings is fuel added, not sensor noise
LEVEL_STEP_PCT = 1.0  # power.fuel_level when the level moved this much since the last one
CLEAR_MARGIN_PCT = 2.0  # refuel_needed clears this far above refuel_below_pct: no flapping on noise
TRUST_ERROR = 0.1  # a run's rate counts once its standard error is below this fraction of it
MEMORY_CAP_H = 10.0  # earlier runs weigh at most this many hours against a new run


# -- readers: what the monitor reads, whatever the hardware -------------------------------------

class AtsReader(Protocol):
    def read(self) -> str: ...  # "mains" | "generator" | "off"
    def close(self) -> None: ...


class RunningReader(Protocol):
    def read(self) -> bool: ...
    def close(self) -> None: ...


class FuelReader(Protocol):
    def read(self) -> float: ...  # percent
    def close(self) -> None: ...


class NumberReader(Protocol):
    def read(self) -> float: ...
    def close(self) -> None: ...


class ContactAtsReader:
    """Two ATS auxiliary contacts: closed on mains / closed on generator; neither means off."""

    def __init__(self, mains: ContactInput, generator: ContactInput) -> None:
        self.mains, self.generator = mains, generator

    def read(self) -> str:
        on_mains, on_generator = self.mains.is_closed(), self.generator.is_closed()
        if on_mains and on_generator:
            raise SensorReadError(
                f"ATS contacts {self.mains.name!r} and {self.generator.name!r} are both closed. Check: the wiring "
                "(one contact shorted), and that mains_pin and generator_pin are not swapped with another input"
            )
        return "mains" if on_mains else "generator" if on_generator else "off"

    def close(self) -> None:
        self.mains.close()
        self.generator.close()


class RegisterAtsReader:
    """A position code from the ATS controller, mapped by `[power.ats] positions`."""

    def __init__(self, reader: NumberReader, codes: Mapping[int, str]) -> None:
        self.reader, self.codes = reader, dict(codes)

    def read(self) -> str:
        value = self.reader.read()
        if not float(value).is_integer() or int(value) not in self.codes:
            raise SensorReadError(
                f"ATS position code {value:g} is not in [power.ats] positions ({sorted(self.codes)}). Fix: add it "
                "from the ATS controller manual, or check register and scale"
            )
        return self.codes[int(value)]

    def close(self) -> None:
        self.reader.close()


class ContactRunningReader:
    def __init__(self, contact: ContactInput) -> None:
        self.contact = contact

    def read(self) -> bool:
        return self.contact.is_closed()

    def close(self) -> None:
        self.contact.close()


class RegisterRunningReader:
    def __init__(self, reader: NumberReader, running_values: list[int]) -> None:
        self.reader, self.running_values = reader, set(running_values)

    def read(self) -> bool:
        return self.reader.read() in self.running_values

    def close(self) -> None:
        self.reader.close()


class PercentReader:
    """A fuel level register, checked to be a percentage (a wrong scale is a fault, not a level)."""

    def __init__(self, reader: NumberReader) -> None:
        self.reader = reader

    def read(self) -> float:
        value = self.reader.read()
        if not 0.0 <= value <= 100.0:
            raise SensorReadError(
                f"fuel level {value:g} % is outside 0..100. Fix: check [power.generator.fuel] register and scale"
            )
        return value

    def close(self) -> None:
        self.reader.close()


ContactFactory = Callable[[str, int, bool, float], ContactInput]


def gpio_contact(name: str, pin: int, active_low: bool, debounce_ms: float) -> ContactInput:
    return GpioContact(name, pin, active_low=active_low, debounce_ms=debounce_ms)


@dataclass
class PowerReaders:
    ats: AtsReader | None
    running: RunningReader | None
    fuel: FuelReader | None

    def close(self) -> None:
        for reader in (self.ats, self.running, self.fuel):
            if reader is not None:
                reader.close()


def _register(name: str, link: ModbusRtuLink | ModbusTcpLink, register: Any, registry: BusRegistry
              ) -> ModbusRegisterReader:
    bus = registry.rtu(link.serial_settings()) if isinstance(link, ModbusRtuLink) else registry.tcp(link.endpoint())
    return ModbusRegisterReader(name, bus, link.unit, register.quantity(), retries=link.retries,
                                timeout_s=link.timeout_s)


def build_power_readers(config: PowerConfig, registry: BusRegistry,
                        contact: ContactFactory = gpio_contact) -> PowerReaders:
    """The readers `[power]` describes; Modbus ones share `registry`'s buses with the probes."""
    ats: AtsReader | None = None
    if isinstance(config.ats, AtsGpioConfig):
        a = config.ats
        ats = ContactAtsReader(contact("ats-mains", a.mains_pin, a.active_low, a.debounce_ms),
                               contact("ats-generator", a.generator_pin, a.active_low, a.debounce_ms))
    elif config.ats is not None:
        ats = RegisterAtsReader(_register("ATS position", config.ats.link, config.ats.register, registry),
                                config.ats.position_codes())
    running: RunningReader | None = None
    fuel: FuelReader | None = None
    gen = config.generator
    if gen is not None:
        if gen.running_pin is not None:
            running = ContactRunningReader(contact("generator-running", gen.running_pin, gen.running_active_low,
                                                   gen.running_debounce_ms))
        elif gen.running_register is not None:
            r = gen.running_register
            running = RegisterRunningReader(_register("generator running", r.link, r.register, registry),
                                            r.running_values)
        if gen.fuel is not None:
            fuel = PercentReader(_register("fuel level", gen.fuel.link, gen.fuel.register, registry))
    return PowerReaders(ats, running, fuel)


# -- burn rate -----------------------------------------------------------------------------------

@dataclass
class _Segment:
    """Running sums for a least-squares line through (t, pct) since the segment began."""

    t0: float
    n: int = 0
    st: float = 0.0
    sp: float = 0.0
    stt: float = 0.0
    stp: float = 0.0
    spp: float = 0.0
    last_t: float = 0.0

    def add(self, t: float, pct: float) -> None:
        x = t - self.t0
        self.n += 1
        self.st += x
        self.sp += pct
        self.stt += x * x
        self.stp += x * pct
        self.spp += pct * pct
        self.last_t = x

    @property
    def span_s(self) -> float:
        return self.last_t

    def drop_pct_h(self) -> tuple[float, float] | None:
        """(fuel drop in %/h, its standard error in %/h), or None with too few distinct readings."""
        n = self.n
        sxx = self.stt - self.st * self.st / n if n else 0.0
        if n < 3 or sxx <= 0:
            return None
        sxp = self.stp - self.st * self.sp / n
        spp = self.spp - self.sp * self.sp / n
        slope = sxp / sxx  # % per second
        residual = max(0.0, spp - slope * sxp)
        return -slope * 3600.0, math.sqrt(residual / (n - 2) / sxx) * 3600.0


@dataclass
class BurnLearner:
    rate_pct_h: float | None = None
    learned_h: float = 0.0
    min_span_s: float = 900.0
    _segment: _Segment | None = None
    _run_weighted: float = 0.0  # sum of rate × hours over the run's finished, trusted segments
    _run_hours: float = 0.0

    def start_run(self) -> None:
        self._segment, self._run_weighted, self._run_hours = None, 0.0, 0.0

    def add(self, t: float, pct: float) -> None:
        if self._segment is None:
            self._segment = _Segment(t)
        self._segment.add(t, pct)

    def refuelled(self, t: float, pct: float) -> None:
        """Fuel added: close the stretch so the jump never enters a fit, and start a new one."""
        self._fold()
        self._segment = _Segment(t)
        self._segment.add(t, pct)

    def _trusted(self) -> tuple[float, float] | None:
        s = self._segment
        if s is None or s.span_s < self.min_span_s:
            return None
        fit = s.drop_pct_h()
        if fit is None:
            return None
        drop, error = fit
        # a flat or rising line is not a burn rate (fuel added slowly, or a stuck sensor); nor is a
        # line that sensor noise could tilt by more than TRUST_ERROR of itself
        if drop <= 0 or error > TRUST_ERROR * drop:
            return None
        return drop, s.span_s / 3600.0

    def _fold(self) -> None:
        trusted = self._trusted()
        if trusted is not None:
            self._run_weighted += trusted[0] * trusted[1]
            self._run_hours += trusted[1]
        self._segment = None

    def _blend(self, weighted: float, hours: float) -> tuple[float | None, float]:
        if hours <= 0:
            return self.rate_pct_h, self.learned_h
        old_h = min(self.learned_h, MEMORY_CAP_H) if self.rate_pct_h is not None else 0.0
        total = old_h + hours
        return ((self.rate_pct_h or 0.0) * old_h + weighted) / total, total

    def current(self) -> tuple[float | None, float]:
        """(rate, hours behind it) including the run so far."""
        weighted, hours = self._run_weighted, self._run_hours
        trusted = self._trusted()
        if trusted is not None:
            weighted, hours = weighted + trusted[0] * trusted[1], hours + trusted[1]
        return self._blend(weighted, hours)

    def stop_run(self) -> None:
        self._fold()
        self.rate_pct_h, self.learned_h = self._blend(self._run_weighted, self._run_hours)
        self._run_weighted, self._run_hours = 0.0, 0.0


# -- the monitor ---------------------------------------------------------------------------------

@dataclass
class _Run:
    started_ts: float
    started_mono: float
    start_known: bool  # False: it was already running when the gateway started
    fuel_start_pct: float | None = None
    fuel_added_pct: float = 0.0


@dataclass
class _State:
    position: str | None = None
    ats_since_ts: float | None = None
    ats_read_ts: float | None = None
    ats_read_mono: float | None = None
    running: bool | None = None
    run: _Run | None = None
    fuel_pct: float | None = None
    fuel_read_ts: float | None = None
    fuel_emitted_pct: float | None = None
    refuel: dict[str, Any] | None = None  # the open refuel_needed alarm
    faults: dict[str, tuple[str, float]] = field(default_factory=dict)  # reader -> (error, since mono)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


class PowerMonitor:
    """One thread: read the ATS and running signal every poll, the fuel every `fuel.interval_s`."""

    def __init__(self, ats_reader: AtsReader | None, generator_reader: RunningReader | None,
                 fuel_reader: FuelReader | None, config: PowerConfig, emit: Emit,
                 clock: ModuleType | Any = time, *, learned: Mapping[str, Any] | None = None) -> None:
        self._ats, self._running, self._fuel = ats_reader, generator_reader, fuel_reader
        self._config = config
        gen = config.generator
        self._below_pct = gen.refuel_below_pct if gen else 30.0
        self._below_hours = gen.refuel_below_hours if gen else 8.0
        self._tank = gen.tank_litres if gen else None
        self._interval_s = config.contact_interval_s
        self._fuel_interval_s = gen.fuel.interval_s if gen and gen.fuel else 30.0
        self._emit, self._clock = emit, clock
        learned = learned or {}
        self._burn = BurnLearner(learned.get("burn_rate_pct_h"), float(learned.get("burn_learned_h") or 0.0),
                                 min_span_s=(gen.learn_after_min if gen else 15.0) * 60)
        self._state = _State()
        self._next_fuel = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._events: list[tuple[str, str, dict[str, Any]]] = []

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_loop, name="power-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for reader in (self._ats, self._running, self._fuel):
            if reader is not None:
                reader.close()

    def _run_loop(self) -> None:
        next_due = self._clock.monotonic()
        while not self._stop.is_set():
            self.poll_once()
            next_due = max(next_due + self._interval_s, self._clock.monotonic())
            self._stop.wait(max(0.0, next_due - self._clock.monotonic()))

    # -- snapshots -----------------------------------------------------------------------------
    def ats_state(self) -> dict[str, Any]:
        """For the retained `{base_topic}/power/ats` topic."""
        with self._lock:
            s = self._state
            fault = s.faults.get("ats")
            readable = None if s.ats_read_ts is None and fault is None else fault is None
            return {"position": s.position, "readable": readable,
                    "error": fault[0] if fault else None, "since": self._utc(s.ats_since_ts),
                    "last_reading_ts": s.ats_read_ts}

    def generator_state(self) -> dict[str, Any]:
        """For the retained `{base_topic}/power/generator` topic."""
        with self._lock:
            s = self._state
            rate, learned_h = self._burn.current()
            now = self._clock.monotonic()
            return {
                "running": s.running,
                "running_since": self._utc(s.run.started_ts) if s.run and s.run.start_known else None,
                "run_duration_s": round(now - s.run.started_mono, 3) if s.run else None,
                "fuel_pct": s.fuel_pct, "fuel_litres": self._litres(s.fuel_pct),
                "fuel_reading_ts": s.fuel_read_ts,
                "burn_rate_pct_h": _r(rate, 3), "burn_learned_h": _r(learned_h, 3),
                "hours_left": _r(self._hours_left(s.fuel_pct, rate)),
                "refuel_needed": s.refuel is not None,
                "refuel_reason": s.refuel["reason"] if s.refuel else None,
                "errors": {reader: error for reader, (error, _) in s.faults.items() if reader != "ats"},
            }

    def state(self) -> dict[str, Any]:
        """Both snapshots plus the learned burn rate (what the lead persists and passes back as `learned`)."""
        with self._lock:
            learned = {"burn_rate_pct_h": self._burn.rate_pct_h, "burn_learned_h": self._burn.learned_h}
        return {"ats": self.ats_state(), "generator": self.generator_state(), "learned": learned}

    # -- one poll ------------------------------------------------------------------------------
    def poll_once(self) -> None:
        """Read what is due and emit what changed (public: tests and a `read now` request use it)."""
        now_ts, now = self._clock.time(), self._clock.monotonic()
        position = self._read("ats", self._ats, now) if self._ats is not None else None
        if self._running is not None:
            running = self._read("generator", self._running, now)
        elif self._ats is not None:
            # no running signal of its own: the generator runs while the ATS is on it
            running = None if position is None else position == "generator"
        else:
            running = None
        with self._lock:
            if position is not None:
                self._ats_reading(position, now_ts, now)
            changed = running is not None and running != self._state.running
        # a start or stop gets a fresh fuel reading: the run's fuel used is measured at its ends
        fuel = None
        if self._fuel is not None and (changed or now >= self._next_fuel):
            self._next_fuel = now + self._fuel_interval_s
            fuel = self._read("fuel", self._fuel, now)
        with self._lock:
            # a stop's last reading still belongs to the run; a start's first one already does
            stopping = running is False and bool(self._state.running)
            if fuel is not None and stopping:
                self._fuel_reading(fuel, now_ts, now)
            if running is not None:
                self._running_reading(running, now_ts, now, fuel)
            if fuel is not None and not stopping:
                self._fuel_reading(fuel, now_ts, now)
            events, self._events = self._events, []
        for kind, source, fields in events:
            self._send(kind, source, fields)

    def _read(self, name: str, reader: Any, now: float) -> Any:
        try:
            value = reader.read()
        except SensorError as exc:
            self._fault(name, str(exc), now)
            return None
        except Exception as exc:  # a bug must not kill the thread; it shows as a fault
            log.exception("power: unexpected error reading %s", name)
            self._fault(name, f"internal error: {exc}", now)
            return None
        with self._lock:
            fault = self._state.faults.pop(name, None)
            if fault is not None:
                kind = "power.fuel_sensor_fault_cleared" if name == "fuel" else "power.contact_fault_cleared"
                self._queue(kind, name, {"reader": name, "fault_s": round(now - fault[1], 3)})
        return value

    def _fault(self, name: str, error: str, now: float) -> None:
        with self._lock:
            first = name not in self._state.faults
            if first:
                self._state.faults[name] = (error, now)
                log.warning("power: %s cannot be read: %s", name, error)
                kind = "power.fuel_sensor_fault" if name == "fuel" else "power.contact_fault"
                self._queue(kind, name, {"reader": name, "error": error})

    def _ats_reading(self, position: str, now_ts: float, now: float) -> None:
        s = self._state
        if s.position is None:
            self._queue("power.ats_status", "ats", {"position": position, "reason": "startup"})
            s.ats_since_ts = now_ts
        elif position != s.position:
            uncertain = None if s.ats_read_mono is None else round(now - s.ats_read_mono, 3)
            self._queue("power.ats_switched", "ats", {"from": s.position, "to": position, "uncertain_s": uncertain})
            s.ats_since_ts = now_ts
        s.position, s.ats_read_ts, s.ats_read_mono = position, now_ts, now

    def _running_reading(self, running: bool, now_ts: float, now: float, fresh_fuel: float | None) -> None:
        s = self._state
        if s.running is None:
            self._queue("power.generator_status", "generator", {"running": running, "reason": "startup",
                                                                 "fuel_pct": s.fuel_pct})
            if running:  # already running: its start is unknown, its fuel at start too
                s.run = _Run(now_ts, now, start_known=False)
                self._burn.start_run()
        elif running and not s.running:
            s.run = _Run(now_ts, now, start_known=True)  # fuel_start_pct: set by the next fuel reading
            self._burn.start_run()
            fuel = fresh_fuel if fresh_fuel is not None else s.fuel_pct
            self._queue("power.generator_started", "generator", {
                "fuel_pct": fuel, "fuel_litres": self._litres(fuel), "ats_position": s.position})
        elif s.running and not running and s.run is not None:
            self._stopped(s.run, now)
            s.run = None
        s.running = running

    def _stopped(self, run: _Run, now: float) -> None:
        s = self._state
        self._burn.stop_run()
        used = None
        if run.fuel_start_pct is not None and s.fuel_pct is not None:
            used = max(0.0, run.fuel_start_pct - s.fuel_pct + run.fuel_added_pct)
        self._queue("power.generator_stopped", "generator", {
            "duration_s": round(now - run.started_mono, 3), "run_started": self._utc(run.started_ts),
            "start_known": run.start_known, "fuel_start_pct": run.fuel_start_pct, "fuel_end_pct": s.fuel_pct,
            "fuel_added_pct": _r(run.fuel_added_pct), "fuel_used_pct": _r(used),
            "fuel_used_litres": _r(self._litres(used)), "burn_rate_pct_h": _r(self._burn.rate_pct_h, 3),
            "burn_learned_h": _r(self._burn.learned_h, 3),
            "hours_left": _r(self._hours_left(s.fuel_pct, self._burn.rate_pct_h)),
        })

    def _fuel_reading(self, pct: float, now_ts: float, now: float) -> None:
        s = self._state
        previous = s.fuel_pct
        s.fuel_pct, s.fuel_read_ts = pct, now_ts
        running = bool(s.running)
        if previous is not None and pct - previous >= REFUEL_JUMP_PCT:
            self._queue("power.refuelled", "generator", {
                "from_pct": previous, "to_pct": pct, "added_pct": _r(pct - previous),
                "added_litres": _r(self._litres(pct - previous)), "running": running})
            if s.run is not None:
                s.run.fuel_added_pct += pct - previous
                self._burn.refuelled(now, pct)
        elif s.run is not None:
            if s.run.fuel_start_pct is None:
                s.run.fuel_start_pct = pct
            self._burn.add(now, pct)
        rate = self._burn.current()[0]
        hours_left = self._hours_left(pct, rate)
        if s.fuel_emitted_pct is None or abs(pct - s.fuel_emitted_pct) >= LEVEL_STEP_PCT:
            self._queue("power.fuel_level", "generator", {
                "fuel_pct": pct, "fuel_litres": _r(self._litres(pct)), "running": running,
                "burn_rate_pct_h": _r(rate, 3), "hours_left": _r(hours_left),
                "reason": "startup" if s.fuel_emitted_pct is None else "change"})
            s.fuel_emitted_pct = pct
        self._refuel_alarm(pct, rate, hours_left, running, now)

    def _refuel_alarm(self, pct: float, rate: float | None, hours_left: float | None, running: bool,
                      now: float) -> None:
        s = self._state
        few_hours = hours_left is not None and hours_left < self._below_hours
        details = {"fuel_pct": pct, "fuel_litres": _r(self._litres(pct)), "hours_left": _r(hours_left),
                   "burn_rate_pct_h": _r(rate, 3), "running": running,
                   "refuel_below_pct": self._below_pct, "refuel_below_hours": self._below_hours}
        if s.refuel is None:
            # hours only count while running: a stopped generator burns nothing
            reason = "level" if pct < self._below_pct else "hours" if running and few_hours else None
            if reason is not None:
                s.refuel = {"reason": reason, "since": now}
                self._queue("power.refuel_needed", "generator", {"reason": reason, **details})
        elif pct >= self._below_pct + CLEAR_MARGIN_PCT and not (
                rate is not None and (pct - CLEAR_MARGIN_PCT) / rate < self._below_hours):
            # the same margin of fuel on the hours, so noise cannot flap it; it stays raised after the
            # generator stops: only fuel in the tank clears it
            alarm, s.refuel = s.refuel, None
            self._queue("power.refuel_needed_cleared", "generator", {
                "reason": alarm["reason"], "alarm_s": round(now - alarm["since"], 3), **details})

    # -- helpers -------------------------------------------------------------------------------
    def _hours_left(self, pct: float | None, rate: float | None) -> float | None:
        return None if pct is None or rate is None or rate <= 0 else pct / rate

    def _litres(self, pct: float | None) -> float | None:
        return None if pct is None or self._tank is None else round(pct / 100.0 * self._tank, 1)

    @staticmethod
    def _utc(ts: float | None) -> str | None:
        return None if ts is None else utc_timestamp(int(ts * 1e9))

    def _queue(self, kind: str, source: str, fields: dict[str, Any]) -> None:
        self._events.append((kind, f"power:{source}", fields))  # sent after the lock is released

    def _send(self, kind: str, source: str, fields: Mapping[str, Any]) -> None:
        try:
            self._emit(kind, source, fields)
        except Exception:  # the store refusing must not stop the power from being watched
            log.exception("power: could not record %s", kind)
