"""Simulated trial devices: MQTT clients publishing per the contract, deterministic for a seed."""
