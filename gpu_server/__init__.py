"""Home Security AI sidecar: a gRPC server that runs object detection on camera frames."""

__version__ = "0.1.0"
