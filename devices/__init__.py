"""Devices: the trial registry, device credentials, the MQTT contract and the embedded broker's auth."""
