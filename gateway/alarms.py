"""The service's alarms: one evaluator per probe, the book of active alarms, and their events.

Evaluators are fed every probe poll (values or failures) and ticked by the service's health
loop, so a probe that falls silent raises `stale` even though nothing is read. The book is
rebuilt from the store at start, so alarms and their acknowledgements survive a restart.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.config.models import Config
from gateway.monitoring.thresholds import ACK_EVENT, AlarmBook, AlarmEvaluator, AlarmTransition, rebuild_alarm_book
from gateway.store.database import open_for_reading
from gateway.store.events import iter_events

Emit = Callable[[str, str, Mapping[str, Any]], Any]

ALARM_EVENT_PATTERNS = ("env.alarm.*", ACK_EVENT)


def load_alarm_book(config: Config) -> AlarmBook:
    """The active alarms as the store records them (works whether or not the gateway runs)."""
    if not config.database_path.exists():
        return AlarmBook()
    db = open_for_reading(config.database_path)
    try:
        events = [e for pattern in ALARM_EVENT_PATTERNS for e in iter_events(db, kind=pattern)]
    finally:
        db.close()
    return rebuild_alarm_book(sorted(events, key=lambda e: e.seq))


def alarm_as_dict(alarm: Any) -> dict[str, Any]:
    return dataclasses.asdict(alarm) | {"acknowledged": alarm.acknowledged}


class AlarmManager:
    def __init__(self, config: Config, emit: Emit, clock: Callable[[], float] = time.time) -> None:
        self._emit = emit
        self._clock = clock
        self._lock = threading.Lock()  # the poller, the health loop and control requests all call in
        self.book = load_alarm_book(config)
        now = clock()
        self._evaluators: dict[str, AlarmEvaluator] = {}
        for probe in config.probes:
            evaluator = AlarmEvaluator(probe.name, config.thresholds_for(probe.name), start=now)
            evaluator.restore(self.book.active(probe.name))
            self._evaluators[probe.name] = evaluator

    def observe(self, probe: str, temperature_c: float | None, humidity_pct: float | None, status: str) -> None:
        with self._lock:
            transitions = self._evaluators[probe].observe(self._clock(), temperature_c, humidity_pct, status)
            self._record(transitions)

    def tick(self) -> None:
        with self._lock:
            now = self._clock()
            for evaluator in self._evaluators.values():
                self._record(evaluator.tick(now))

    def acknowledge(self, alarm_id: str, by: str, note: str) -> dict[str, Any]:
        with self._lock:
            fields = self.book.acknowledge(alarm_id, by, note, self._clock())
            self._emit(ACK_EVENT, f"probe:{fields['probe']}", fields)
            return fields

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [alarm_as_dict(a) for a in self.book.active()]

    def _record(self, transitions: list[AlarmTransition]) -> None:
        for transition in transitions:
            self.book.apply(transition)
            self._emit(transition.event_kind, f"probe:{transition.probe}", transition.event_fields())
