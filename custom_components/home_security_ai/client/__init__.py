"""Async gRPC client for the Home Security AI sidecar (no Home Assistant imports)."""

from __future__ import annotations

from .client import HomeSecurityAIClient
from .errors import AuthFailed, CannotConnect, HomeSecurityAIError
from .models import (
    AckStatus,
    Box,
    Detection,
    DetectorStatus,
    FrameAck,
    FrameCounters,
    FrameIn,
    FrameSource,
    FrameTimings,
    GpuDevice,
    GpuStatus,
    LatencyStats,
    RejectReason,
    ServerStatus,
)

__all__ = [
    "AckStatus",
    "AuthFailed",
    "Box",
    "CannotConnect",
    "Detection",
    "DetectorStatus",
    "FrameAck",
    "FrameCounters",
    "FrameIn",
    "FrameSource",
    "FrameTimings",
    "GpuDevice",
    "GpuStatus",
    "HomeSecurityAIClient",
    "HomeSecurityAIError",
    "LatencyStats",
    "RejectReason",
    "ServerStatus",
]
