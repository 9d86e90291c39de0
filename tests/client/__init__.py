"""Tests for the Home Security AI gRPC client."""
