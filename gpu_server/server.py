"""The gRPC server and the one place that builds the sidecar's parts and wires them together."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from gpu_server._generated import service_pb2
from gpu_server.config import ServerConfig
from gpu_server.context import (
    ActivityBaseline,
    ContextBuilder,
    CrossCameraLog,
    SceneMonitor,
    ZoneRegistry,
)
from gpu_server.core.clock import Clock, SystemClock
from gpu_server.core.coverage import CoverageLedger
from gpu_server.core.frames import DetectionResult
from gpu_server.enrich.pipeline import ENROLL_MAX_SIDE, Enricher
from gpu_server.events.builder import EventBuilder
from gpu_server.events.cameras import CameraDirectory
from gpu_server.events.dwell import DwellSettings, DwellTracker
from gpu_server.events.incidents import IncidentSettings, IncidentTracker
from gpu_server.events.outbox import OUTBOX_FILE, Outbox
from gpu_server.events.progress import ProgressHub
from gpu_server.events.scheduler import EventScheduler
from gpu_server.events.windows import CameraWindows, WindowSettings
from gpu_server.feedback import FEEDBACK_FILE, FeedbackSettings, FeedbackStore
from gpu_server.grpc_api.auth import BearerTokenInterceptor, RefusalLog
from gpu_server.grpc_api.convert import ProtobufEventCodec
from gpu_server.grpc_api.events import EventsHandler
from gpu_server.grpc_api.frames import FrameStreamHandler
from gpu_server.grpc_api.people import PeopleHandler
from gpu_server.grpc_api.service import SecurityAIServicer, add_service
from gpu_server.grpc_api.status import StatusReporter
from gpu_server.identity import load_or_create_server_id, load_or_create_token
from gpu_server.ingest.batching import DetectionBatcher
from gpu_server.ingest.dedupe import Deduplicator, ResultCache
from gpu_server.ingest.detect import DetectorSelection, build_detector, detector_workers
from gpu_server.ingest.detector import Detector
from gpu_server.ingest.ingestor import FRAME_THREAD_PREFIX, FrameIngestor, frame_thread_count
from gpu_server.ingest.intake import FrameIntake, ImageIntake
from gpu_server.ingest.memory import DecodeBudget, default_budget_bytes
from gpu_server.models.registry import ModelRegistry
from gpu_server.monitor.gpu import GpuMonitor
from gpu_server.monitor.latency import FrameCounters, LatencyTracker
from gpu_server.risk.analysis import RiskAnalysis
from gpu_server.tls import load_server_certificate

_LOGGER = logging.getLogger(__name__)

_SERVICE = service_pb2.DESCRIPTOR.services_by_name["SecurityAI"]
_HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"]
_REFLECTION_SERVICE = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
SERVICE_NAME: str = _SERVICE.full_name


class GRPCServer:
    """The sidecar. `start()` returns once it listens; `stop()` drains and shuts down.

    `detector` lets a caller hand in an already loaded detector (tests and benchmarks reuse
    one model across servers); by default it is built from the configuration. `clock` drives
    the camera windows (tests pass a fake one); `risk` replaces the risk analysis built from
    the `llm` settings. The clock also paces the log of refused calls.
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        detector: DetectorSelection | None = None,
        clock: Clock | None = None,
        risk: RiskAnalysis | None = None,
    ) -> None:
        self.config = config
        self._given_detector = detector
        self._clock = clock
        self._risk = risk
        self.events: EventScheduler | None = None
        self.feedback: FeedbackStore | None = None
        self.risk: RiskAnalysis | None = None
        self.zoo: ModelRegistry | None = None
        self.enricher: Enricher | None = None
        self._server: grpc.aio.Server | None = None
        self._health: Any = None
        self._gpu = GpuMonitor()
        self.selection: DetectorSelection | None = None
        self.batcher: DetectionBatcher | None = None
        self.dedupe: Deduplicator[DetectionResult] | None = None
        self.decode_budget: DecodeBudget | None = None
        # Where frames are checked and decoded, apart from the detector's threads.
        self.frame_threads: ThreadPoolExecutor | None = None
        self._status: StatusReporter | None = None
        self.counters = FrameCounters()
        self.latency = LatencyTracker(config.latency_window)
        self.server_id = ""
        self.token = ""
        self.port = 0
        # SHA-256 of the certificate presented when TLS is on, else None.
        self.tls_fingerprint: str | None = None
        monotonic = clock.monotonic if clock is not None else time.monotonic
        self.refusals = RefusalLog(clock=monotonic)
        # Requests that do not parse; apart from refused tokens, each with its own minute.
        self.unparseable = RefusalLog(clock=monotonic)

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    async def start(self) -> int:
        """Prepare everything, listen, report SERVING; returns the bound port."""
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.server_id = load_or_create_server_id(config.data_dir)
        configured = config.token.get_secret_value() if config.token is not None else ""
        self.token = configured or load_or_create_token(config.data_dir)
        credentials = None
        if config.tls.mode != "off":
            certificate = await asyncio.to_thread(load_server_certificate, config)
            credentials = grpc.ssl_server_credentials([(certificate.key_pem, certificate.cert_pem)])
            self.tls_fingerprint = certificate.fingerprint

        selection = self._given_detector
        if selection is None:
            # Loads and warms up, falling back to another device or detector on failure.
            selection = await asyncio.to_thread(build_detector, config)
        else:
            await asyncio.to_thread(selection.detector.warmup)
        self.selection = selection

        replicas = await asyncio.to_thread(
            _replicas, selection.detector, detector_workers(config.detector) - 1
        )
        self.batcher = DetectionBatcher(
            selection.detector,
            max_batch_size=config.batching.max_batch_size,
            max_wait_ms=config.batching.max_wait_ms,
            replicas=replicas,
        )
        self.batcher.start()
        risk = self._risk or RiskAnalysis(
            config.llm, config.models_dir, data_dir=config.data_dir
        )
        self.risk = risk
        self.zoo = ModelRegistry(
            await asyncio.to_thread(self._zoo_budget, selection.detector.device)
        )
        limits = config.limits
        self.decode_budget = DecodeBudget(
            limits.decode_budget_bytes or default_budget_bytes(), limits.decode_wait_s
        )
        self.frame_threads = ThreadPoolExecutor(
            max_workers=frame_thread_count(limits.decode_threads),
            thread_name_prefix=FRAME_THREAD_PREFIX,
        )
        # EnrollPerson's photos pass the frames' limits and share their budget and threads.
        images = ImageIntake(
            FrameIntake(limits, decode_side=ENROLL_MAX_SIDE), self.decode_budget, self.frame_threads
        )
        self.enricher = await asyncio.to_thread(
            functools.partial(
                Enricher,
                config.enrich,
                config.data_dir,
                self.zoo,
                config.models_dir,
                images=images,
            )
        )
        self.events, self.feedback = await self._start_events(selection, risk, self.enricher)
        server = self._grpc_server(self._servicer(selection, self.events, self.feedback, risk))
        address = f"{config.host}:{config.port}"
        try:
            if credentials is None:
                self.port = server.add_insecure_port(address)
            else:
                self.port = server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            await self.events.stop(0)
            await self.feedback.close()
            await self.batcher.stop()
            raise OSError(f"cannot listen on {config.host}:{config.port}: {exc}") from exc
        await server.start()
        self._server = server
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        _LOGGER.info(
            "listening on %s (server id %s, detector %s on %s, risk analysis by %s)",
            self.address, self.server_id, selection.detector.name, selection.detector.device,
            risk.model_name or f"rules ({risk.unavailable_reason})",
        )
        if self.tls_fingerprint is not None:
            _LOGGER.info(
                "TLS is on; the certificate's SHA-256 fingerprint is %s "
                "(Home Assistant shows it when you connect: they must match)",
                self.tls_fingerprint,
            )
        else:
            _LOGGER.warning(
                "TLS is off (chosen with tls.mode off): the token and the frames cross the "
                "network in clear text; leave TLS on unless the network is trusted"
            )
        return self.port

    async def _start_events(
        self, selection: DetectorSelection, risk: RiskAnalysis, enricher: Enricher
    ) -> tuple[EventScheduler, FeedbackStore]:
        feedback = feedback_store(self.config)
        await feedback.open()
        events = event_scheduler(
            self.config,
            risk,
            feedback,
            clock=self._clock if self._clock is not None else SystemClock(),
            sure_confidence=selection.detector.sure_confidence,
            enricher=enricher,
        )
        try:
            await events.start()
        except BaseException:
            await feedback.close()
            raise
        return events, feedback

    def _servicer(
        self,
        selection: DetectorSelection,
        events: EventScheduler,
        feedback: FeedbackStore,
        risk: RiskAnalysis,
    ) -> SecurityAIServicer:
        """The service and what it calls: intake, dedupe, the decode budget, status, events."""
        config = self.config
        assert self.batcher is not None
        assert self.enricher is not None
        self.dedupe = Deduplicator(ResultCache(config.dedupe.capacity))
        assert self.decode_budget is not None
        assert self.frame_threads is not None
        ingestor = FrameIngestor(
            FrameIntake(config.limits, decode_side=config.detector.imgsz),
            self.dedupe, self.batcher, self.latency, events,
            budget=self.decode_budget, frame_threads=self.frame_threads,
        )
        self._status = StatusReporter(
            server_id=self.server_id,
            selection=selection,
            batcher=self.batcher,
            latency=self.latency,
            counters=self.counters,
            gpu=self._gpu,
            events=events,
            feedback=feedback,
            risk=risk,
            zoo=self.zoo,
            enricher=self.enricher,
        )
        return SecurityAIServicer(
            FrameStreamHandler(
                ingestor, self.counters, max_in_flight=config.batching.max_in_flight_per_stream
            ),
            self._status,
            EventsHandler(events, feedback),
            PeopleHandler(self.enricher),
            refusals=self.unparseable,
        )

    def _grpc_server(self, servicer: SecurityAIServicer) -> grpc.aio.Server:
        """The gRPC server with auth, message limits, health and reflection (not listening)."""
        max_bytes = self.config.limits.max_message_bytes
        server = grpc.aio.server(
            interceptors=[BearerTokenInterceptor(self.token, refusals=self.refusals)],
            options=[
                ("grpc.max_receive_message_length", max_bytes),
                ("grpc.max_send_message_length", max_bytes),
            ],
        )
        add_service(server, _SERVICE, servicer, self.unparseable, takes_unparseable=True)
        self._health = health.aio.HealthServicer()
        add_service(server, _HEALTH_SERVICE, self._health, self.unparseable)
        names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
        add_service(
            server, _REFLECTION_SERVICE, reflection.aio.ReflectionServicer(names),
            self.unparseable,
        )
        return server

    async def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, let running calls finish within `grace` seconds, then stop."""
        grace = self.config.grace_period_s if grace is None else grace
        loop = asyncio.get_running_loop()
        # One grace period for everything: long-lived streams (SubscribeEvents) hold the gRPC
        # stop for all of it, and running analyses get only what is left.
        deadline = loop.time() + grace
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self.events is not None:
            await self.events.stop(max(0.0, deadline - loop.time()))
            self.events = None
        if self.feedback is not None:
            await self.feedback.close()
            self.feedback = None
        if self.batcher is not None:
            await self.batcher.stop()
        if self.decode_budget is not None:
            self.decode_budget.close()
        if self.frame_threads is not None:
            self.frame_threads.shutdown(wait=False, cancel_futures=True)
        if self.zoo is not None:
            await self.zoo.close()
            self.zoo = None
        if self._status is not None:
            self._status.close()
        await asyncio.to_thread(self._gpu.close)
        _LOGGER.info("stopped")

    def _zoo_budget(self, device: str) -> int:
        """The zoo's budget: as configured, else half the GPU's memory or a quarter of RAM."""
        if self.config.zoo.memory_budget_mb is None and device.startswith("cuda"):
            gpu = self._gpu.read()
            if gpu.devices:
                return gpu.devices[0].memory_total_bytes // 2
        return self.config.zoo.budget_bytes()

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


def feedback_store(config: ServerConfig) -> FeedbackStore:
    """The household's verdicts, shared by the analyses (calibration) and the Feedback call."""
    feedback = config.feedback
    return FeedbackStore(
        config.data_dir / FEEDBACK_FILE,
        FeedbackSettings(
            calibrate_after=feedback.calibrate_after,
            window_s=feedback.window_days * 86_400.0,
            case_retention_s=feedback.retention_days * 86_400.0,
        ),
    )


def event_scheduler(
    config: ServerConfig,
    risk: RiskAnalysis,
    feedback: FeedbackStore,
    *,
    clock: Clock,
    sure_confidence: float,
    enricher: Enricher | None,
) -> EventScheduler:
    """The events part, every piece of it built here: windows, context, analyses, outbox."""
    events = config.events
    data_dir = config.data_dir
    outbox = Outbox(
        data_dir / OUTBOX_FILE,
        codec=ProtobufEventCodec(),
        max_events=events.outbox_max_events,
        retention_s=events.covered_retention_s,
        max_covered_rows=events.covered_max_rows,
    )
    context_builder = ContextBuilder(
        ZoneRegistry(data_dir), ActivityBaseline(data_dir), CrossCameraLog()
    )
    cameras = CameraDirectory(data_dir)
    hub = ProgressHub()
    incidents = IncidentTracker(
        IncidentSettings(
            gap_s=events.incident_gap_s,
            link_s=events.incident_link_s,
            cooldown_s=events.cooldown_s,
        ),
        clock,
    )
    builder = EventBuilder(
        context_builder=context_builder,
        risk=risk,
        outbox=outbox,
        hub=hub,
        cameras=cameras,
        clock=clock,
        max_detections=events.max_detections_per_batch,
        incidents=incidents,
        feedback=feedback,
        sure_confidence=sure_confidence,
        enricher=enricher,
        dwell=DwellTracker(DwellSettings(gap_s=events.dwell_gap_s, loiter_s=events.loiter_s)),
    )
    windows = CameraWindows(
        WindowSettings(events.window_s, events.idle_s),
        clock,
        max_detections=events.max_detections_per_batch,
    )
    return EventScheduler(
        events,
        clock=clock,
        risk=risk,
        outbox=outbox,
        coverage=CoverageLedger(outbox),
        windows=windows,
        builder=builder,
        incidents=incidents,
        context_builder=context_builder,
        scene=SceneMonitor(data_dir, config.scene),
        cameras=cameras,
        hub=hub,
        enricher=enricher,
        sure_confidence=sure_confidence,
    )


def _replicas(detector: Detector, count: int) -> list[Detector]:
    """Up to `count` more copies of the detector (blocking); fewer when it cannot be copied or
    a copy fails to load, which leaves detection working with the copies there are."""
    copies: list[Detector] = []
    for _ in range(count):
        try:
            copy = detector.replicate()
        except Exception:  # e.g. out of memory: one copy less is no reason to stop
            _LOGGER.warning("a copy of the detector failed to load", exc_info=True)
            break
        if copy is None:
            break
        copies.append(copy)
    if copies:
        _LOGGER.info("%d copies of the detector run batches side by side", 1 + len(copies))
    return copies
