"""The ingest: MQTT messages in, validated readings, events and status out to a store."""
