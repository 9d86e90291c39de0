"""The events scheduler: takes claimed frames into windows, keeps the windows ticking, runs
the analyses that turn them into stored events, and hands the stored events out. It builds
none of its parts: `server.py` does, and hands them in.

Which frame is in which event is the coverage ledger's business (`coverage.py`); the delivery
protocol as a whole is in `docs/delivery.md`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from gpu_server.config import EventsConfig
from gpu_server.context import ContextBuilder, SceneMonitor
from gpu_server.core.clock import Clock, from_ms, to_ms
from gpu_server.core.coverage import Coverage, CoverageLedger
from gpu_server.core.frames import AcceptedFrame
from gpu_server.core.images import BgrImage
from gpu_server.enrich.pipeline import Enricher
from gpu_server.errors import BackpressureError
from gpu_server.events.builder import AnalysisJob, EventBuilder
from gpu_server.events.cameras import CameraDirectory, CameraSettings
from gpu_server.events.incidents import EndedIncident, IncidentTracker
from gpu_server.events.key_frame import annotated_jpeg, key_frame_score
from gpu_server.events.model import CameraRequest, SecurityEvent
from gpu_server.events.outbox import Outbox
from gpu_server.events.progress import ProgressHub, ProgressNote
from gpu_server.events.settings_checks import check_camera_count, validate_cameras
from gpu_server.events.windows import (
    CameraWindows,
    ClosedWindow,
    WindowFrame,
    new_window_id,
)
from gpu_server.risk.analysis import RiskAnalysis

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EventsStatus:
    open_windows: int
    outbox_depth: int
    outbox_max_events: int
    last_sequence: int
    outbox_id: str
    analyses_running: int
    events_created: int
    refused_frames: int  # frames refused because the outbox had no room for their event


class EventScheduler:
    """The flow of events; its parts are built and handed in by the server (`server.py`)."""

    def __init__(
        self,
        settings: EventsConfig,
        *,
        clock: Clock,
        risk: RiskAnalysis,
        outbox: Outbox,
        coverage: CoverageLedger,
        windows: CameraWindows,
        builder: EventBuilder,
        incidents: IncidentTracker,
        context_builder: ContextBuilder,
        scene: SceneMonitor,
        cameras: CameraDirectory,
        hub: ProgressHub,
        enricher: Enricher | None = None,
        sure_confidence: float = 0.9,
    ) -> None:
        self.config = settings
        self.clock = clock
        self.risk = risk
        self.outbox = outbox
        self.coverage = coverage
        self.windows = windows
        self.builder = builder
        self.incidents = incidents
        self.context_builder = context_builder
        self.zones = context_builder.zones
        self.baseline = context_builder.baseline
        self.scene = scene
        self.cameras = cameras
        self.hub = hub
        self.enricher = enricher
        self._fast_labels = frozenset(label.lower() for label in settings.fast_path_labels)
        # The configured threshold, else the detector's own idea of a sure detection.
        self.fast_path_confidence = (
            settings.fast_path_confidence
            if settings.fast_path_confidence is not None
            else sure_confidence
        )
        # Analyses, and the stores of incident-ended events: each ends with a stored event.
        self._jobs: set[asyncio.Task[SecurityEvent]] = set()
        # Ended incidents whose event waits for room in the outbox.
        self._ended: list[EndedIncident] = []
        self.refused_frames = 0
        self._ticker: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.outbox.open()
        await self.risk.start()
        for camera in self.cameras.all():
            self._apply_runtime(camera)
        self._ticker = asyncio.create_task(self._tick_forever(), name="event-windows")

    async def stop(self, grace: float) -> None:
        """Finish running analyses within `grace`; open windows are dropped, not closed.

        Their frames are acknowledged but not covered, so the client still holds them and
        resends them to the next start; closing them here would be fine too, but dropping keeps
        shutdown quick and the outcome identical to a crash.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._jobs:
            _done, pending = await asyncio.wait(set(self._jobs), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                # Cancelling an analysis asks the model to stop at its next token.
                await asyncio.wait(pending, timeout=max(0.25, deadline - loop.time()))
        await asyncio.to_thread(self._flush_learned)
        # Bounded by itself: a model server that does not stop in time is killed.
        await self.risk.close(max(0.25, deadline - loop.time()))
        await self.outbox.close()

    def _flush_learned(self) -> None:
        self.context_builder.flush()
        self.scene.flush()
        if self.enricher is not None:
            self.enricher.flush(to_ms(self.clock.wall()))

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_s)
            try:
                self.tick()
            except Exception:
                _LOGGER.exception("checking the windows failed")

    def tick(self) -> list[asyncio.Task[SecurityEvent]]:
        """Close due windows and start their analyses, and end quiet incidents; returns the
        started tasks."""
        started = [self.analyze_window(window) for window in self.windows.due()]
        self._ended.extend(self.incidents.due())
        # An incident's end covers no frame, so it cannot be refused: it waits for room instead.
        while self._ended and self._room() > 0:
            ended = self._ended.pop(0)
            started.append(
                self._track(
                    self.builder.store_incident_end(ended), f"incident-end-{ended.incident_id[:8]}"
                )
            )
        return started

    def _room(self) -> int:
        """Events the outbox can still take beyond those on their way: each open window (or
        one closed full, not yet handed out), analysis and incident end being stored will
        store one. Frames may start a new one only while this stays above zero, so the outbox
        never holds more than its maximum."""
        on_the_way = self.windows.open_count + self.windows.full_count + len(self._jobs)
        return self.outbox.max_events - self.outbox.depth - on_the_way

    # -- intake (the FrameSink the frame ingestor calls) -----------------------------------

    async def claim(self, sha256: str) -> Coverage:
        """Claim this content for a new frame, or say how it is held (see `CoverageLedger`)."""
        return await self.coverage.claim(sha256)

    def release(self, sha256: str) -> None:
        """A claimed frame was not taken after all (refused, failed): forget the claim."""
        self.coverage.release([sha256])

    def check_capacity(self) -> None:
        """Refuse a new frame when its event might not fit in the outbox. Checked before the
        frame is decoded, and again when it is taken, for the frames decoded meanwhile."""
        if self.outbox.write_error:
            # Events cannot be stored now: take no new frames (their events could not be stored
            # either); the client keeps them and resends them once the outbox recovers.
            self.refused_frames += 1
            raise BackpressureError(
                f"the event outbox cannot be written ({self.outbox.write_error}); "
                "resend the frame later"
            )
        if self._room() - len(self._ended) <= 0:
            # Any frame may start an event (a new window, an early alert, a tamper check), so
            # none is taken without room for one more.
            self.refused_frames += 1
            raise BackpressureError(
                f"the event outbox holds {self.outbox.depth} unacknowledged events and more "
                f"are on their way (limit {self.outbox.max_events}); acknowledge events, then "
                "resend the frame"
            )

    async def accept(self, frame: AcceptedFrame, pixels: BgrImage | None) -> None:
        """Add a claimed frame to a window (or start its job); an event will cover it.

        Only claimed frames reach the scene baseline; `pixels` is None for content the scene
        has seen before. On failure the claim is released.
        """
        try:
            scene = (
                await asyncio.to_thread(self.scene.check, frame.camera_id, pixels)
                if pixels is not None
                else None
            )
            crops = (
                await asyncio.to_thread(
                    self.enricher.crops,
                    frame.sha256,
                    frame.result.detections,
                    pixels,
                    (frame.result.width, frame.result.height),
                )
                if pixels is not None
                and frame.result.detections
                and self.enricher is not None
                and self.enricher.wants_crops
                else ()
            )
            key_frame = (
                await asyncio.to_thread(
                    annotated_jpeg,
                    pixels,
                    frame.result.detections,
                    (frame.result.width, frame.result.height),
                )
                if pixels is not None
                and self.risk.sees_images
                and key_frame_score(frame.result.detections) > 0
                else None
            )
            captured = (
                from_ms(frame.captured_at_ms) if frame.captured_at_ms > 0 else self.clock.wall()
            )
            item = WindowFrame(
                sha256=frame.sha256,
                captured_at=captured,
                width=frame.result.width,
                height=frame.result.height,
                detections=frame.result.detections,
                crops=crops,
                key_frame=key_frame,
            )
            self.check_capacity()  # the outbox may have filled while the frame was decoded
            if item.detections:
                self.incidents.activity(frame.camera_id)
            if scene is not None and scene.tamper:
                # The camera's open window goes with it: a view covered right after a person
                # is one event that names both.
                window = self.windows.close(frame.camera_id)
                frames = (*window.frames, item) if window is not None else (item,)
                self._submit(AnalysisJob(frame.camera_id, new_window_id(), frames, scene=scene))
            elif self._is_fast_path(item) and self.incidents.take_fast_path(frame.camera_id):
                # The incident's early alert; later confident frames join the window.
                self._submit(AnalysisJob(frame.camera_id, new_window_id(), (item,), fast_path=True))
            else:
                self.windows.add(frame.camera_id, item)
        except BaseException:
            self.coverage.release([frame.sha256])
            raise

    def _is_fast_path(self, frame: WindowFrame) -> bool:
        threshold = self.fast_path_confidence
        return any(
            det.label.lower() in self._fast_labels and det.confidence >= threshold
            for det in frame.detections
        )

    # -- analyses --------------------------------------------------------------------------

    def analyze_window(self, window: ClosedWindow) -> asyncio.Task[SecurityEvent]:
        """Start the analysis of a closed window; the task ends with its stored event."""
        return self._submit(AnalysisJob(window.camera_id, window.window_id, window.frames))

    def _submit(self, job: AnalysisJob) -> asyncio.Task[SecurityEvent]:
        return self._track(self._run_job(job), f"analysis-{job.window_id[:8]}")

    def _track(
        self, work: Coroutine[Any, Any, SecurityEvent], name: str
    ) -> asyncio.Task[SecurityEvent]:
        task = asyncio.create_task(work, name=name)
        self._jobs.add(task)
        task.add_done_callback(self._job_done)
        return task

    def _job_done(self, task: asyncio.Task[SecurityEvent]) -> None:
        self._jobs.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            # Nobody awaits a job: say here what became of it.
            _LOGGER.error("analysis %s ended without an event: %s", task.get_name(), error)

    async def _run_job(self, job: AnalysisJob) -> SecurityEvent:
        shas = [frame.sha256 for frame in job.frames]
        try:
            event = await self.builder.process(job)
        except BaseException:
            # Not stored: release the frames so the client's resends are taken again.
            self.coverage.release(shas)
            raise
        self.coverage.settle(shas, event.sequence)
        _LOGGER.info(
            "event %d for %s: %d frame(s), risk %d%s",
            event.sequence, job.camera_id, len(job.frames), event.risk_score,
            " (fallback)" if event.fallback else "",
        )
        return event

    async def wait_idle(self) -> None:
        """Wait until every started analysis has stored its event (tests and benchmarks)."""
        while self._jobs:
            await asyncio.wait(set(self._jobs))

    def analyze_now(self, camera_id: str) -> tuple[bool, str]:
        window = self.windows.close(camera_id)
        if window is None:
            return False, ""
        self.analyze_window(window)
        return True, window.window_id

    async def reset_scene(self, camera_id: str) -> bool:
        """Make the camera's latest frame its usual view; False if none was seen yet."""
        adopted = await asyncio.to_thread(self.scene.adopt_latest, camera_id)
        if adopted:
            _LOGGER.info("Camera %s: its current view is now its usual view", camera_id)
        return adopted

    # -- configuration ---------------------------------------------------------------------

    async def configure(self, settings: Sequence[CameraRequest]) -> list[str]:
        """Validate every camera first, then apply and persist them all.

        Validation and the writes run in a worker thread, so the loop keeps serving frames and
        status meanwhile; the zones file is written once per call.
        """
        check_camera_count(settings, self.cameras.ids())
        prepared = await asyncio.to_thread(
            validate_cameras, settings, self.risk.prompt_versions
        )

        def persist() -> None:
            self.zones.set_many(zone_map for _, zone_map in prepared)
            self.cameras.update([camera for camera, _ in prepared])

        await asyncio.to_thread(persist)
        for camera, _ in prepared:
            self._apply_runtime(camera)
        return [camera.camera_id for camera, _ in prepared]

    def _apply_runtime(self, camera: CameraSettings) -> None:
        self.windows.configure(
            camera.camera_id,
            float(camera.batch_window_s) or None,
            float(camera.idle_timeout_s) or None,
        )
        try:
            self.baseline.set_timezone(camera.camera_id, camera.time_zone or None)
        except (ValueError, ZoneInfoNotFoundError):
            _LOGGER.warning("unknown time zone %r for %s", camera.time_zone, camera.camera_id)
        self.context_builder.cross_camera.set_camera_name(
            camera.camera_id, camera.display_name or None
        )

    # -- delivery --------------------------------------------------------------------------

    async def subscribe(self, after_sequence: int) -> AsyncIterator[SecurityEvent]:
        """Stored events after the cursor, oldest first, then live ones as they are stored."""
        cursor = after_sequence
        while True:
            changed = self.outbox.changed()  # taken before reading: no append is missed
            stored = await self.outbox.read_after(cursor)
            for event in stored:
                cursor = event.sequence
                yield event
            if not stored:
                await changed.wait()

    async def ack(self, up_to: int, outbox_id: str = "") -> int:
        return await self.outbox.ack(up_to, outbox_id)

    def watch(self, camera_id: str) -> AsyncIterator[ProgressNote]:
        return self.hub.watch(camera_id)

    def status(self) -> EventsStatus:
        outbox = self.outbox
        return EventsStatus(
            open_windows=self.windows.open_count,
            outbox_depth=outbox.depth,
            outbox_max_events=outbox.max_events,
            last_sequence=outbox.last_sequence,
            outbox_id=outbox.outbox_id,
            analyses_running=self.builder.running,
            events_created=self.builder.created,
            refused_frames=self.refused_frames,
        )
