"""Protobuf messages to the client's plain types: every part of the status and of an event."""

from __future__ import annotations

from custom_components.home_security_ai.client import (
    AnalyzeNowResult,
    AuditRubric,
    Box,
    CameraFeedback,
    Detection,
    DetectorStatus,
    Dwell,
    EnrichmentStatus,
    EventDetection,
    EventKind,
    EventsStatus,
    FeedbackVerdict,
    FrameCounters,
    GpuDevice,
    GpuStatus,
    Incident,
    LanguageModelState,
    LanguageModelStatus,
    LatencyStats,
    LoadedModel,
    ModelZooStatus,
    PersonPose,
    PersonSighting,
    PlateReading,
    Reidentification,
    RiskLevel,
    SceneChangeKind,
    SecurityEvent,
    ServerStatus,
    Visitor,
)
from custom_components.home_security_ai.client._generated import (
    events_pb2,
    frames_pb2,
    status_pb2,
)
from custom_components.home_security_ai.client.convert import (
    analyze_now_from_proto,
    event_from_proto,
    feedback_to_proto,
    status_from_proto,
)

# Values a float32 field holds exactly, so that they compare equal after the wire.
BOX = frames_pb2.Box(x1=0.125, y1=0.25, x2=0.5, y2=0.75)


def _full_status() -> status_pb2.ServerStatus:
    return status_pb2.ServerStatus(
        server_id="srv",
        version="1.2",
        uptime_s=12.5,
        detector=status_pb2.DetectorStatus(
            name="yolo",
            backend="onnx",
            device="cuda:0",
            weights="yolo.pt",
            fallback=True,
            fallback_reason="no TensorRT",
        ),
        queue_depth=3,
        stage_latency={
            "decode": status_pb2.LatencyStats(
                count=4, mean_ms=1.5, p50_ms=1.25, p95_ms=2.5, max_ms=3.0
            )
        },
        gpu=status_pb2.GpuStatus(
            available=True,
            reason="",
            driver_version="550",
            devices=[
                status_pb2.GpuDevice(
                    index=0,
                    name="H100",
                    utilization_percent=37.5,
                    memory_used_bytes=1 << 30,
                    memory_total_bytes=80 << 30,
                    temperature_celsius=41.0,
                )
            ],
        ),
        frames=status_pb2.FrameCounters(accepted=10, duplicate=2, rejected=1),
        events=status_pb2.EventsStatus(
            open_batches=2,
            outbox_depth=5,
            outbox_max_events=100,
            last_sequence=42,
            llm_model="qwen",
            llm_unavailable_reason="",
            analyses_running=1,
            events_created=40,
            outbox_id="abc",
            outbox_refused_frames=7,
        ),
        language_model=status_pb2.LanguageModelStatus(
            state=status_pb2.LANGUAGE_MODEL_STATE_CIRCUIT_OPEN,
            backend="embedded",
            model="qwen",
            endpoint="http://127.0.0.1:8080",
            reason="timeouts",
            restarts=1,
            consecutive_failures=3,
            queue_depth=2,
            queue_capacity=8,
            analyses=30,
            fallbacks=4,
            retry_in_s=9.5,
            authority="narrate",
            authority_reason="measured",
            replaced=1,
        ),
        model_zoo=status_pb2.ModelZooStatus(
            budget_bytes=1000,
            used_bytes=600,
            registered=4,
            loaded=[
                status_pb2.LoadedModel(
                    key="faces", task="faces", memory_bytes=600, users=1, idle_s=0.5
                )
            ],
        ),
        enrichment=status_pb2.EnrichmentStatus(
            faces_available=True,
            faces_reason="",
            plates_available=False,
            plates_reason="plates extra missing",
            pose_available=True,
            pose_reason="",
            known_people=2,
            known_plates=1,
            batches=9,
        ),
        feedback=[
            status_pb2.CameraFeedback(
                camera_id="front_door", false_alarms=3, confirmed=1, calibrated_cases=2
            )
        ],
    )


def test_every_part_of_the_status_is_converted() -> None:
    assert status_from_proto(_full_status()) == ServerStatus(
        server_id="srv",
        version="1.2",
        uptime_s=12.5,
        detector=DetectorStatus(
            name="yolo",
            backend="onnx",
            device="cuda:0",
            weights="yolo.pt",
            fallback=True,
            fallback_reason="no TensorRT",
        ),
        queue_depth=3,
        stage_latency={
            "decode": LatencyStats(count=4, mean_ms=1.5, p50_ms=1.25, p95_ms=2.5, max_ms=3.0)
        },
        gpu=GpuStatus(
            available=True,
            driver_version="550",
            devices=(
                GpuDevice(
                    index=0,
                    name="H100",
                    utilization_percent=37.5,
                    memory_used_bytes=1 << 30,
                    memory_total_bytes=80 << 30,
                    temperature_celsius=41.0,
                ),
            ),
        ),
        frames=FrameCounters(accepted=10, duplicate=2, rejected=1),
        events=EventsStatus(
            open_batches=2,
            outbox_depth=5,
            outbox_max_events=100,
            last_sequence=42,
            llm_model="qwen",
            analyses_running=1,
            events_created=40,
            outbox_id="abc",
            outbox_refused_frames=7,
        ),
        language_model=LanguageModelStatus(
            state=LanguageModelState.CIRCUIT_OPEN,
            backend="embedded",
            model="qwen",
            endpoint="http://127.0.0.1:8080",
            reason="timeouts",
            restarts=1,
            consecutive_failures=3,
            queue_depth=2,
            queue_capacity=8,
            analyses=30,
            fallbacks=4,
            retry_in_s=9.5,
            authority="narrate",
            authority_reason="measured",
            replaced=1,
        ),
        model_zoo=ModelZooStatus(
            budget_bytes=1000,
            used_bytes=600,
            registered=4,
            loaded=(LoadedModel(key="faces", task="faces", memory_bytes=600, users=1, idle_s=0.5),),
        ),
        enrichment=EnrichmentStatus(
            faces_available=True,
            plates_reason="plates extra missing",
            pose_available=True,
            known_people=2,
            known_plates=1,
            batches=9,
        ),
        feedback={"front_door": CameraFeedback(false_alarms=3, confirmed=1, calibrated_cases=2)},
    )


def test_a_status_without_a_language_model_part_or_with_a_later_state() -> None:
    """An older sidecar says nothing of its language model; a newer one may name a state
    this client does not know: both read as unknown."""
    message = _full_status()
    message.ClearField("language_model")
    assert status_from_proto(message).language_model == LanguageModelStatus()
    message.language_model.state = 99  # type: ignore[assignment]
    assert status_from_proto(message).language_model.state is LanguageModelState.UNKNOWN


def test_every_part_of_an_event_is_converted() -> None:
    message = events_pb2.SecurityEvent(
        sequence=7,
        event_id="e7",
        camera_id="front_door",
        kind=events_pb2.EVENT_KIND_SECURITY,
        started_at_ms=1000,
        ended_at_ms=2000,
        risk_score=80,
        risk_level=events_pb2.RISK_LEVEL_HIGH,
        summary="A person at the door",
        reasoning="Night, entry zone",
        recommended_action="Check the door",
        scene_description="A porch",
        failsafe=True,
        detections=[
            events_pb2.EventDetection(
                detection=frames_pb2.Detection(label="person", class_id=0, confidence=0.5, box=BOX),
                frame_sha256="f1",
                zones=["porch"],
            )
        ],
        zones=["porch"],
        frame_sha256s=["f1", "f2"],
        fast_path=True,
        fallback=True,
        fallback_reason="no model",
        model="rules",
        prompt_version="v3",
        scene_change=events_pb2.SCENE_CHANGE_KIND_MOVED,
        anomaly_score=0.25,
        created_at_ms=2500,
        incident=events_pb2.Incident(
            incident_id="i1",
            update=True,
            camera_ids=["front_door", "yard"],
            started_at_ms=900,
            alert=True,
            cooldown_remaining_s=30.0,
            cooldowns={"vehicle": 10.0, "person": 30.0},
        ),
        audit_notes=["no weapon seen"],
        audit_rubric=events_pb2.AuditRubric(
            context_used=5, coherent=4, justified=4, actionable=3, score=4.0
        ),
        people=[
            events_pb2.PersonSighting(
                face_id="face1",
                name="Ann",
                unknown=False,
                distance=0.25,
                frame_sha256="f1",
                box=BOX,
            ),
            events_pb2.PersonSighting(face_id="face2"),
        ],
        plates=[
            events_pb2.PlateReading(
                text="AB 123",
                normalized="AB123",
                confidence=0.75,
                known=True,
                known_label="Ann's car",
                frame_sha256="f2",
            )
        ],
        enrichment_notes=["pose: no model"],
        reidentified=[
            events_pb2.Reidentification(
                camera_id="yard", seconds_ago=4.0625, cue="face", similarity=0.8046875
            )
        ],
        poses=[
            events_pb2.PersonPose(
                person=1, flags=["crouching"], confidence=0.5, frame_sha256="f1", box=BOX
            )
        ],
        visitors=[
            events_pb2.Visitor(visitor_id="v1", name="", cue="appearance", visits=3),
            events_pb2.Visitor(visitor_id="v2", name="Ann", cue="face", visits=1),
        ],
        dwell=[events_pb2.Dwell(zone="porch", seconds=12.5)],
    )
    box = Box(x1=0.125, y1=0.25, x2=0.5, y2=0.75)
    assert event_from_proto(message) == SecurityEvent(
        sequence=7,
        event_id="e7",
        camera_id="front_door",
        kind=EventKind.SECURITY,
        started_at_ms=1000,
        ended_at_ms=2000,
        risk_score=80,
        risk_level=RiskLevel.HIGH,
        summary="A person at the door",
        reasoning="Night, entry zone",
        recommended_action="Check the door",
        scene_description="A porch",
        failsafe=True,
        detections=(
            EventDetection(
                detection=Detection(label="person", class_id=0, confidence=0.5, box=box),
                frame_sha256="f1",
                zones=("porch",),
            ),
        ),
        zones=("porch",),
        frame_sha256s=("f1", "f2"),
        fast_path=True,
        fallback=True,
        fallback_reason="no model",
        model="rules",
        prompt_version="v3",
        scene_change=SceneChangeKind.MOVED,
        anomaly_score=0.25,
        created_at_ms=2500,
        incident=Incident(
            incident_id="i1",
            update=True,
            camera_ids=("front_door", "yard"),
            started_at_ms=900,
            alert=True,
            cooldown_remaining_s=30.0,
            cooldowns=(("person", 30.0), ("vehicle", 10.0)),
        ),
        audit_notes=("no weapon seen",),
        audit_rubric=AuditRubric(context_used=5, coherent=4, justified=4, actionable=3, score=4.0),
        people=(
            PersonSighting(
                face_id="face1",
                name="Ann",
                unknown=False,
                distance=0.25,
                frame_sha256="f1",
                box=box,
            ),
            PersonSighting(face_id="face2", unknown=False, distance=0.0),
        ),
        plates=(
            PlateReading(
                text="AB 123",
                normalized="AB123",
                confidence=0.75,
                known=True,
                known_label="Ann's car",
                frame_sha256="f2",
            ),
        ),
        enrichment_notes=("pose: no model",),
        reidentified=(
            Reidentification(camera_id="yard", seconds_ago=4.1, cue="face", similarity=0.805),
        ),
        poses=(
            PersonPose(person=1, flags=("crouching",), confidence=0.5, frame_sha256="f1", box=box),
        ),
        visitors=(
            Visitor(visitor_id="v1", name=None, cue="appearance", visits=3),
            Visitor(visitor_id="v2", name="Ann", cue="face", visits=1),
        ),
        dwell=(Dwell(zone="porch", seconds=12.5),),
    )


def test_values_added_to_the_contract_later_read_as_the_defaults() -> None:
    """A newer sidecar's kinds, levels and scene changes do not break an older client."""
    message = events_pb2.SecurityEvent(sequence=1, event_id="e", camera_id="c")
    message.kind = 99  # type: ignore[assignment]
    message.risk_level = 99  # type: ignore[assignment]
    message.scene_change = 99  # type: ignore[assignment]
    event = event_from_proto(message)
    assert event.kind is EventKind.UNSPECIFIED
    assert event.risk_level is RiskLevel.UNSPECIFIED
    assert event.scene_change is SceneChangeKind.NONE
    assert (event.incident, event.audit_rubric) == (None, None)


def test_a_verdict_goes_out_by_its_contract_names() -> None:
    request = feedback_to_proto("e7", FeedbackVerdict.FALSE_ALARM, RiskLevel.LOW, "a cat")
    assert request.verdict == events_pb2.FEEDBACK_VERDICT_FALSE_ALARM
    assert request.actual_level == events_pb2.RISK_LEVEL_LOW
    assert (request.event_id, request.what) == ("e7", "a cat")


def test_the_window_fields_are_read_first() -> None:
    """A sidecar that speaks of windows: the new fields, even where the old ones differ."""
    status = status_from_proto(
        status_pb2.ServerStatus(
            events=status_pb2.EventsStatus(open_windows=3, open_batches=1),
            enrichment=status_pb2.EnrichmentStatus(windows_enriched=8, batches=2),
        )
    )
    assert status.events.open_batches == 3
    assert status.enrichment.batches == 8
    answer = events_pb2.AnalyzeNowResponse(closed=True, window_id="w1", batch_id="b1")
    assert analyze_now_from_proto(answer) == AnalyzeNowResult(closed=True, batch_id="w1")


def test_a_sidecar_that_predates_the_window_fields_is_read_by_the_old_ones() -> None:
    status = status_from_proto(
        status_pb2.ServerStatus(
            events=status_pb2.EventsStatus(open_batches=2),
            enrichment=status_pb2.EnrichmentStatus(batches=5),
        )
    )
    assert status.events.open_batches == 2
    assert status.enrichment.batches == 5
    answer = events_pb2.AnalyzeNowResponse(closed=True, batch_id="b1")
    assert analyze_now_from_proto(answer) == AnalyzeNowResult(closed=True, batch_id="b1")
    nothing = events_pb2.AnalyzeNowResponse(closed=False)
    assert analyze_now_from_proto(nothing) == AnalyzeNowResult(closed=False, batch_id="")
