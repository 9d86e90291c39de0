"""Hostile requests. Bytes that are not the message a call expects get INVALID_ARGUMENT, a
short reason and at most one log line per address and minute, never a traceback; a frame
stream refuses just that message and goes on. A 10 MB string in any request gets a short
answer that quotes a short prefix of it at most."""

from __future__ import annotations

import logging

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2
from PIL import Image
from sidecar_testlib import AUTH, Running, StartServer, encode_jpeg, frame

from gpu_server._generated import events_pb2, frames_pb2, service_pb2
from gpu_server.grpc_api.status_codes import MESSAGE_MAX_CHARS
from gpu_server.ingest.detect import DetectorSelection, HogPeopleDetector

GARBAGE = b"\xff" * 16  # a tag whose varint never ends: no message parses it
SERVICE = service_pb2.DESCRIPTOR.services_by_name["SecurityAI"]
UNARY_REQUESTS = [
    (method.name, method.input_type.name)
    for method in SERVICE.methods
    if not method.client_streaming
]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT


def _path(method: str, service: str = SERVICE.full_name) -> str:
    return f"/{service}/{method}"


async def _call_raw(running: Running, path: str, data: bytes, *, streaming: bool) -> None:
    """Send raw bytes as the request and read the whole answer."""
    if streaming:
        call = running.channel.unary_stream(path)(data, metadata=AUTH)
        async for _ in call:
            pass
    else:
        await running.channel.unary_unary(path)(data, metadata=AUTH)


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.exc_info or record.exc_text]


def _refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "gpu_server.grpc_api.auth"
    ]


@pytest.mark.parametrize(("method", "request_type"), UNARY_REQUESTS)
async def test_an_unparseable_request_is_an_invalid_argument(
    start_server: StartServer,
    hog_detector: HogPeopleDetector,
    caplog: pytest.LogCaptureFixture,
    method: str,
    request_type: str,
) -> None:
    running = await start_server(DetectorSelection(hog_detector))
    streaming = SERVICE.methods_by_name[method].server_streaming
    caplog.set_level(logging.INFO)
    for _ in range(20):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call_raw(running, _path(method), GARBAGE, streaming=streaming)
        assert err.value.code() is INVALID_ARGUMENT
        assert err.value.details() == f"request is not a valid {request_type}"
    assert _tracebacks(caplog) == []
    assert _refusal_lines(caplog) == [
        f"refused {_path(method)} from 127.0.0.1: request is not a valid {request_type}"
    ]
    # The server goes on answering real requests.
    status = await running.status()
    assert status.frames.rejected == 0


async def test_an_unparseable_health_check_is_an_invalid_argument(
    start_server: StartServer, hog_detector: HogPeopleDetector, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_server(DetectorSelection(hog_detector))
    caplog.set_level(logging.INFO)
    path = _path("Check", "grpc.health.v1.Health")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call_raw(running, path, GARBAGE, streaming=False)
    assert err.value.code() is INVALID_ARGUMENT
    assert err.value.details() == "request is not a valid HealthCheckRequest"
    assert _tracebacks(caplog) == []


async def test_an_unparseable_reflection_request_ends_its_stream(
    start_server: StartServer, hog_detector: HogPeopleDetector, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_server(DetectorSelection(hog_detector))
    caplog.set_level(logging.INFO)
    path = _path("ServerReflectionInfo", "grpc.reflection.v1alpha.ServerReflection")
    good = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    call = running.channel.stream_stream(
        path, response_deserializer=reflection_pb2.ServerReflectionResponse.FromString
    )(iter([good, GARBAGE, good]), metadata=AUTH)
    # The request before it is answered; the stream ends at it.
    listed = await call.read()
    assert SERVICE.full_name in {s.name for s in listed.list_services_response.service}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() is INVALID_ARGUMENT
    assert err.value.details() == "request is not a valid ServerReflectionRequest"
    assert _tracebacks(caplog) == []


async def test_a_frame_stream_refuses_only_the_unparseable_message(
    start_server: StartServer,
    hog_detector: HogPeopleDetector,
    bus_image: Image.Image,
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = await start_server(DetectorSelection(hog_detector))
    caplog.set_level(logging.INFO)
    first = frame(encode_jpeg(bus_image.resize((160, 120))), "first")
    second = frame(encode_jpeg(bus_image.resize((168, 126))), "second")
    messages = [
        first.SerializeToString(), GARBAGE, GARBAGE, second.SerializeToString(), GARBAGE,
    ]
    call = running.channel.stream_stream(
        _path("SubmitFrames"), response_deserializer=frames_pb2.FrameAck.FromString
    )(iter(messages), metadata=AUTH)
    acks = [ack async for ack in call]
    assert await call.code() is grpc.StatusCode.OK

    by_ref = {ack.client_ref: ack for ack in acks if ack.client_ref}
    assert by_ref["first"].status == frames_pb2.ACK_STATUS_ACCEPTED
    assert by_ref["second"].status == frames_pb2.ACK_STATUS_ACCEPTED
    refused = [ack for ack in acks if not ack.client_ref]
    assert len(refused) == 3
    for ack in refused:
        assert ack.status == frames_pb2.ACK_STATUS_REJECTED
        assert ack.status_code == INVALID_ARGUMENT.value[0]
        assert ack.message == "request is not a valid Frame"
    status = await running.status()
    assert (status.frames.accepted, status.frames.rejected) == (2, 3)
    assert _tracebacks(caplog) == []
    assert _refusal_lines(caplog) == [
        f"refused {_path('SubmitFrames')} from 127.0.0.1: request is not a valid Frame"
    ]


HUGE = "x" * 10_000_000
# Each request with a 10 MB string, and the code its answer must have.
HUGE_REQUESTS = {
    "AckEvents outbox_id": (
        "AckEvents", events_pb2.AckEventsRequest(outbox_id=HUGE),
        grpc.StatusCode.FAILED_PRECONDITION,
    ),
    "Configure display_name": (
        "Configure",
        events_pb2.ConfigureRequest(
            cameras=[events_pb2.CameraSettings(camera_id="porch", display_name=HUGE)]
        ),
        INVALID_ARGUMENT,
    ),
    "Configure camera_id": (
        "Configure",
        events_pb2.ConfigureRequest(cameras=[events_pb2.CameraSettings(camera_id=HUGE[:3_000_000])]),
        INVALID_ARGUMENT,
    ),
    "Configure zone name": (
        "Configure",
        events_pb2.ConfigureRequest(
            cameras=[
                events_pb2.CameraSettings(
                    camera_id="porch", zones=[events_pb2.Zone(name=HUGE[:3_000_000])]
                )
            ]
        ),
        INVALID_ARGUMENT,
    ),
    "AnalyzeNow camera_id": (
        "AnalyzeNow", events_pb2.AnalyzeNowRequest(camera_id=HUGE), INVALID_ARGUMENT
    ),
    "ResetScene camera_id": (
        "ResetScene", events_pb2.ResetSceneRequest(camera_id=HUGE), INVALID_ARGUMENT
    ),
    "Feedback event_id": (
        "Feedback",
        events_pb2.FeedbackRequest(event_id=HUGE, verdict=events_pb2.FEEDBACK_VERDICT_FALSE_ALARM),
        grpc.StatusCode.NOT_FOUND,
    ),
    "Feedback what": (
        "Feedback",
        events_pb2.FeedbackRequest(
            event_id="e", verdict=events_pb2.FEEDBACK_VERDICT_FALSE_ALARM, what=HUGE
        ),
        INVALID_ARGUMENT,
    ),
    "EnrollPerson name": (
        "EnrollPerson", events_pb2.EnrollPersonRequest(name=HUGE), INVALID_ARGUMENT
    ),
    "EnrollPerson face_id": (
        "EnrollPerson",
        events_pb2.EnrollPersonRequest(name="Ann", face_id=HUGE),
        grpc.StatusCode.NOT_FOUND,
    ),
    "RemovePerson name": (
        "RemovePerson", events_pb2.RemovePersonRequest(name=HUGE), INVALID_ARGUMENT
    ),
    "WatchAnalysis camera_id": (
        "WatchAnalysis", events_pb2.WatchAnalysisRequest(camera_id=HUGE), INVALID_ARGUMENT
    ),
}


@pytest.mark.parametrize("case", list(HUGE_REQUESTS))
async def test_a_huge_string_gets_a_short_answer(
    start_server: StartServer,
    hog_detector: HogPeopleDetector,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    method, request, code = HUGE_REQUESTS[case]
    running = await start_server(DetectorSelection(hog_detector))
    caplog.set_level(logging.INFO)
    streaming = SERVICE.methods_by_name[method].server_streaming
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call_raw(running, _path(method), request.SerializeToString(), streaming=streaming)
    details = err.value.details() or ""
    assert err.value.code() is code, details
    assert len(details) <= MESSAGE_MAX_CHARS
    assert "x" * 81 not in details  # a quoted value is cut to a short prefix
    for record in caplog.records:
        assert "x" * 81 not in record.getMessage()
