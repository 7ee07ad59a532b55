"""Real parts for tests and benchmarks: a mosquitto broker, an MQTT subscriber, a gateway process."""
