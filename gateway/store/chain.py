"""The hash chain that makes the event log tamper-evident.

Each event's hash is SHA-256 over a canonical encoding of its own content *and* the hash of
the event before it, so altering, removing or reordering any committed event breaks every
link after it. The head (last seq and hash) is also kept in `chain_head`, so removing the
newest events is detected too; upstream receivers get `hash` and `prev_hash` with every
event and can anchor the chain outside this machine.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS_HASH = "0" * 64


# encoders made once: json.dumps with options builds a new encoder on every call (hot path)
_FIELDS_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_HASH_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def canonical_fields(fields: Mapping[str, Any]) -> str:
    """The one JSON spelling of an event's fields: sorted keys, no spaces, UTF-8, no NaN."""
    try:
        return _FIELDS_ENCODER.encode(fields)
    except ValueError:
        _reject_floats_that_json_cannot_hold(fields)  # names the value; json's own message does not
        raise


def _reject_floats_that_json_cannot_hold(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"field value {value!r} is not a finite number")
    if isinstance(value, Mapping):
        for item in value.values():
            _reject_floats_that_json_cannot_hold(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_floats_that_json_cannot_hold(item)


#: what a pruned event's payload column holds (never valid JSON, so never a real payload)
PRUNED = ""
#: the only kind whose payload may be pruned (readings, kept as aggregates); never the logbook
PRUNABLE_KIND = "env.reading"


def payload_digest(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def event_hash(seq: int, event_id: str, ts: str, kind: str, source: str, payload: str, prev_hash: str) -> str:
    """The chain hash. It covers the payload through its SHA-256, so an old reading's payload can be
    pruned (its digest kept) and every link and envelope field still verifies."""
    return event_hash_from_digest(seq, event_id, ts, kind, source, payload_digest(payload), prev_hash)


def event_hash_from_digest(seq: int, event_id: str, ts: str, kind: str, source: str, digest: str,
                           prev_hash: str) -> str:
    encoded = _HASH_ENCODER.encode([seq, event_id, ts, kind, source, digest, prev_hash]).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


def _pruning_problem(seq: int, kind: str, digest: str | None, ranges: Sequence[tuple[int, int]]) -> str | None:
    if kind != PRUNABLE_KIND:
        return f"payload removed from a {kind} event, which is never pruned"
    if not digest:
        return "payload removed without its digest"
    if not any(first <= seq <= last for first, last in ranges):
        return "payload removed outside any recorded log.pruned range"
    return None


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    bad_seq: int | None = None
    bad_id: str | None = None


Row = tuple[int, str, str, str, str, str, str, str]


def verify_chain(rows: Iterable[Row | tuple[Any, ...]], head: tuple[int, str] | None,
                 pruned_ranges: Sequence[tuple[int, int]] = ()) -> VerifyResult:
    """Walk rows (seq, id, ts, kind, source, payload, prev_hash, hash) in seq order.

    Stops at the first problem and names the event: content altered (hash mismatch), link
    altered (prev_hash not the previous hash), or events removed (a gap in seq, or fewer
    events than the recorded head).
    """
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    for row in rows:
        seq, event_id, ts, kind, source, payload, stored_prev, stored_hash = row[:8]
        stored_digest = row[8] if len(row) > 8 else None
        if seq < expected_seq:  # seq is the primary key: only a hand edit of seq gets here
            return VerifyResult(
                False, count, expected_seq - 1, prev_hash,
                f"sequence altered at event {event_id}: it has seq {seq} where seq {expected_seq} was expected",
                seq, event_id,
            )
        if seq != expected_seq:
            missing = f"seq {expected_seq}" if seq == expected_seq + 1 else f"seq {expected_seq} to {seq - 1}"
            return VerifyResult(
                False, count, expected_seq - 1, prev_hash,
                f"event(s) removed: {missing} missing before event {event_id} (seq {seq})", seq, event_id,
            )
        if stored_prev != prev_hash:
            return VerifyResult(
                False, count, seq - 1, prev_hash,
                f"link altered at event {event_id} (seq {seq}): prev_hash does not match the event before it",
                seq, event_id,
            )
        if payload == PRUNED:
            problem = _pruning_problem(seq, kind, stored_digest, pruned_ranges)
            if problem:
                return VerifyResult(False, count, seq - 1, prev_hash, f"{problem} in event {event_id} (seq {seq})",
                                    seq, event_id)
            digest = stored_digest
        else:
            digest = payload_digest(payload)
        if event_hash_from_digest(seq, event_id, ts, kind, source, str(digest), stored_prev) != stored_hash:
            return VerifyResult(
                False, count, seq - 1, prev_hash,
                f"content altered in event {event_id} (seq {seq}, kind {kind}): its hash does not match its content",
                seq, event_id,
            )
        if payload != PRUNED and stored_digest is not None and stored_digest != digest:
            # content and hash agree, but the kept digest was changed: pruning would later trust it
            return VerifyResult(
                False, count, seq - 1, prev_hash,
                f"payload digest altered in event {event_id} (seq {seq}): it does not match the payload",
                seq, event_id,
            )
        prev_hash, expected_seq, count = stored_hash, seq + 1, count + 1
    last_seq = expected_seq - 1
    if head is None and count:
        # the writer records the head in the same transaction as every event: never absent with events
        return VerifyResult(
            False, count, last_seq, prev_hash,
            f"chain head missing: the log has {count} event(s) up to seq {last_seq} but no recorded head",
            last_seq, None,
        )
    if head is not None:
        head_seq, head_hash = head
        if head_seq > last_seq:
            return VerifyResult(
                False, count, last_seq, prev_hash,
                f"newest event(s) removed: the chain head records seq {head_seq} but the log ends at seq {last_seq}",
                last_seq + 1, None,
            )
        if head_seq < last_seq:
            return VerifyResult(
                False, count, last_seq, prev_hash,
                f"event(s) added outside the gateway: the chain head records seq {head_seq}, "
                f"the log goes on to {last_seq}",
                head_seq + 1, None,
            )
        if head_hash != prev_hash:
            return VerifyResult(
                False, count, last_seq, prev_hash,
                f"chain head altered: it records hash {head_hash[:12]}… for seq {head_seq}, "
                f"the log has {prev_hash[:12]}…",
                head_seq, None,
            )
    return VerifyResult(True, count, last_seq, prev_hash)
