"""Room monitoring: threshold alarms over probe readings (pure logic; the service feeds it)."""

from gateway.monitoring.thresholds import (
    ACK_EVENT,
    EVENT_KINDS,
    Acknowledgement,
    ActiveAlarm,
    AlarmBook,
    AlarmEvaluator,
    AlarmTransition,
    UnknownAlarmError,
    rebuild_alarm_book,
)

__all__ = [
    "ACK_EVENT",
    "EVENT_KINDS",
    "Acknowledgement",
    "ActiveAlarm",
    "AlarmBook",
    "AlarmEvaluator",
    "AlarmTransition",
    "UnknownAlarmError",
    "rebuild_alarm_book",
]
