"""GetStatus: identity, detector, queue, latencies, counters and GPU health."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from gpu_server import __version__
from gpu_server._generated import status_pb2
from gpu_server.enrich.pipeline import Enricher
from gpu_server.events.scheduler import EventScheduler
from gpu_server.feedback import FeedbackStore
from gpu_server.ingest.batching import DetectionBatcher
from gpu_server.ingest.detect import DetectorSelection
from gpu_server.llm.service import LanguageModelState
from gpu_server.models.registry import ModelRegistry
from gpu_server.monitor.gpu import GpuMonitor
from gpu_server.monitor.latency import FrameCounters, LatencyTracker
from gpu_server.risk.analysis import RiskAnalysis

_MODEL_STATE: Final = {
    LanguageModelState.OFF: status_pb2.LANGUAGE_MODEL_STATE_OFF,
    LanguageModelState.LOADING: status_pb2.LANGUAGE_MODEL_STATE_LOADING,
    LanguageModelState.READY: status_pb2.LANGUAGE_MODEL_STATE_READY,
    LanguageModelState.RESTARTING: status_pb2.LANGUAGE_MODEL_STATE_RESTARTING,
    LanguageModelState.CIRCUIT_OPEN: status_pb2.LANGUAGE_MODEL_STATE_CIRCUIT_OPEN,
    LanguageModelState.UNREACHABLE: status_pb2.LANGUAGE_MODEL_STATE_UNREACHABLE,
    LanguageModelState.FAILED: status_pb2.LANGUAGE_MODEL_STATE_FAILED,
}


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
        events: EventScheduler | None = None,
        feedback: FeedbackStore | None = None,
        risk: RiskAnalysis | None = None,
        zoo: ModelRegistry | None = None,
        enricher: Enricher | None = None,
    ) -> None:
        self._zoo = zoo
        self._enricher = enricher
        self._events = events
        self._feedback = feedback
        self._risk = risk
        self._server_id = server_id
        self._selection = selection
        self._batcher = batcher
        self._latency = latency
        self._counters = counters
        self._gpu = gpu
        self._started = time.monotonic()
        # Its own thread: a status call must not queue behind the scene checks and crops of a
        # burst of frames in the shared pool.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="status")

    async def status(self) -> status_pb2.ServerStatus:
        gpu = await asyncio.get_running_loop().run_in_executor(self._executor, self._gpu.read)
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
            language_model=self._language_model_status(),
            model_zoo=self._zoo_status(),
            enrichment=self._enrichment_status(),
            feedback=self._feedback_status(),
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False)

    def _language_model_status(self) -> status_pb2.LanguageModelStatus | None:
        if self._risk is None:
            return None
        status = self._risk.status()
        return status_pb2.LanguageModelStatus(
            state=_MODEL_STATE[status.state],
            backend=status.backend.value if status.backend is not None else "",
            model=status.model,
            endpoint=status.endpoint,
            reason=status.reason,
            restarts=status.restarts,
            consecutive_failures=status.consecutive_failures,
            queue_depth=status.queue_depth,
            queue_capacity=status.queue_capacity,
            analyses=status.analyses,
            fallbacks=status.fallbacks,
            retry_in_s=status.retry_in_s,
            authority=status.authority.value,
            authority_reason=status.authority_reason,
            replaced=status.replaced,
        )

    def _enrichment_status(self) -> status_pb2.EnrichmentStatus | None:
        if self._enricher is None:
            return None
        status = self._enricher.status()
        return status_pb2.EnrichmentStatus(
            faces_available=status.faces_available,
            faces_reason=status.faces_reason,
            pose_available=status.pose_available,
            pose_reason=status.pose_reason,
            plates_available=status.plates_available,
            plates_reason=status.plates_reason,
            known_people=status.known_people,
            known_plates=status.known_plates,
            windows_enriched=status.windows,
            batches=status.windows,  # the older name, for older clients
        )

    def _feedback_status(self) -> list[status_pb2.CameraFeedback]:
        if self._feedback is None:
            return []
        return [
            status_pb2.CameraFeedback(
                camera_id=camera_id,
                false_alarms=counts.false_alarms,
                confirmed=counts.confirmed,
                calibrated_cases=counts.calibrated_cases,
            )
            for camera_id, counts in self._feedback.calibration.counts().items()
        ]

    def _zoo_status(self) -> status_pb2.ModelZooStatus | None:
        if self._zoo is None:
            return None
        zoo = self._zoo.status()
        return status_pb2.ModelZooStatus(
            budget_bytes=zoo.budget_bytes,
            used_bytes=zoo.used_bytes,
            registered=len(zoo.registered),
            loaded=[
                status_pb2.LoadedModel(
                    key=model.key,
                    task=model.task,
                    memory_bytes=model.memory_bytes,
                    users=model.users,
                    idle_s=model.idle_s,
                )
                for model in zoo.loaded
            ],
            loads=zoo.loads,
            unloads=zoo.unloads,
        )

    def _events_status(self) -> status_pb2.EventsStatus | None:
        if self._events is None:
            return None
        events = self._events.status()
        model = ""
        reason = ""
        if self._risk is not None:
            model_status = self._risk.status()
            # Kept for older clients: the model in use, or empty (and why) while the rules
            # answer.
            model = model_status.model if model_status.state is LanguageModelState.READY else ""
            reason = "" if model else model_status.reason
        return status_pb2.EventsStatus(
            open_windows=events.open_windows,
            open_batches=events.open_windows,  # the older name, for older clients
            outbox_depth=events.outbox_depth,
            outbox_max_events=events.outbox_max_events,
            last_sequence=events.last_sequence,
            llm_model=model,
            llm_unavailable_reason=reason,
            analyses_running=events.analyses_running,
            events_created=events.events_created,
            outbox_id=events.outbox_id,
            outbox_refused_frames=events.refused_frames,
        )
