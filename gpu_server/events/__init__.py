"""Security events: per-camera batches, their analysis, and the acknowledged outbox to Home
Assistant."""
