"""Acceptance: the broker is down for a full minute while events keep coming; nothing is lost or reordered."""

from __future__ import annotations

import time

from tests.support.eventstore import check_delivery, committed_events, outbox_seqs
from tests.support.waiting import wait_until

OUTAGE_S = 60.0
SAMPLE_EVERY_S = 5.0
FAST_PROBES = [{"name": f"rack{i}", "driver": "sim", "interval_s": 0.01} for i in range(4)]  # ~400 events/s
STATUS_TOPIC = "dcgate/test-site/test-gw/status"


def _onlines(subscriber) -> int:
    return sum(1 for message in subscriber.on_topic(STATUS_TOPIC) if message.payload == b"online")


def test_one_minute_broker_outage_loses_nothing(make_config, gateway_factory, broker, subscriber,
                                                subscriber_factory):
    gw = gateway_factory(make_config(probes=FAST_PROBES))
    database = gw.config.database_path
    wait_until(lambda: gw.status()["mqtt"]["connected"], 10, message="the MQTT link up")
    wait_until(lambda: len(subscriber.events()) >= 200, 10, message="events streaming before the outage")
    onlines_before = _onlines(subscriber)
    assert onlines_before >= 1

    broker.stop()
    wait_until(lambda: not gw.status()["mqtt"]["connected"], 10, message="the gateway to notice the outage")
    previous = gw.status()
    outage_end = time.monotonic() + OUTAGE_S
    samples = []
    while (left := outage_end - time.monotonic()) > 0:
        # Deliberately let time pass: the outage must last a full minute (the status is checked every 5 s).
        time.sleep(min(SAMPLE_EVERY_S, left))
        status = gw.status()
        samples.append((status["store"]["last_seq"], status["store"]["outbox_depth"]))
        assert status["mqtt"]["connected"] is False
        assert f"127.0.0.1:{broker.port}" in (status["mqtt"]["last_error"] or ""), status["mqtt"]
        assert status["store"]["last_seq"] > previous["store"]["last_seq"], "events must keep being committed"
        assert status["store"]["outbox_depth"] > previous["store"]["outbox_depth"], "the outbox must grow"
        assert status["mqtt"]["delivered_total"] == previous["mqtt"]["delivered_total"]
        previous = status
    print(f"(last_seq, outbox_depth) every {SAMPLE_EVERY_S:g} s of the outage: {samples}")
    assert previous["store"]["outbox_depth"] > 5000, "a minute at ~400 events/s must queue thousands"

    broker.start()  # same port, same persistence: the subscriber's session and queue survive
    wait_until(lambda: gw.status()["mqtt"]["connected"], 30, message="the gateway to reconnect")
    wait_until(lambda: _onlines(subscriber) > onlines_before, 30, message="a fresh `online` after the reconnect")
    late = subscriber_factory(STATUS_TOPIC, persistent=False, client_id="late-status-reader")
    retained = wait_until(lambda: late.on_topic(STATUS_TOPIC), 10, message="the retained status")
    assert retained[-1].payload == b"online" and retained[-1].retain

    # The backlog drains while new events keep coming; then a clean stop flushes the rest.
    wait_until(lambda: gw.status()["store"]["outbox_depth"] < 1000, 60,
               message=lambda: f"the backlog to drain: {gw.status()['store']}")
    assert gw.terminate() == 0
    committed = committed_events(database)
    assert outbox_seqs(database) == [], "a clean stop after the backlog drained leaves nothing undelivered"
    subscriber.wait_for_ids({event.id for event in committed}, timeout=60)
    check_delivery(committed, subscriber.events())
