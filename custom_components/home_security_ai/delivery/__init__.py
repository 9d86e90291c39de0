"""Frames to the sidecar: the spool on disk, the frame stream and the connection that carries it."""
