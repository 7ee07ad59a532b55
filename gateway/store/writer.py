"""The one writer: a thread that owns every write to the database.

Callers queue requests (append an event, mark one delivered); the writer drains the queue,
commits a whole batch in one transaction (hash chain, outbox row, chain head), and only
then tells callers and the forwarder. Batching is what makes a durable commit per event
affordable on an SD card.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from gateway.config.models import OutboxConfig
from gateway.errors import DcgateError, StoreError
from gateway.store.chain import event_hash_from_digest, payload_digest
from gateway.store.database import open_for_writing
from gateway.store.events import (
    Event,
    last_event_head,
    outbox_depth,
    read_head,
    utc_timestamp,
    validate_event,
)
from gateway.store.ids import uuid7
from gateway.store.readings_history import fold_into_minutes, fold_minutes_into_hours, prunable

log = logging.getLogger(__name__)

MAX_BATCH = 5000
#: events stamped before this were written while the clock was unset (a Pi has no RTC and may boot
#: in 1970 until NTP answers); their age is unknowable, so they are never dropped for age
CLOCK_FLOOR = "2025-01-01T00:00:00.000Z"
_STOP = object()
_CHECKPOINT = object()


# One condition for every waiter, notified once per committed batch: most appended events are
# never waited for, and a threading.Event per event was a measurable share of the hot path.
_RESOLVED = threading.Condition()


class PendingEvent:
    """A queued event; `result()` waits until it is committed (or failed)."""

    __slots__ = ("done", "error", "event", "value")

    def __init__(self) -> None:
        self.done = False
        self.event: Event | None = None
        self.error: BaseException | None = None
        self.value: Any = None  # what an `inside` change returned

    def _resolve(self, event: Event | None, error: BaseException | None = None) -> None:
        """Record the outcome; the writer then wakes waiters once for the whole batch."""
        self.event, self.error, self.done = event, error, True

    def result(self, timeout: float | None = 10.0) -> Event:
        with _RESOLVED:
            finished = _RESOLVED.wait_for(lambda: self.done, timeout)
        if not finished:
            raise StoreError(f"event not committed within {timeout} s (store writer busy or stopped)")
        if isinstance(self.error, DcgateError):
            raise self.error  # a refused change (a NIP used twice, a revoked person) says so itself
        if self.error is not None:
            raise StoreError(f"event was not committed: {self.error}") from self.error
        assert self.event is not None
        return self.event


class _Change:
    """An event with a change to other tables, committed alone in one transaction with it."""

    __slots__ = ("inside", "kind", "payload", "pending", "source")

    def __init__(self, kind: str, source: str, payload: str, pending: PendingEvent,
                 inside: Callable[[sqlite3.Connection], Any]) -> None:
        self.kind, self.source, self.payload, self.pending, self.inside = kind, source, payload, pending, inside


def _wake_waiters() -> None:
    with _RESOLVED:
        _RESOLVED.notify_all()


def _spans(seqs: list[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7, 8] -> [(1, 3), (7, 8)]: PUBACKs come in order, so one DELETE covers a whole run."""
    spans: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if spans and seq == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], seq)
        else:
            spans.append((seq, seq))
    return spans


class StoreWriter:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "full",
        outbox: OutboxConfig | None = None,
        housekeeping_s: float = 10.0,
        readings: Any = None,
        on_commit: Callable[[int], None] | None = None,
        clock_ns: Callable[[], int] | None = None,
    ) -> None:
        self.path = path
        # what stamps each event (UTC ns); a replay of a past month (tests, imports) passes its own
        self._clock_ns = clock_ns
        self._synchronous = synchronous
        self._outbox_limits = outbox or OutboxConfig()
        self._readings = readings  # StoreConfig-like: readings_raw_days, readings_minute_days (None: keep raw)
        self._housekeeping_s = housekeeping_s
        self.on_commit = on_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._accepting = False
        self.last_error: str | None = None
        self.committed_total = 0
        db = open_for_writing(path, synchronous=synchronous)
        self._conn = db.conn
        head = read_head(db) or last_event_head(db)
        if head != last_event_head(db):
            # verify names the exact problem; the writer only refuses to extend a broken chain silently
            log.warning("chain head %s does not match the last event: run `dcgate log verify`", head[0])
        self._head_seq, self._head_hash = last_event_head(db)
        self._depth = outbox_depth(db)
        self._next_housekeeping = 0.0

    # -- the callers' side ---------------------------------------------------------------
    def start(self) -> None:
        self._accepting = True
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def append(self, kind: str, source: str, fields: Mapping[str, Any] | None = None,
               inside: Callable[[sqlite3.Connection], Any] | None = None) -> PendingEvent:
        """Queue an event; validated here, in the caller's thread, so bad input fails at its source.

        With `inside`, the writer runs ``inside(conn)`` in the same transaction as the event (a person
        added and its `person.added` record commit together or not at all); its return value is on
        ``pending.value`` and an exception it raises refuses both.
        """
        payload = validate_event(kind, source, fields or {})
        if not self._accepting:
            raise StoreError("the store writer is not running; event refused: " + kind)
        pending = PendingEvent()
        if inside is None:
            self._queue.put((kind, source, payload, pending))
        else:
            self._queue.put(_Change(kind, source, payload, pending, inside))
        return pending

    def append_and_wait(self, kind: str, source: str, fields: Mapping[str, Any] | None = None,
                        timeout: float = 10.0) -> Event:
        return self.append(kind, source, fields).result(timeout)

    def change(self, kind: str, source: str, fields: Mapping[str, Any],
               inside: Callable[[sqlite3.Connection], Any], timeout: float = 10.0) -> Any:
        """Run `inside(conn)` and record the event in one transaction; returns what `inside` returned."""
        pending = self.append(kind, source, fields, inside)
        pending.result(timeout)
        return pending.value

    def mark_delivered(self, seqs: Iterable[int]) -> None:
        """The broker acknowledged these: drop them from the outbox (in the next batch)."""
        self._queue.put(tuple(seqs))

    def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it (after erasing templates: the WAL keeps old pages)."""
        self._queue.put(_CHECKPOINT)

    def stop(self, timeout: float = 10.0) -> None:
        """Commit everything queued so far, then stop. Events appended after this are refused."""
        self._accepting = False
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("store writer did not stop within %.0f s", timeout)
                return
        self._conn.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def last_seq(self) -> int:
        return self._head_seq

    @property
    def outbox_depth(self) -> int:
        return self._depth

    # -- the writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            timeout = max(0.0, self._next_housekeeping - time.monotonic())
            try:
                first = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                first = None
            batch = [] if first is None else [first]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [item for item in batch if item is not _STOP]
                batch += self._drain()
            checkpoint = _CHECKPOINT in batch
            if checkpoint:
                batch = [item for item in batch if item is not _CHECKPOINT]
            if batch:
                self._commit_in_order(batch)
            if checkpoint:
                self._checkpoint()
            # bounds are checked every housekeeping_s (as configured), not after every batch: checking
            # whenever the outbox is full would record one `outbox.dropped` per batch during an outage
            if stopping or time.monotonic() >= self._next_housekeeping:
                try:
                    self._housekeeping()
                except Exception:  # housekeeping must never take the one writer down with it
                    self._next_housekeeping = time.monotonic() + self._housekeeping_s
                    self.last_error = "housekeeping failed; see the service log"
                    log.exception("store: housekeeping failed")

    def _checkpoint(self) -> None:
        try:
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            log.error("store: WAL checkpoint failed: %s", exc)
            return
        if busy:  # a reader held an old snapshot; the next automatic checkpoint overwrites those frames
            log.info("store: WAL checkpoint could not truncate while a reader was active")

    def _drain(self) -> list[Any]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _commit_in_order(self, batch: list[Any]) -> None:
        """Plain events commit as one batch; a `_Change` commits alone, so its failure refuses only itself."""
        plain: list[Any] = []
        for item in batch:
            if isinstance(item, _Change):
                if plain:
                    self._commit(plain)
                    plain = []
                record = (item.kind, item.source, item.payload, item.pending)
                self._commit([record], inside=item.inside)
            else:
                plain.append(item)
        if plain:
            self._commit(plain)

    def _commit(self, batch: list[Any], *, drop_through: int | None = None,
                inside: Callable[[sqlite3.Connection], None] | None = None) -> bool:
        """Commit a batch in one transaction; `drop_through` also removes outbox rows up to that seq,
        and `inside(conn)` runs in the same transaction first (so a change and its record commit together)."""
        seq, prev_hash = self._head_seq, self._head_hash
        rows: list[tuple[Any, ...]] = []
        pendings: list[PendingEvent] = []
        delivered: list[int] = []
        for item in batch:
            if isinstance(item, tuple) and len(item) == 4 and isinstance(item[3], PendingEvent):
                kind, source, payload, pending = item
                seq += 1
                event_id, ts = uuid7.text(), utc_timestamp(self._clock_ns() if self._clock_ns else None)
                body_digest = payload_digest(payload)
                digest = event_hash_from_digest(seq, event_id, ts, kind, source, body_digest, prev_hash)
                rows.append((seq, event_id, ts, kind, source, payload, prev_hash, digest, body_digest))
                pendings.append(pending)
                prev_hash = digest
            else:
                delivered.extend(item)
        conn = self._conn
        dropped = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            if drop_through is not None:
                dropped = conn.execute("DELETE FROM outbox WHERE seq <= ?", (drop_through,)).rowcount
            value = inside(conn) if inside is not None else None
            if rows:
                conn.executemany(
                    "INSERT INTO events (seq, id, ts, kind, source, payload, prev_hash, hash, payload_sha256) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                conn.executemany("INSERT INTO outbox (seq) VALUES (?)", [(r[0],) for r in rows])
                conn.execute(
                    "INSERT INTO chain_head (one, seq, hash) VALUES (1, ?, ?) "
                    "ON CONFLICT (one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                    (seq, prev_hash),
                )
            removed = sum(
                conn.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", span).rowcount
                for span in _spans(delivered)
            )
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if not isinstance(exc, sqlite3.Error) and inside is None:
                raise
            if isinstance(exc, DcgateError):  # a change refused on its merits; the store itself is fine
                log.info("store: change refused: %s", exc)
            else:
                self.last_error = f"commit failed: {exc}"
                log.error("store: %s (%d events refused)", self.last_error, len(rows))
            for pending in pendings:
                pending._resolve(None, exc)
            _wake_waiters()
            return False
        self._head_seq, self._head_hash = seq, prev_hash
        self._depth += len(rows) - max(removed, 0) - dropped
        self.committed_total += len(rows)
        self.last_error = None
        for pending, row in zip(pendings, rows, strict=True):
            pending.value = value
            pending._resolve(Event(*row[:8]))
        if pendings:
            _wake_waiters()
        if rows and self.on_commit is not None:
            self.on_commit(seq)
        return True

    def _housekeeping(self) -> None:
        """Keep the outbox within its bounds; every drop is itself recorded as an event."""
        self._next_housekeeping = time.monotonic() + self._housekeeping_s
        limits = self._outbox_limits
        cutoff = utc_timestamp(time.time_ns() - int(limits.max_age_days * 86400 * 1e9))
        conn = self._conn
        row = conn.execute("SELECT max(seq) FROM events WHERE ts < ? AND ts >= ?", (cutoff, CLOCK_FLOOR)).fetchone()
        if row[0] is not None:
            self._drop_through(row[0], "max_age", f"older than {limits.max_age_days:g} days")
        if self._readings is not None:
            self._compact_readings()
        over = self._depth - limits.max_rows
        if over > 0:
            # leave room for the event that records this drop
            last = conn.execute("SELECT seq FROM outbox ORDER BY seq LIMIT 1 OFFSET ?", (over,)).fetchone()
            self._drop_through(last[0] if last else self._head_seq, "max_rows", f"over {limits.max_rows} rows")

    def _compact_readings(self) -> None:
        """Old readings give up their payload to the minute aggregates; old minutes become hours."""
        now = time.time_ns()
        raw_cutoff = utc_timestamp(now - int(self._readings.readings_raw_days * 86400e9))
        rows = prunable(self._conn, raw_cutoff, CLOCK_FLOOR)
        if rows:
            fields = {"pruned_kind": "env.reading", "count": len(rows), "first_seq": rows[0][0],
                      "last_seq": rows[-1][0], "before": raw_cutoff}
            record = ("log.pruned", "gateway", validate_event("log.pruned", "gateway", fields), PendingEvent())
            # the aggregates, the emptied payloads and their record commit together, or none of them
            self._commit([record], inside=lambda conn: fold_into_minutes(conn, rows))
        minute_cutoff = utc_timestamp(now - int(self._readings.readings_minute_days * 86400e9))[:16]
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            fold_minutes_into_hours(conn, minute_cutoff)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            log.error("store: folding minute aggregates failed: %s", exc)

    def _drop_through(self, last_seq: int, reason: str, detail: str) -> None:
        conn = self._conn
        first, last, count = conn.execute(
            "SELECT min(seq), max(seq), count(*) FROM outbox WHERE seq <= ?", (last_seq,)
        ).fetchone()
        if not count:
            return
        fields = {"count": count, "first_seq": first, "last_seq": last, "reason": reason, "detail": detail}
        record = ("outbox.dropped", "gateway", validate_event("outbox.dropped", "gateway", fields), PendingEvent())
        # the drop and its record commit together: a crash can never leave a silent drop
        if self._commit([record], drop_through=last_seq):
            log.warning("outbox: dropped %d undelivered event(s) seq %d..%d (%s)", count, first, last, detail)
