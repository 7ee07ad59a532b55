"""Hardware behind small interfaces, each with a real backend and a simulated one.

This layer knows nothing about doors, people, MQTT or HTTP.
"""
