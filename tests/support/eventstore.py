"""Read a gateway's real SQLite event store from a test (read-only, like `dcgate events` does)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from gateway.store.database import open_for_reading
from gateway.store.events import RESERVED_FIELDS, Event, iter_events


def committed_events(database_path: Path, *, kind: str | None = None) -> list[Event]:
    """Every committed event (or those of one kind), in commit (seq) order."""
    db = open_for_reading(database_path)
    try:
        return list(iter_events(db, kind=kind))
    finally:
        db.close()


def committed_ids(database_path: Path) -> list[str]:
    """The ids of every committed event, in commit (seq) order."""
    return [event.id for event in committed_events(database_path)]


def outbox_seqs(database_path: Path) -> list[int]:
    """Seqs still waiting in the outbox (not acknowledged by the broker, not dropped), oldest first."""
    db = open_for_reading(database_path)
    try:
        return [row[0] for row in db.conn.execute("SELECT seq FROM outbox ORDER BY seq")]
    finally:
        db.close()


def check_delivery(committed: list[Event], received: list[dict[str, Any]]) -> None:
    """Assert the forwarding contract for everything committed, against what a subscriber received.

    At least once: every committed event arrived. Duplicates are the same event (same id, identical
    content). Order: the first arrival of each id is in commit (seq) order. And what arrived is
    exactly what was committed (seq, hash chain fields, time, kind, source and the event's own fields).
    """
    by_id = {event.id: event for event in committed}
    first: dict[str, dict[str, Any]] = {}
    first_order: list[str] = []
    for message in received:
        event_id = message["id"]
        if event_id not in first:
            first[event_id] = message
            first_order.append(event_id)
        else:
            assert message == first[event_id], f"duplicate of {event_id} differs:\n{message}\n{first[event_id]}"
    missing = [event for event in committed if event.id not in first]
    assert not missing, (
        f"{len(missing)} of {len(committed)} committed events never reached the subscriber, "
        f"e.g. seq {[e.seq for e in missing[:10]]}"
    )
    unknown = [event_id for event_id in first_order if event_id not in by_id]
    assert not unknown, f"subscriber received {len(unknown)} events that are not in the store: {unknown[:5]}"
    seqs = [by_id[event_id].seq for event_id in first_order]
    out_of_order = [(a, b) for a, b in itertools.pairwise(seqs) if b <= a]
    assert not out_of_order, f"first arrivals are not in commit order, e.g. seq {out_of_order[:5]}"
    assert seqs == [event.seq for event in committed]
    for event_id, message in first.items():
        event = by_id[event_id]
        envelope = {"id": event.id, "ts": event.ts, "kind": event.kind, "source": event.source, "seq": event.seq,
                    "hash": event.hash, "prev_hash": event.prev_hash}
        assert {key: message[key] for key in envelope} == envelope, f"event seq {event.seq} arrived altered"
        own = {key: value for key, value in message.items() if key not in RESERVED_FIELDS}
        assert own == event.fields, f"event seq {event.seq} arrived with other fields: {own} != {event.fields}"
