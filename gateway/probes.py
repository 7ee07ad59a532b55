"""Poll every configured probe at its own interval and turn what it says into events.

One thread and a heap of due times serve all probes, sleeping until the next one is due:
no busy loop, no thread per probe. A failed read is reported as a failure, never as a value.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from drivers.climate import ClimateProbe
from drivers.errors import SensorError, UnknownDeviceError

log = logging.getLogger(__name__)

Emit = Callable[[str, str, Mapping[str, Any]], object]
StateListener = Callable[[str, "ProbeState"], None]


@dataclass
class ProbeState:
    status: str = "unknown"  # unknown | ok | fault
    temperature_c: float | None = None
    humidity_pct: float | None = None
    last_reading_ts: float | None = None
    last_attempt_ts: float | None = None
    error: str | None = None
    failures: int = 0


class ProbePoller:
    def __init__(self, probes: Mapping[str, ClimateProbe], intervals: Mapping[str, float], emit: Emit,
                 on_state: StateListener | None = None) -> None:
        """`on_state(name, state)` is told after every poll (for retained state topics)."""
        self._on_state = on_state
        self._probes = dict(probes)
        self._intervals = dict(intervals)
        self._emit = emit
        self._states = {name: ProbeState() for name in self._probes}
        # a driver is not assumed thread-safe: the poller and `read_now` take turns per probe
        self._driver_locks = {name: threading.Lock() for name in self._probes}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._read_now: set[str] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self._probes:
            return
        self._thread = threading.Thread(target=self._run, name="probe-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        for probe in self._probes.values():
            probe.close()

    def read_soon(self, name: str) -> None:
        """Read this probe at once (after `dcgate sim set`), not at its next interval."""
        if name not in self._probes:
            raise UnknownDeviceError(f"no probe {name!r}; configured: {', '.join(sorted(self._probes)) or 'none'}")
        with self._lock:
            self._read_now.add(name)
        self._wake.set()

    def read_now(self, name: str) -> dict[str, Any]:
        """One reading now, for `dcgate read probe` (not recorded: the poller's readings are the log)."""
        if name not in self._probes:
            raise UnknownDeviceError(f"no probe {name!r}; configured: {', '.join(sorted(self._probes)) or 'none'}")
        with self._driver_locks[name]:
            reading = self._probes[name].read()
        return {"probe": name, "temperature_c": reading.temperature_c, "humidity_pct": reading.humidity_pct}

    def states(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: dict(vars(state)) for name, state in self._states.items()}

    def _run(self) -> None:
        now = time.monotonic()
        due = [(now, name) for name in sorted(self._probes)]
        heapq.heapify(due)
        while not self._stop.is_set():
            with self._lock:
                urgent, self._read_now = self._read_now, set()
            for name in sorted(urgent):
                self._poll(name)
            when, name = due[0]
            delay = when - time.monotonic()
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
                continue
            heapq.heapreplace(due, (max(when + self._intervals[name], time.monotonic()), name))
            self._poll(name)

    def _poll(self, name: str) -> None:
        probe = self._probes[name]
        state = self._states[name]
        try:
            with self._driver_locks[name]:
                reading = probe.read()
        except SensorError as exc:
            self._record_failure(name, state, str(exc))
            return
        except Exception as exc:  # a driver bug must not stop the other probes
            log.exception("probe %s: unexpected driver error", name)
            self._record_failure(name, state, f"driver error: {exc}")
            return
        with self._lock:
            recovered = state.status == "fault"
            state.status, state.error, state.failures = "ok", None, 0
            state.temperature_c, state.humidity_pct = reading.temperature_c, reading.humidity_pct
            state.last_reading_ts = state.last_attempt_ts = time.time()
            snapshot = replace(state)
        source = f"probe:{name}"
        if recovered:
            self._emit("env.probe_recovered", source, {"probe": name})
        self._emit(
            "env.reading", source,
            {"probe": name, "temperature_c": reading.temperature_c, "humidity_pct": reading.humidity_pct},
        )
        if self._on_state is not None:
            self._on_state(name, snapshot)

    def _record_failure(self, name: str, state: ProbeState, error: str) -> None:
        with self._lock:
            first = state.status != "fault"
            state.status, state.error = "fault", error
            state.failures += 1
            state.last_attempt_ts = time.time()
            # the last good value is not shown as current: a failed probe has no reading
            state.temperature_c = state.humidity_pct = None
            snapshot = replace(state)
        if self._on_state is not None:
            self._on_state(name, snapshot)
        if first:
            log.warning("probe %s failed: %s", name, error)
            self._emit("env.probe_failed", f"probe:{name}", {"probe": name, "error": error})
