"""GetStatus: identity, detector, queue, latencies, counters and GPU health."""

from __future__ import annotations

import asyncio
import time

from gpu_server import __version__
from gpu_server._generated import status_pb2
from gpu_server.events.pipeline import EventPipeline
from gpu_server.monitor.gpu import GpuMonitor
from gpu_server.monitor.latency import FrameCounters, LatencyTracker
from gpu_server.pipeline.batching import DetectionBatcher
from gpu_server.pipeline.detect import DetectorSelection


class StatusReporter:
    def __init__(
        self,
        *,
        server_id: str,
        selection: DetectorSelection,
        batcher: DetectionBatcher,
        latency: LatencyTracker,
        counters: FrameCounters,
        gpu: GpuMonitor,
        events: EventPipeline | None = None,
    ) -> None:
        self._events = events
        self._server_id = server_id
        self._selection = selection
        self._batcher = batcher
        self._latency = latency
        self._counters = counters
        self._gpu = gpu
        self._started = time.monotonic()

    async def status(self) -> status_pb2.ServerStatus:
        gpu = await asyncio.to_thread(self._gpu.read)
        detector = self._selection.detector
        return status_pb2.ServerStatus(
            server_id=self._server_id,
            version=__version__,
            uptime_s=time.monotonic() - self._started,
            detector=status_pb2.DetectorStatus(
                name=detector.name,
                backend=detector.backend,
                device=detector.device,
                weights=detector.weights,
                fallback=self._selection.fallback,
                fallback_reason=self._selection.fallback_reason,
            ),
            queue_depth=self._batcher.queue_depth,
            stage_latency={
                stage: status_pb2.LatencyStats(
                    count=s.count, mean_ms=s.mean_ms, p50_ms=s.p50_ms, p95_ms=s.p95_ms,
                    max_ms=s.max_ms,
                )
                for stage, s in self._latency.summaries().items()
            },
            gpu=status_pb2.GpuStatus(
                available=gpu.available,
                reason=gpu.reason,
                driver_version=gpu.driver_version,
                devices=[
                    status_pb2.GpuDevice(
                        index=d.index,
                        name=d.name,
                        utilization_percent=d.utilization_percent,
                        memory_used_bytes=d.memory_used_bytes,
                        memory_total_bytes=d.memory_total_bytes,
                        temperature_celsius=d.temperature_celsius,
                    )
                    for d in gpu.devices
                ],
            ),
            frames=status_pb2.FrameCounters(
                accepted=self._counters.accepted,
                duplicate=self._counters.duplicate,
                rejected=self._counters.rejected,
            ),
            events=self._events_status(),
        )

    def _events_status(self) -> status_pb2.EventsStatus | None:
        events = self._events
        if events is None:
            return None
        risk = events.risk
        model = risk.model_name or ""
        return status_pb2.EventsStatus(
            open_batches=events.open_batches,
            outbox_depth=events.outbox.depth,
            outbox_max_events=events.outbox.max_events,
            last_sequence=events.outbox.last_sequence,
            llm_model=model,
            llm_unavailable_reason="" if model else risk.unavailable_reason,
            analyses_running=events.processor.running,
            events_created=events.processor.created,
            outbox_id=events.outbox.outbox_id,
        )
