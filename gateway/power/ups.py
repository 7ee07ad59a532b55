"""Watch the UPS through upsd and turn what changes into `power.*` events.

Transitions only, no periodic reading events: the store keeps everything forever, and a line every
5 s would bury the dozen events a month that matter. The current values are in `state()` (for
`dcgate status` and a retained MQTT state topic). While on battery the outage is tracked (lowest
battery, highest load) and reported with `power.mains_restored`.

Nothing is invented: while upsd cannot be reached we know nothing, so a change that happened
during that time is reported when it is seen, with `uncertain_s` saying how long it may already
have been true (`None`: no earlier reading at all, e.g. the gateway started during an outage).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from drivers.nut.client import NutClient, NutError
from gateway.config.ups import UpsConfig
from gateway.store.events import utc_timestamp

log = logging.getLogger(__name__)

Emit = Callable[[str, str, Mapping[str, Any]], object]

#: the `ups.status` flags that NUT defines (a driver may send others; they are kept, not interpreted)
KNOWN_FLAGS = frozenset({
    "OL", "OB", "LB", "HB", "RB", "CHRG", "DISCHRG", "BYPASS", "CAL", "OFF", "OVER", "TRIM", "BOOST", "FSD",
})
#: flag -> (event when it appears, event when it goes away); OL/OB are handled as the outage
ALARM_FLAGS = {
    "LB": ("power.battery_low", "power.battery_low_cleared"),
    "RB": ("power.replace_battery", "power.replace_battery_cleared"),
    "OVER": ("power.overload", "power.overload_cleared"),
    "BYPASS": ("power.bypass", "power.bypass_cleared"),
    "FSD": ("power.forced_shutdown", None),
}


def parse_status(text: str) -> frozenset[str]:
    """`"OB DISCHRG LB"` -> {"OB", "DISCHRG", "LB"}."""
    return frozenset(text.upper().split())


def _number(value: str | None) -> float | None:
    """A NUT value as a number, or None when absent or not numeric (never a made-up 0)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


@dataclass(frozen=True)
class UpsReading:
    flags: frozenset[str]
    status: str
    battery_charge_pct: float | None
    runtime_s: float | None
    load_pct: float | None
    input_voltage: float | None

    @classmethod
    def from_vars(cls, variables: Mapping[str, str]) -> UpsReading:
        status = variables.get("ups.status", "")
        return cls(
            flags=parse_status(status), status=status,
            battery_charge_pct=_number(variables.get("battery.charge")),
            runtime_s=_number(variables.get("battery.runtime")),
            load_pct=_number(variables.get("ups.load")),
            input_voltage=_number(variables.get("input.voltage")),
        )

    @property
    def on_battery(self) -> bool:
        return "OB" in self.flags

    @property
    def on_mains(self) -> bool:
        return "OL" in self.flags and "OB" not in self.flags

    def values(self) -> dict[str, Any]:
        return {
            "battery_charge_pct": self.battery_charge_pct, "runtime_s": self.runtime_s,
            "load_pct": self.load_pct, "input_voltage": self.input_voltage,
        }


@dataclass
class Outage:
    started: str  # UTC timestamp of the reading that first saw OB
    started_mono: float
    uncertain_s: float | None  # how much earlier it may have begun (None: unknown)
    lowest_battery_pct: float | None = None
    highest_load_pct: float | None = None

    def track(self, reading: UpsReading) -> None:
        if reading.battery_charge_pct is not None:
            self.lowest_battery_pct = min(
                reading.battery_charge_pct, self.lowest_battery_pct if self.lowest_battery_pct is not None else 1e9
            )
        if reading.load_pct is not None:
            self.highest_load_pct = max(
                reading.load_pct, self.highest_load_pct if self.highest_load_pct is not None else -1e9
            )


@dataclass
class _State:
    reachable: bool | None = None
    reading: UpsReading | None = None
    last_reading_ts: float | None = None
    last_reading_mono: float | None = None
    last_attempt_ts: float | None = None
    unreachable_since_mono: float | None = None
    error: str | None = None
    outage: Outage | None = None
    flags_seen: frozenset[str] = field(default_factory=frozenset)


class UpsMonitor:
    """One thread: read the UPS every `interval_s`, emit `power.*` on transitions."""

    def __init__(self, client: NutClient, ups_name: str, interval_s: float, emit: Emit,
                 clock: ModuleType | Any = time) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._client = client
        self.ups_name = ups_name
        self._interval_s = interval_s
        self._emit = emit
        self._clock = clock
        self._source = f"ups:{ups_name}"
        self._state = _State()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ups-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._client.timeout_s * 2 + 5)
        self._client.close()

    def state(self) -> dict[str, Any]:
        """A snapshot for `dcgate status` / a retained MQTT state topic."""
        with self._lock:
            s = self._state
            reading = s.reading if s.reachable else None
            outage = s.outage
            return {
                "ups": self.ups_name,
                "reachable": s.reachable,
                "error": s.error,
                "status": reading.status if reading else None,
                "flags": sorted(reading.flags) if reading else [],
                "on_battery": reading.on_battery if reading else None,
                **(reading.values() if reading else dict.fromkeys(
                    ("battery_charge_pct", "runtime_s", "load_pct", "input_voltage"))),
                "last_reading_ts": s.last_reading_ts,
                "last_attempt_ts": s.last_attempt_ts,
                "outage": None if outage is None else {
                    "started": outage.started,
                    "duration_s": round(self._clock.monotonic() - outage.started_mono, 3),
                    "uncertain_s": outage.uncertain_s,
                    "lowest_battery_pct": outage.lowest_battery_pct,
                    "highest_load_pct": outage.highest_load_pct,
                },
            }

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        next_due = self._clock.monotonic()
        while not self._stop.is_set():
            self.poll_once()
            # a fixed cadence, not interval + read time; a slow read does not pile up polls
            next_due = max(next_due + self._interval_s, self._clock.monotonic())
            self._stop.wait(max(0.0, next_due - self._clock.monotonic()))

    def poll_once(self) -> None:
        """Read the UPS once and emit what changed (public so a `read now` request can use it)."""
        now_ts = self._clock.time()
        try:
            variables = self._client.list_vars(self.ups_name)
        except NutError as exc:
            self._failed(str(exc), now_ts)
            return
        except Exception as exc:  # a bug must not kill the monitor thread; it shows as unreachable
            log.exception("ups %s: unexpected error", self.ups_name)
            self._failed(f"internal error: {exc}", now_ts)
            return
        self._read(UpsReading.from_vars(variables), now_ts, self._clock.monotonic())

    def _failed(self, error: str, now_ts: float) -> None:
        with self._lock:
            s = self._state
            first = s.reachable is not False
            s.reachable, s.error, s.last_attempt_ts = False, error, now_ts
            if first:
                s.unreachable_since_mono = self._clock.monotonic()
        if first:
            log.warning("ups %s unreachable: %s", self.ups_name, error)
            self._send("power.ups_unreachable", {"error": error})

    def _read(self, reading: UpsReading, now_ts: float, now_mono: float) -> None:
        events: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            s = self._state
            previous = s.reading
            since_previous = None if s.last_reading_mono is None else round(now_mono - s.last_reading_mono, 3)
            if s.reachable is None:
                # once per start: what the UPS says now, so the outage log can close an outage whose
                # end happened while the gateway was not running
                events.append(("power.ups_status", {**reading.values(), "status": reading.status,
                                                    "reason": "startup"}))
            if s.reachable is False:
                down_s = now_mono - (s.unreachable_since_mono or now_mono)
                events.append(("power.ups_reachable", {"unreachable_s": round(down_s, 3)}))
            s.reachable, s.error = True, None
            s.reading, s.last_reading_ts, s.last_reading_mono, s.last_attempt_ts = reading, now_ts, now_mono, now_ts

            if reading.on_battery:
                if s.outage is None:
                    # it went on battery somewhere between the previous reading (if it was on mains) and now
                    was_on_mains = previous is not None and previous.on_mains
                    s.outage = Outage(utc_timestamp(int(now_ts * 1e9)), now_mono,
                                      since_previous if was_on_mains else None)
                    s.outage.track(reading)
                    events.append(("power.mains_lost", {
                        **reading.values(), "status": reading.status, "uncertain_s": s.outage.uncertain_s,
                    }))
                else:
                    s.outage.track(reading)
            elif reading.on_mains and s.outage is not None:
                outage, s.outage = s.outage, None
                events.append(("power.mains_restored", {
                    "duration_s": round(now_mono - outage.started_mono, 3),
                    "outage_started": outage.started,
                    "lowest_battery_pct": outage.lowest_battery_pct,
                    "highest_load_pct": outage.highest_load_pct,
                    # the mains may have come back any time since the last reading on battery
                    "uncertain_s": since_previous,
                    **reading.values(), "status": reading.status,
                }))
            # neither OL nor OB (e.g. WAIT while the driver starts, OFF): no guess either way

            # alarm flags: compared with the last reading we actually have, so an unreachable
            # period neither repeats a standing alarm nor invents one
            for flag, (raised, cleared) in ALARM_FLAGS.items():
                was, now = flag in s.flags_seen, flag in reading.flags
                if now and not was:
                    events.append((raised, {**reading.values(), "status": reading.status}))
                elif was and not now and cleared is not None:
                    events.append((cleared, {**reading.values(), "status": reading.status}))
            s.flags_seen = reading.flags
        for kind, fields in events:
            self._send(kind, fields)

    def _send(self, kind: str, fields: Mapping[str, Any]) -> None:
        try:
            self._emit(kind, self._source, {"ups": self.ups_name, **fields})
        except Exception:  # the store refusing must not stop the UPS from being watched
            log.exception("ups %s: could not record %s", self.ups_name, kind)


def client_from_config(config: UpsConfig) -> NutClient:
    """The NutClient a `[ups] driver = "nut"` table describes."""
    return NutClient(
        config.host, config.port, username=config.username, password=config.read_password(),
        login_ups=config.name if config.username else None, timeout_s=config.timeout_s,
    )
