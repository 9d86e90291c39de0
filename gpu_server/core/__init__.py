"""Plain types every part of the sidecar shares; imports nothing else of the sidecar."""
