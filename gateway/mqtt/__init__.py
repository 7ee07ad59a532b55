"""Upstream over MQTT: the durable forwarder and the topic/payload contract."""
