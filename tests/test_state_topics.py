"""Retained state topics and Home Assistant MQTT discovery, against a real broker and subscriber."""

from __future__ import annotations

import json

import paho.mqtt.publish as publish

from tests.support.waiting import wait_until

BASE = "dcgate/test-site/test-gw"
NODE = "dcgate_test_site_test_gw"
TEMP_CONFIG = f"homeassistant/sensor/{NODE}/rack1_temperature/config"
HUM_CONFIG = f"homeassistant/sensor/{NODE}/rack1_humidity/config"


def latest_json(subscriber, topic):
    messages = subscriber.on_topic(topic)
    return json.loads(messages[-1].payload) if messages else None


def test_probe_state_is_retained_and_never_shows_a_value_for_a_failed_probe(make_config, gateway_factory,
                                                                          subscriber_factory):
    sub = subscriber_factory("#")
    gw = gateway_factory(make_config())
    gw.control("sim.set", {"device": "probe", "name": "rack1", "values": {"temperature": "23.5", "humidity": "61"}})
    state = wait_until(lambda: (s := latest_json(sub, f"{BASE}/env/rack1")) and s["temperature_c"] == 23.5 and s,
                       10, message="the 23.5 °C state")
    assert state["humidity_pct"] == 61 and state["status"] == "ok" and state["ts"].endswith("Z")

    gw.control("sim.set", {"device": "probe", "name": "rack1", "values": {"fault": "timeout"}})
    failed = wait_until(lambda: (s := latest_json(sub, f"{BASE}/env/rack1")) and s["status"] == "fault" and s,
                        10, message="the fault state")
    assert failed["temperature_c"] is None and failed["humidity_pct"] is None
    assert "timeout" in failed["error"]

    # a subscriber that arrives later gets the current state at once: it is retained
    late = subscriber_factory(f"{BASE}/env/#", client_id="late", persistent=False)
    retained = wait_until(lambda: late.on_topic(f"{BASE}/env/rack1"), 10, message="the retained state")
    assert retained[-1].retain and json.loads(retained[-1].payload)["status"] == "fault"


def test_discovery_configs_describe_each_probe_and_come_again_on_the_birth_message(make_config, gateway_factory,
                                                                                  subscriber_factory, broker):
    sub = subscriber_factory("homeassistant/#")
    gateway_factory(make_config())
    temp = wait_until(lambda: latest_json(sub, TEMP_CONFIG), 10, message="the temperature config")
    hum = wait_until(lambda: latest_json(sub, HUM_CONFIG), 10, message="the humidity config")
    assert temp["state_topic"] == hum["state_topic"] == f"{BASE}/env/rack1"
    assert (temp["device_class"], temp["unit_of_measurement"]) == ("temperature", "°C")
    assert (hum["device_class"], hum["unit_of_measurement"]) == ("humidity", "%")
    assert temp["value_template"] == "{{ value_json.temperature_c }}"
    assert temp["unique_id"] != hum["unique_id"] and temp["device"]["identifiers"] == [NODE]
    assert temp["availability_mode"] == "all"
    assert [a["topic"] for a in temp["availability"]] == [f"{BASE}/status", f"{BASE}/env/rack1"]
    late = subscriber_factory("homeassistant/#", client_id="late", persistent=False)
    retained = wait_until(lambda: late.on_topic(TEMP_CONFIG), 10, message="the retained config")
    assert retained[-1].retain  # Home Assistant finds it whenever it connects

    announced = len(sub.on_topic(TEMP_CONFIG))
    publish.single("homeassistant/status", "online", hostname=broker.host, port=broker.port)  # HA restarted
    wait_until(lambda: len(sub.on_topic(TEMP_CONFIG)) > announced, 10, message="discovery announced again")
    assert latest_json(sub, TEMP_CONFIG) == temp


def test_discovery_can_be_switched_off(make_config, gateway_factory, subscriber_factory):
    sub = subscriber_factory("#")
    gw = gateway_factory(make_config(mqtt={"discovery": False}))
    wait_until(lambda: sub.on_topic(f"{BASE}/env/rack1"), 10, message="the probe state")
    assert gw.terminate() == 0
    wait_until(lambda: sub.on_topic(f"{BASE}/events/gateway/stopped"), 10, message="gateway.stopped")
    assert not [m.topic for m in sub.snapshot() if m.topic.startswith("homeassistant/")]
