"""Security events: coverage, per-camera windows, the scheduler, the event builder, the
acknowledged outbox and the cameras' settings. Plain domain types only; the gRPC edge converts."""
