"""The one SQLite database: append-only hash-chained events, the MQTT outbox, migrations."""

from gateway.store.chain import VerifyResult
from gateway.store.events import Event, iter_events, verify
from gateway.store.writer import PendingEvent, StoreWriter

__all__ = ["Event", "PendingEvent", "StoreWriter", "VerifyResult", "iter_events", "verify"]
