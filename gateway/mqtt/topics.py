"""Topic names and the JSON envelope published for each event (a contract with upstream)."""

from __future__ import annotations

from gateway import EVENT_SCHEMA_VERSION
from gateway.store.events import Event


def event_topic(base_topic: str, kind: str) -> str:
    """`{base}/events/env/reading` for kind `env.reading`."""
    return f"{base_topic}/events/{kind.replace('.', '/')}"


def status_topic(base_topic: str) -> str:
    """Retained `online` / `offline` (also the Last Will)."""
    return f"{base_topic}/status"


def wire_payload(event: Event, site: str, gateway: str) -> str:
    """The envelope, then the event's own fields at the top level.

    `seq`, `hash` and `prev_hash` let a receiver check the hash chain and spot gaps on its side.
    """
    # Every envelope value is validated to need no JSON escaping (uuid, fixed-form ts, hex hashes,
    # slugs, kind and source patterns), so it is formatted directly: this runs once per event.
    envelope = (
        f'{{"id":"{event.id}","ts":"{event.ts}","kind":"{event.kind}","site":"{site}","gateway":"{gateway}",'
        f'"schema":{EVENT_SCHEMA_VERSION},"source":"{event.source}","seq":{event.seq},'
        f'"hash":"{event.hash}","prev_hash":"{event.prev_hash}"'
    )
    if event.payload == "{}":
        return envelope + "}"
    return envelope + "," + event.payload[1:]  # payload keys never clash: RESERVED_FIELDS
