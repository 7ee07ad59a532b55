"""The door domain: people, credentials, policy, door state machine, visits, logbook.

Knows nothing about MQTT or HTTP. Filled in by the door and visitor issues.
"""
