"""The upstream contract: topic names and the JSON envelope, checked against a real JSON encoder."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import InvalidEventError
from gateway.mqtt.topics import event_topic, status_topic, wire_payload
from gateway.store.chain import canonical_fields
from gateway.store.events import Event, validate_event
from gateway.store.ids import uuid7

words = st.text(alphabet=string.ascii_lowercase + string.digits + "_", min_size=1, max_size=8).map(lambda w: "k" + w)
kinds = st.lists(words, min_size=2, max_size=4).map(".".join)
sources = st.text(alphabet=st.characters(categories=("L", "N")) | st.sampled_from("._:/@-"), min_size=1, max_size=64)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
fields = st.dictionaries(st.text().filter(lambda k: k not in {"id", "ts", "kind", "site", "gateway", "schema",
                                                            "source", "seq", "hash", "prev_hash"}),
                         json_values, max_size=5)


@given(kind=kinds, source=sources, event_fields=fields, seq=st.integers(min_value=1, max_value=2**53))
def test_the_envelope_is_exactly_the_json_a_real_encoder_writes(kind, source, event_fields, seq):
    payload = validate_event(kind, source, event_fields)
    event = Event(seq, uuid7.text(), "2026-11-21T03:04:05.678Z", kind, source, payload, "a" * 64, "b" * 64)
    decoded = json.loads(wire_payload(event, "diskominfo-jambi", "ruang-server-1"))
    assert decoded == {
        "id": event.id, "ts": event.ts, "kind": kind, "site": "diskominfo-jambi", "gateway": "ruang-server-1",
        "schema": 1, "source": source, "seq": seq, "hash": "b" * 64, "prev_hash": "a" * 64,
        **json.loads(canonical_fields(event_fields)),
    }


@pytest.mark.parametrize("kind", ["env.reading\n", "env.reading\r", 'env."x', "env.x\\y", "env.reading "])
def test_a_kind_with_a_trailing_newline_or_quote_is_refused(kind):
    """Regression: `$` in a Python regex also matches before a final newline."""
    with pytest.raises(InvalidEventError):
        validate_event(kind, "gateway", {})


@pytest.mark.parametrize("source", ["gateway\n", 'probe:"rack1"', "probe\\1", "probe 1", "probe\t1"])
def test_a_source_that_would_need_json_escaping_is_refused(source):
    with pytest.raises(InvalidEventError):
        validate_event("env.reading", source, {})


def test_topics_use_slashes_for_the_dots_of_the_kind():
    assert event_topic("dcgate/a/b", "power.mains_lost") == "dcgate/a/b/events/power/mains_lost"
    assert status_topic("dcgate/a/b") == "dcgate/a/b/status"
