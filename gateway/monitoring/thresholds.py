"""Threshold alarms for one probe: pure logic, the caller supplies every time stamp.

Semantics (what the tests check):

* **Bands.** Outside [low, high] of the standard is a `warning`; outside the wider critical limits is
  `critical`. High and low are separate alarms (`condition` "high" / "low"), one per quantity.
* **Escalation.** One condition has one alarm, whatever its severity. Going warning → critical or
  back emits a `severity_changed` transition with the *same* alarm id, never a clear/raise pair, so
  an operator's acknowledgement and the "since" time survive an escalation.
* **min_duration_s** delays raising *and escalating*: the level must hold continuously (every good
  reading beyond the limit) that long. A gap without good readings longer than `stale_after_s`
  restarts the count, because nobody knows what happened in between.
* **Clearing and de-escalating are immediate** once the value is back inside the limit by the
  hysteresis. Hysteresis already stops chatter at the limit, and the raise delay bounds flapping to
  one raise per `min_duration_s`; delaying the clear too would only tell people late that the room
  is back in standard.
* **Rate** (`quantity` "rate"): temperature now minus the lowest (highest) good temperature in the
  last `rate_window_s`; ≥ `rate_delta_c` is `rising_fast` (critical: air-conditioning failure?) or
  `falling_fast` (warning). It clears below `rate_delta_c - temperature_hysteresis_c`.
* **Probe** (`quantity` "probe"): `fault` (warning) when the driver has reported failure for
  `min_duration_s`; `stale` (warning) when no good reading came for `stale_after_s` and no fault is
  being reported (silence: the poller or driver hangs). Both clear on the next good reading.
* A failed or missing reading never counts as a value: it neither raises, clears nor keeps a value
  alarm pending. Value alarms stay active while the probe is failing (no evidence they cleared).
* Time stamps going backwards (an NTP step) are treated as "no time passed".
"""

from __future__ import annotations

import math
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from gateway.config.thresholds import ThresholdConfig
from gateway.errors import DcgateError, InvalidValueError

Severity = Literal["warning", "critical"]
Quantity = Literal["temperature", "humidity", "rate", "probe"]
Condition = Literal["high", "low", "rising_fast", "falling_fast", "stale", "fault"]
Status = Literal["ok", "fault", "stale"]
TransitionKind = Literal["raised", "cleared", "severity_changed"]

STATUSES = ("ok", "fault", "stale")
SEVERITY_RANK = {"warning": 1, "critical": 2}

#: event kinds the lead appends for each transition kind
EVENT_KINDS: dict[str, str] = {
    "raised": "env.alarm.raised",
    "cleared": "env.alarm.cleared",
    "severity_changed": "env.alarm.severity_changed",
}


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    kind: TransitionKind
    alarm_id: str
    probe: str
    quantity: Quantity
    condition: Condition
    severity: Severity
    value: float | None  # the reading (or change, for rate; seconds silent, for stale) that decided it
    limit: float | None  # the limit crossed (raise, escalate) or the clear point (clear)
    since: float  # when the condition began (caller's clock, seconds)
    at: float  # when this transition happened
    previous_severity: Severity | None = None  # severity_changed only
    duration_s: float | None = None  # cleared only: how long the alarm was active

    @property
    def event_kind(self) -> str:
        return EVENT_KINDS[self.kind]

    def event_fields(self) -> dict[str, Any]:
        """Fields for the event; `alarm_id`, not `id`, because `id` is reserved for the envelope."""
        fields: dict[str, Any] = {
            "alarm_id": self.alarm_id, "probe": self.probe, "quantity": self.quantity,
            "condition": self.condition, "severity": self.severity, "value": self.value, "limit": self.limit,
            "since": self.since, "at": self.at,
        }
        if self.kind == "severity_changed":
            fields["previous_severity"] = self.previous_severity
        if self.kind == "cleared":
            fields["duration_s"] = self.duration_s
        return fields


@dataclass
class _Rule:
    """One condition with ordered levels (warning, then critical) and hysteresis.

    `direction` +1 means "bad when above the limit", -1 "bad when below".
    """

    quantity: Quantity
    condition: Condition
    levels: list[tuple[Severity, float]]
    hysteresis: float
    direction: int
    inclusive: bool = False  # rate: a change of exactly rate_delta_c counts
    active: int = -1  # index into levels, -1 = no alarm
    alarm_id: str | None = None
    alarm_since: float = 0.0
    pending_since: list[float | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pending_since = [None] * len(self.levels)

    def held(self, index: int, value: float) -> bool:
        limit = self.levels[index][1]
        if index <= self.active:  # already at this level: stay until back inside by the hysteresis
            return self.direction * (value - limit) > -self.hysteresis
        beyond = self.direction * (value - limit)
        return beyond >= 0 if self.inclusive else beyond > 0

    def forget_pending(self) -> None:
        self.pending_since = [since if i <= self.active else None for i, since in enumerate(self.pending_since)]


class AlarmEvaluator:
    """Turns one probe's observations into alarm transitions. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        probe: str,
        config: ThresholdConfig,
        *,
        start: float | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.probe = probe
        self.config = config
        self._new_id = new_id
        c = config
        t_hyst = c.temperature_hysteresis_c
        self._rules: list[_Rule] = [
            _Rule("temperature", "high",
                  [("warning", c.temperature_high_c), ("critical", c.temperature_critical_high_c)], t_hyst, +1),
            _Rule("temperature", "low", [("warning", c.temperature_low_c), ("critical", c.temperature_critical_low_c)],
                  t_hyst, -1),
            _Rule("humidity", "high", [("warning", c.humidity_high_pct), ("critical", c.humidity_critical_high_pct)],
                  c.humidity_hysteresis_pct, +1),
            _Rule("humidity", "low", [("warning", c.humidity_low_pct), ("critical", c.humidity_critical_low_pct)],
                  c.humidity_hysteresis_pct, -1),
        ]
        self._rise = _Rule("rate", "rising_fast", [("critical", c.rate_delta_c)], c.temperature_hysteresis_c, +1,
                           inclusive=True)
        self._fall = _Rule("rate", "falling_fast", [("warning", c.rate_delta_c)], c.temperature_hysteresis_c, +1,
                           inclusive=True)
        self._fault = _Rule("probe", "fault", [("warning", 0.5)], 0.0, +1)
        self._stale = _Rule("probe", "stale", [("warning", c.stale_after_s)], 0.0, +1, inclusive=True)
        self._temps: deque[tuple[float, float]] = deque()
        self._last_t: float | None = start
        self._last_good: float | None = start  # silence is counted from the start until a good reading
        self._last_status: str = "ok"

    # -- inputs --------------------------------------------------------------------------
    def observe(
        self, t: float, temperature_c: float | None, humidity_pct: float | None, status: Status = "ok"
    ) -> list[AlarmTransition]:
        """One poll result. With status "fault"/"stale" the values are ignored (a failure is no value)."""
        if status not in STATUSES:
            raise InvalidValueError(f"observation status {status!r} is not one of {', '.join(STATUSES)}")
        t = self._clock(t)
        temperature = _number(temperature_c) if status == "ok" else None
        humidity = _number(humidity_pct) if status == "ok" else None
        good = temperature is not None or humidity is not None
        out: list[AlarmTransition] = []
        if good:
            if self._last_good is not None and t - self._last_good > self.config.stale_after_s:
                for rule in self._rules:  # continuity is broken: pending conditions start again
                    rule.forget_pending()
            self._last_good = t
        self._last_status = status if not good else "ok"
        # probe health first, so a recovery's clear comes before any value alarm it reveals
        if status == "fault" or good:  # only a good reading is evidence that the fault is over
            out += self._step(self._fault, t, 1.0 if status == "fault" else 0.0)
        out += self._check_stale(t)
        for rule in self._rules:
            value = temperature if rule.quantity == "temperature" else humidity
            if value is not None:
                out += self._step(rule, t, value)
        if temperature is not None and self.config.rate_alarm:
            out += self._rate(t, temperature)
        return out

    def tick(self, now: float) -> list[AlarmTransition]:
        """Time passes without an observation: only the stale alarm can change."""
        return self._check_stale(self._clock(now))

    def restore(self, alarms: Iterable[ActiveAlarm]) -> None:
        """Adopt this probe's alarms that were active before a restart (from `rebuild_alarm_book`).

        The next observation then clears them with their old id, or keeps them, instead of raising
        duplicates.
        """
        by_key = {(r.quantity, r.condition): r for r in self._all_rules()}
        for alarm in alarms:
            rule = by_key.get((alarm.quantity, alarm.condition))
            if alarm.probe != self.probe or rule is None:
                continue
            index = next((i for i, (sev, _) in enumerate(rule.levels) if sev == alarm.severity), len(rule.levels) - 1)
            rule.active, rule.alarm_id, rule.alarm_since = index, alarm.alarm_id, alarm.since
            rule.pending_since = [alarm.since if i <= index else None for i in range(len(rule.levels))]

    def active(self) -> list[tuple[str, Quantity, Condition, Severity]]:
        """(alarm id, quantity, condition, severity) of every alarm this evaluator holds raised."""
        return [(r.alarm_id, r.quantity, r.condition, r.levels[r.active][0]) for r in self._all_rules()
                if r.active >= 0 and r.alarm_id is not None]

    # -- internals -----------------------------------------------------------------------
    def _all_rules(self) -> list[_Rule]:
        return [*self._rules, self._rise, self._fall, self._fault, self._stale]

    def _clock(self, t: float) -> float:
        if not math.isfinite(t):
            raise InvalidValueError(f"observation time {t!r} is not a finite number")
        if self._last_t is not None and t < self._last_t:
            t = self._last_t
        if self._last_good is None:
            self._last_good = t
        self._last_t = t
        return t

    def _check_stale(self, t: float) -> list[AlarmTransition]:
        silent = t - (self._last_good if self._last_good is not None else t)
        if self._last_status == "fault":
            if self._stale.active >= 0:  # silence turned into a reported fault: still no good reading
                return []
            silent = 0.0  # the fault alarm says why; stale would say it twice
        # stale is "held" once silence reaches stale_after_s; it needs no extra min_duration
        out = self._step(self._stale, t, silent, min_duration=0.0)
        if out and out[0].kind == "raised":  # the alarm began when the silence did, not now
            self._stale.alarm_since = t - silent
            out = [replace(out[0], since=self._stale.alarm_since)]
        return out

    def _rate(self, t: float, temperature: float) -> list[AlarmTransition]:
        window = self.config.rate_window_s
        self._temps.append((t, temperature))
        while self._temps and self._temps[0][0] < t - window:
            self._temps.popleft()
        values = [v for _, v in self._temps]
        out = self._step(self._rise, t, temperature - min(values))
        out += self._step(self._fall, t, max(values) - temperature)
        return out

    def _step(self, rule: _Rule, t: float, value: float, *, min_duration: float | None = None) -> list[AlarmTransition]:
        wait = self.config.min_duration_s if min_duration is None else min_duration
        held = [rule.held(i, value) for i in range(len(rule.levels))]
        for i, is_held in enumerate(held):
            if not is_held:
                rule.pending_since[i] = None
            elif rule.pending_since[i] is None:
                rule.pending_since[i] = t
        new = -1
        for i in reversed(range(len(rule.levels))):
            since = rule.pending_since[i]
            if held[i] and since is not None and (i <= rule.active or t - since >= wait):
                new = i
                break
        old = rule.active
        if new == old:
            return []
        rule.active = new
        base = AlarmTransition(
            kind="raised", alarm_id=rule.alarm_id or "", probe=self.probe, quantity=rule.quantity,
            condition=rule.condition, severity=rule.levels[max(new, 0)][0], value=_round(value),
            limit=rule.levels[max(new, 0)][1], since=rule.alarm_since, at=t,
        )
        if old < 0:
            rule.alarm_id = self._new_id()
            first = rule.pending_since[0]
            rule.alarm_since = first if first is not None else t
            return [replace(base, alarm_id=rule.alarm_id, since=rule.alarm_since)]
        if new < 0:
            old_severity, old_limit = rule.levels[old]
            clear_point = old_limit - rule.direction * rule.hysteresis
            rule.alarm_id = None
            return [replace(base, kind="cleared", severity=old_severity, limit=_round(clear_point),
                            duration_s=_round(t - rule.alarm_since))]
        # a severity change: same alarm id; the limit is the one crossed (escalate) or its clear point
        limit = rule.levels[new][1] if new > old else rule.levels[old][1] - rule.direction * rule.hysteresis
        return [replace(base, kind="severity_changed", previous_severity=rule.levels[old][0], limit=_round(limit))]


def _number(value: float | None) -> float | None:
    """A value only if it is a finite number: NaN or None from a driver is no reading."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _round(value: float) -> float:
    return round(float(value), 3)


# -- the book of active alarms -------------------------------------------------------------

ACK_EVENT = "alarm.acknowledged"
_KEPT_CLEARED = 1000  # remembered so "ack" of a just-cleared alarm says so, not "unknown"


class UnknownAlarmError(DcgateError, KeyError):
    """`dcgate alarm ack` named an alarm that is not active (the lead may move this to gateway/errors.py)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown alarm"


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    by: str
    note: str
    at: float


@dataclass(frozen=True, slots=True)
class ActiveAlarm:
    alarm_id: str
    probe: str
    quantity: Quantity
    condition: Condition
    severity: Severity
    value: float | None
    limit: float | None
    since: float
    raised_at: float
    acknowledgements: tuple[Acknowledgement, ...] = ()

    @property
    def acknowledged(self) -> bool:
        return bool(self.acknowledgements)


class AlarmBook:
    """Active alarms and their acknowledgements. Acknowledging never clears: only the room can."""

    def __init__(self) -> None:
        self._active: dict[str, ActiveAlarm] = {}
        self._cleared: OrderedDict[str, float] = OrderedDict()

    def apply(self, transition: AlarmTransition) -> None:
        self.apply_event(transition.event_kind, transition.event_fields())

    def apply_event(self, kind: str, fields: dict[str, Any]) -> None:
        """Follow one stored event; unknown kinds and ids are ignored (the store is the truth)."""
        alarm_id = str(fields.get("alarm_id", ""))
        if kind == EVENT_KINDS["raised"]:
            self._active[alarm_id] = ActiveAlarm(
                alarm_id=alarm_id, probe=fields["probe"], quantity=fields["quantity"],
                condition=fields["condition"], severity=fields["severity"], value=fields.get("value"),
                limit=fields.get("limit"), since=fields["since"], raised_at=fields.get("at", fields["since"]),
            )
        elif kind == EVENT_KINDS["severity_changed"] and alarm_id in self._active:
            self._active[alarm_id] = replace(
                self._active[alarm_id], severity=fields["severity"], value=fields.get("value"),
                limit=fields.get("limit"),
            )
        elif kind == EVENT_KINDS["cleared"] and alarm_id in self._active:
            del self._active[alarm_id]
            self._cleared[alarm_id] = float(fields.get("at", 0.0))
            while len(self._cleared) > _KEPT_CLEARED:
                self._cleared.popitem(last=False)
        elif kind == ACK_EVENT and alarm_id in self._active:
            ack = Acknowledgement(by=fields["by"], note=fields.get("note", ""), at=fields["at"])
            alarm = self._active[alarm_id]
            self._active[alarm_id] = replace(alarm, acknowledgements=(*alarm.acknowledgements, ack))

    def active(self, probe: str | None = None) -> list[ActiveAlarm]:
        """Active alarms, oldest first (for `dcgate alarm list`)."""
        alarms = [a for a in self._active.values() if probe is None or a.probe == probe]
        return sorted(alarms, key=lambda a: (a.since, a.alarm_id))

    def get(self, alarm_id: str) -> ActiveAlarm:
        """The active alarm with this id, or with this unique id prefix (at least 4 characters, like git)."""
        wanted = alarm_id.strip().lower()
        if wanted in self._active:
            return self._active[wanted]
        if wanted in self._cleared:
            raise UnknownAlarmError(f"alarm {alarm_id!r} has already cleared; only active alarms can be acknowledged")
        matches = [a for key, a in self._active.items() if len(wanted) >= 4 and key.startswith(wanted)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownAlarmError(
                f"alarm id {alarm_id!r} matches {len(matches)} active alarms; type more of it "
                f"({', '.join(sorted(a.alarm_id for a in matches))})"
            )
        known = ", ".join(a.alarm_id for a in self.active()) or "none"
        raise UnknownAlarmError(f"no active alarm {alarm_id!r}; active: {known} (see `dcgate alarm list`)")

    def acknowledge(self, alarm_id: str, by: str, note: str, at: float) -> dict[str, Any]:
        """Record an acknowledgement; returns the fields of the `alarm.acknowledged` event to append."""
        name, text = by.strip(), note.strip()
        if not name or len(name) > 64:
            raise InvalidValueError(f"--by {by!r} must name who acknowledges (1 to 64 characters)")
        if len(text) > 1000:
            raise InvalidValueError(f"--note is {len(text)} characters; keep it under 1000")
        alarm = self.get(alarm_id)
        fields: dict[str, Any] = {
            "alarm_id": alarm.alarm_id, "probe": alarm.probe, "quantity": alarm.quantity,
            "condition": alarm.condition, "severity": alarm.severity, "by": name, "note": text, "at": at,
        }
        self.apply_event(ACK_EVENT, fields)
        return fields


def rebuild_alarm_book(events: Iterable[Any]) -> AlarmBook:
    """The active alarms after a restart, from stored events in commit order.

    `events` are `gateway.store.events.Event`s (anything with `.kind` and `.fields`), e.g.
    `iter_events(db, kind="env.alarm.*")` chained with `iter_events(db, kind="alarm.acknowledged")`
    and sorted by seq. Hand `book.active(probe)` to `AlarmEvaluator.restore`.
    """
    book = AlarmBook()
    for event in events:
        book.apply_event(event.kind, event.fields)
    return book
