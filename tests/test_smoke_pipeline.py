"""The whole path once: a gateway process commits events and a real subscriber receives them."""

from __future__ import annotations

from tests.support.waiting import wait_until


def test_events_reach_a_real_subscriber(make_config, gateway_factory, subscriber):
    gw = gateway_factory(make_config())
    status = wait_until(lambda: (s := gw.status())["mqtt"]["connected"] and s, 10, message="MQTT link up")
    assert status["store"]["last_seq"] >= 1
    gw.control("sim.set", {"device": "probe", "name": "rack1", "values": {"temperature": "27.5"}})
    reading = wait_until(
        lambda: next((e for e in subscriber.events() if e["kind"] == "env.reading" and e["temperature_c"] == 27.5),
                     None),
        10, message="the 27.5 °C reading upstream",
    )
    assert reading["site"] == "test-site" and reading["gateway"] == "test-gw" and reading["schema"] == 1
    assert reading["probe"] == "rack1"
    assert gw.terminate() == 0
    assert subscriber.on_topic("dcgate/test-site/test-gw/status")[-1].payload == b"offline"
