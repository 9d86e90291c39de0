"""Events from the sidecar: stored, fired on the bus with their payload, acknowledged."""
